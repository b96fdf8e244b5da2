import Foundation
import ProvisionCore

#if canImport(Glibc)
import Glibc
#endif

/// A fleet of fake hosts on this machine for the ssh tests: each host is a network namespace with a
/// veth link to the controller's own namespace (a /30 per host from 198.18.0.0/24, RFC 2544's
/// benchmarking range, which this machine's network does not use), running Debian's OpenSSH `sshd` in a private mount namespace where a directory of the test is
/// bound over /var/lib/provision (so a binary pushed to /var/lib/provision/bin lands there) and a
/// tmpfs over /run (for sshd's /run/sshd). The controller side runs its commands inside its own
/// namespace (`controller(_:)` wraps an argv in `ip netns exec`), so nothing of this machine's main
/// network namespace changes. Keys are made here with ssh-keygen; /etc/ssh, /root/.ssh and the
/// machine's own sshd are never read or touched (`-F /dev/null`, a test-owned authorized_keys).
/// Every sshd is stopped by pid and every namespace deleted when the fleet goes away (deinit), also
/// when the test failed; namespaces a crashed test left behind are swept by the next fleet.
public final class TestFleet: @unchecked Sendable {
    public struct Host: Sendable {
        /// Inventory name: h0, h1, …
        public var name: String
        public var index: Int
        /// The host's address on its link (the controller's end is one less).
        public var address: String
        /// Its network namespace.
        public var namespace: String
        /// The test's directory for this host (keys, sshd_config, pid file, log).
        public var directory: String
        /// What the host sees as /var/lib/provision.
        public var varLibProvision: String
        public var hostKey: String { directory + "/ssh_host_ed25519_key" }
        public var sshdLog: String { directory + "/sshd.log" }
    }

    public let state: TempRoot
    public let controllerNamespace: String
    public private(set) var hosts: [Host] = []
    /// The controller's private key (ed25519, no passphrase), authorised for root on every host.
    public var clientKey: String { state.path + "/client_key" }
    /// Every host's current key (`regenerateHostKey` leaves the old line unless told otherwise).
    public var knownHosts: String { state.path + "/known_hosts" }
    public var authorizedKeys: String { state.path + "/authorized_keys" }

    private var daemons: [Int: BackgroundProcess] = [:]
    private let lock = NSLock()
    nonisolated(unsafe) private static var counter = 0
    private static let counterLock = NSLock()
    static let prefix = "pft"

    public static let sshd = "/usr/sbin/sshd"
    /// sshd, ssh, ssh-keygen, ip and unshare present (and we are root): without them the tests skip.
    public static var available: Bool {
        geteuid() == 0 && [sshd, "/usr/bin/ssh", "/usr/bin/ssh-keygen", "/usr/sbin/ip", "/usr/bin/unshare"].allSatisfy {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }
    public static let missing = "needs root, openssh-server (/usr/sbin/sshd), openssh-client, iproute2 and util-linux (apt-get install openssh-server)"

    /// Makes `count` hosts (at most 60), all with sshd running.
    public init(count: Int) throws {
        precondition(count > 0 && count <= 60, "1 to 60 hosts")
        Self.sweepLeftovers()
        let own = try ProcessRunner.run(["ip", "-4", "-o", "addr", "show"]).output + (try ProcessRunner.run(["ip", "-4", "route", "show"]).output)
        guard !own.contains(" 198.18.0.") else {
            throw ProvisionError(.io, "this machine's own network uses 198.18.0.0/24, the range the test fleet's links take")
        }
        state = try TempRoot()
        chmod(state.path, 0o755)
        let serial: Int = Self.counterLock.withLock {
            Self.counter += 1
            return Self.counter
        }
        let tag = "\(Self.prefix)\(getpid())x\(serial)"
        controllerNamespace = tag + "c"
        do {
            try Self.must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "provision-fleet-test", "-f", clientKey])
            try FileManager.default.copyItem(atPath: clientKey + ".pub", toPath: authorizedKeys)
            try Self.must(["ip", "netns", "add", controllerNamespace])
            try Self.must(["ip", "-n", controllerNamespace, "link", "set", "lo", "up"])
            var known = ""
            for index in 0..<count {
                let host = Host(
                    name: "h\(index)", index: index, address: "198.18.0.\(index * 4 + 2)", namespace: "\(tag)h\(index)",
                    directory: state.path + "/h\(index)", varLibProvision: state.path + "/h\(index)/var-lib-provision")
                try FileManager.default.createDirectory(atPath: host.varLibProvision, withIntermediateDirectories: true)
                try Self.must(["ip", "netns", "add", host.namespace])
                try Self.must(["ip", "-n", host.namespace, "link", "set", "lo", "up"])
                try Self.must(["ip", "-n", controllerNamespace, "link", "add", "h\(index)", "type", "veth", "peer", "name", "eth0", "netns", host.namespace])
                try Self.must(["ip", "-n", controllerNamespace, "addr", "add", "198.18.0.\(index * 4 + 1)/30", "dev", "h\(index)"])
                try Self.must(["ip", "-n", controllerNamespace, "link", "set", "h\(index)", "up"])
                try Self.must(["ip", "-n", host.namespace, "addr", "add", "\(host.address)/30", "dev", "eth0"])
                try Self.must(["ip", "-n", host.namespace, "link", "set", "eth0", "up"])
                try Self.must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", host.hostKey])
                try writeConfig(host)
                known += try knownHostsLine(host)
                hosts.append(host)
            }
            try known.write(toFile: knownHosts, atomically: true, encoding: .utf8)
            try Parallel.map(Array(0..<count), workers: 4) { index in Result { try self.startSSHD(index) } }.forEach { try $0.get() }
        } catch {
            shutdown()
            throw error
        }
    }

    deinit { shutdown() }

    // MARK: faults

    /// Starts the host's sshd (again) and waits until it listens (its pid file is written after the bind).
    public func startSSHD(_ index: Int) throws {
        let host = hosts[index]
        stopSSHD(index)
        unlink(host.directory + "/sshd.pid")
        let script = """
            set -e
            mount -t tmpfs -o mode=0755,size=16m tmpfs /run
            mkdir -m 0755 /run/sshd
            if [ -d /var/lib/provision ]; then
                mount --bind '\(host.varLibProvision)' /var/lib/provision
            else
                mount -t tmpfs -o mode=0755,size=1m tmpfs /var/lib
                mkdir /var/lib/provision
                mount --bind '\(host.varLibProvision)' /var/lib/provision
            fi
            echo started
            exec \(Self.sshd) -D -e -f '\(host.directory)/sshd_config' 2>>'\(host.sshdLog)'
            """
        let process = try BackgroundProcess([
            "ip", "netns", "exec", host.namespace, "unshare", "--mount", "--propagation", "private", "sh", "-c", script,
        ])
        guard process.readLine() == "started" else {
            throw ProvisionError(.io, "the mount namespace of \(host.name) could not be set up")
        }
        lock.withLock { daemons[index] = process }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: host.directory + "/sshd.pid", encoding: .utf8), Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) == process.pid {
                return
            }
            if kill(process.pid, 0) != 0 { break }
            usleep(20_000)
        }
        let log = (try? String(contentsOfFile: host.sshdLog, encoding: .utf8)) ?? ""
        throw ProvisionError(.io, "sshd of \(host.name) did not start: \(log)")
    }

    /// Stops the host's sshd (SIGKILL by pid, reaped) and every session it had started, so the host
    /// is unreachable until `startSSHD`.
    public func stopSSHD(_ index: Int) {
        let process = lock.withLock { daemons.removeValue(forKey: index) }
        guard process != nil else { return }
        withExtendedLifetime(process) {}
        killEverything(in: hosts[index].namespace)
    }

    public func isRunning(_ index: Int) -> Bool { lock.withLock { daemons[index] != nil } }

    /// A new host key for the host, sshd restarted with it. `updateKnownHosts` false (the default)
    /// keeps the old key in `knownHosts`, which is the "changed host key" fault.
    public func regenerateHostKey(_ index: Int, updateKnownHosts: Bool = false) throws {
        let host = hosts[index]
        unlink(host.hostKey)
        unlink(host.hostKey + ".pub")
        try Self.must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host.name, "-f", host.hostKey])
        try startSSHD(index)
        if updateKnownHosts {
            var lines = try String(contentsOfFile: knownHosts, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix(host.address + " ") }
            lines.append(Substring(try knownHostsLine(host).trimmingCharacters(in: .newlines)))
            try (lines.joined(separator: "\n") + "\n").write(toFile: knownHosts, atomically: true, encoding: .utf8)
        }
    }

    // MARK: using it

    /// An argv run inside the controller's network namespace.
    public func controller(_ argv: [String]) -> [String] { ["ip", "netns", "exec", controllerNamespace] + argv }

    /// The ssh options every test connection uses: no user or system configuration, this fleet's
    /// key and known_hosts, no prompts.
    public var sshOptions: [String] {
        [
            "-F", "/dev/null", "-o", "UserKnownHostsFile=\(knownHosts)", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
            "-i", clientKey,
        ]
    }

    /// `ssh root@HOST COMMAND` from the controller's namespace.
    public func ssh(_ index: Int, _ command: String, timeout: Double = 60) throws -> Measured {
        try Spawn.run(controller(["ssh"] + sshOptions + ["root@\(hosts[index].address)", command]), timeout: timeout)
    }

    public enum InventoryFormat: Sendable {
        case yaml, ini
    }

    /// Writes an Ansible inventory of the hosts to `path`: each host with `ansible_host`,
    /// `ansible_user: root`, the client key and `ansible_ssh_common_args` (`-F /dev/null -o
    /// IdentitiesOnly=yes`, plus this fleet's known_hosts with `withKnownHosts`, as plain Ansible
    /// needs; a fleet run keeps its own). `hostVars` adds variables per host name (provision_root,
    /// gpu…), `groups` puts hosts in groups (YAML: under `all.children`; INI: sections), `groupVars`
    /// gives groups variables. Values are written as quoted strings.
    @discardableResult
    public func writeInventory(
        to path: String, format: InventoryFormat = .yaml, hostVars: [String: [String: String]] = [:],
        groups: [String: [String]] = [:], groupVars: [String: [String: String]] = [:], withKnownHosts: Bool = false
    ) throws -> String {
        var common = "-F /dev/null -o IdentitiesOnly=yes"
        if withKnownHosts { common += " -o UserKnownHostsFile=\(knownHosts) -o GlobalKnownHostsFile=/dev/null" }
        func connection(_ host: Host) -> [(String, String)] {
            [
                ("ansible_host", host.address), ("ansible_user", "root"), ("ansible_ssh_private_key_file", clientKey),
                ("ansible_ssh_common_args", common),
            ] + (hostVars[host.name] ?? [:]).sorted { $0.key < $1.key }
        }
        func yamlQuoted(_ text: String) -> String {
            "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
        }
        func iniQuoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\"'\"'") + "'" }
        var text = ""
        switch format {
        case .yaml:
            text += "all:\n  hosts:\n"
            for host in hosts {
                text += "    \(host.name):\n"
                for (key, value) in connection(host) { text += "      \(key): \(yamlQuoted(value))\n" }
            }
            let groupNames = Set(groups.keys).union(groupVars.keys).sorted()
            if !groupNames.isEmpty {
                text += "  children:\n"
                for name in groupNames {
                    text += "    \(name):\n"
                    if let members = groups[name], !members.isEmpty {
                        text += "      hosts:\n" + members.map { "        \($0):\n" }.joined()
                    }
                    if let vars = groupVars[name], !vars.isEmpty {
                        text += "      vars:\n" + vars.sorted { $0.key < $1.key }.map { "        \($0.key): \(yamlQuoted($0.value))\n" }.joined()
                    }
                }
            }
        case .ini:
            for host in hosts {
                text += host.name + connection(host).map { " \($0.0)=\(iniQuoted($0.1))" }.joined() + "\n"
            }
            for name in Set(groups.keys).union(groupVars.keys).sorted() {
                text += "\n[\(name)]\n" + (groups[name] ?? []).map { $0 + "\n" }.joined()
                if let vars = groupVars[name], !vars.isEmpty {
                    text += "\n[\(name):vars]\n" + vars.sorted { $0.key < $1.key }.map { "\($0.key)=\(iniQuoted($0.value))\n" }.joined()
                }
            }
        }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    // MARK: set-up and tear-down

    private func writeConfig(_ host: Host) throws {
        let config = """
            ListenAddress \(host.address)
            Port 22
            HostKey \(host.hostKey)
            PidFile \(host.directory)/sshd.pid
            AuthorizedKeysFile \(authorizedKeys)
            PermitRootLogin prohibit-password
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            PrintMotd no
            PrintLastLog no
            MaxStartups 200
            MaxSessions 100
            Subsystem sftp /usr/lib/openssh/sftp-server
            LogLevel INFO

            """
        try config.write(toFile: host.directory + "/sshd_config", atomically: true, encoding: .utf8)
    }

    private func knownHostsLine(_ host: Host) throws -> String {
        let key = try String(contentsOfFile: host.hostKey + ".pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
        return "\(host.address) \(key)\n"
    }

    /// Every process left in a namespace (sshd, its sessions), by pid from `ip netns pids`.
    private func killEverything(in namespace: String) {
        for _ in 0..<50 {
            let pids = ((try? ProcessRunner.run(["ip", "netns", "pids", namespace]))?.output ?? "")
                .split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
            if pids.isEmpty { return }
            for pid in pids { kill(pid, SIGKILL) }
            usleep(20_000)
        }
    }

    /// Stops every sshd and deletes every namespace (idempotent).
    public func shutdown() {
        let running = lock.withLock {
            let all = daemons
            daemons = [:]
            return all
        }
        withExtendedLifetime(running) {}
        for host in hosts { killEverything(in: host.namespace) }
        killEverything(in: controllerNamespace)
        for host in hosts { _ = try? ProcessRunner.run(["ip", "netns", "delete", host.namespace]) }
        _ = try? ProcessRunner.run(["ip", "netns", "delete", controllerNamespace])
        hosts = []
    }

    /// Namespaces of fleets whose test process is gone (a crash, a SIGKILL): emptied and deleted.
    private static func sweepLeftovers() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        for name in names where name.hasPrefix(prefix) {
            let digits = name.dropFirst(prefix.count).prefix { $0.isNumber }
            guard let pid = Int32(digits), pid != getpid(), kill(pid, 0) != 0 else { continue }
            let pids = ((try? ProcessRunner.run(["ip", "netns", "pids", name]))?.output ?? "").split(whereSeparator: \.isWhitespace).compactMap { Int32($0) }
            for pid in pids { kill(pid, SIGKILL) }
            _ = try? ProcessRunner.run(["ip", "netns", "delete", name])
        }
    }

    private static func must(_ argv: [String]) throws {
        let result = try ProcessRunner.run(argv)
        guard result.status == 0 else { throw ProvisionError(.io, "\(argv.joined(separator: " ")) failed: \(result.output)") }
    }
}
