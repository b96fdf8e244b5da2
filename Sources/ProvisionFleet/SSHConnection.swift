import Foundation
import ProvisionCore

#if canImport(Glibc)
import Glibc
#endif

/// Where and how to reach one host, and what provision does there: what the inventory says of
/// it once its variables are resolved.
public struct FleetTarget: Sendable {
    /// The inventory's name for the host (recap lines, refs/hosts/NAME in fleet.git).
    public var name: String
    /// `ansible_host`, else the name.
    public var address: String
    public var port: Int?
    public var user: String?
    public var identityFile: String?
    /// `ansible_ssh_common_args`, split as a shell would.
    public var sshArguments: [String]
    /// `ansible_become`: the commands run through `sudo -n` (as `becomeUser` when given).
    public var become: Bool
    public var becomeUser: String?
    /// `provision_root`: the root provision works on there.
    public var root: String
    /// `provision_path`: a provision already installed there (nothing is pushed).
    public var provisionPath: String?
    /// Every other variable of the host: the recipe's variables for it.
    public var variables: [String: String]

    public init(
        name: String, address: String? = nil, port: Int? = nil, user: String? = nil, identityFile: String? = nil, sshArguments: [String] = [],
        become: Bool = false, becomeUser: String? = nil, root: String = "/", provisionPath: String? = nil, variables: [String: String] = [:]
    ) {
        self.name = name
        self.address = address ?? name
        self.port = port
        self.user = user
        self.identityFile = identityFile
        self.sshArguments = sshArguments
        self.become = become
        self.becomeUser = becomeUser
        self.root = root
        self.provisionPath = provisionPath
        self.variables = variables
    }
}

/// Why a host could not be reached, in words that say what to do.
struct Unreachable: Error, CustomStringConvertible {
    var description: String
}

/// The system OpenSSH client, one multiplexed connection per host: the master is opened once
/// (`-f -N`, its output to a log so no pipe is held open by the background process), every
/// command after it rides the same socket, and `close()` ends it. Users' `~/.ssh/config`,
/// agents, jump hosts and keys apply as everywhere; BatchMode so nothing ever prompts; host keys
/// in the fleet's own known_hosts, new ones accepted, changed ones refused.
final class SSHConnection: @unchecked Sendable {
    let target: FleetTarget
    let state: FleetState
    let connectTimeout: Int
    private(set) var isOpen = false

    init(target: FleetTarget, state: FleetState, connectTimeout: Int) {
        self.target = target
        self.state = state
        self.connectTimeout = connectTimeout
    }

    private var destination: String { target.address }

    /// The options every invocation for this host shares.
    private func baseArguments(master: Bool) -> [String] {
        var argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=\(connectTimeout)", "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4", "-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=\(state.knownHosts)",
            "-o", "ControlPath=\(state.controlDirectory)/%C", "-o", master ? "ControlMaster=yes" : "ControlMaster=no"]
        if master { argv += ["-o", "ControlPersist=120s"] }
        if let port = target.port { argv += ["-p", String(port)] }
        if let user = target.user { argv += ["-l", user] }
        if let key = target.identityFile { argv += ["-i", key] }
        argv += target.sshArguments
        return argv
    }

    /// `PROVISION_FLEET_TRACE=1`: every ssh invocation with its duration, on stderr.
    static let tracing = ProcessInfo.processInfo.environment["PROVISION_FLEET_TRACE"] == "1"

    private func trace(_ what: String, since start: Date) {
        guard Self.tracing else { return }
        FileHandle.standardError.write(Data(String(format: "fleet: %@: %@ %.3f s\n", target.name, what, Date().timeIntervalSince(start)).utf8))
    }

    /// Opens the master connection; throws `Unreachable` with the reason (and the fix for a
    /// changed host key).
    func open() throws {
        let started = Date()
        defer { trace("ssh master", since: started) }
        let log = state.controlDirectory + "/\(target.name).log"
        let argv = baseArguments(master: true) + ["-f", "-N", "--", destination]
        let script = "exec \"$@\" >\(Self.quote(log)) 2>&1"
        let result = try Subprocess.run(["sh", "-c", script, "sh"] + argv, timeout: TimeInterval(connectTimeout * 3 + 5))
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        unlink(log)
        guard result.status == 0, !result.timedOut else { throw Unreachable(description: explain(output, timedOut: result.timedOut)) }
        isOpen = true
    }

    private func explain(_ output: String, timedOut: Bool) -> String {
        if output.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") || output.contains("Host key verification failed") {
            let name = target.port.map { $0 == 22 ? target.address : "[\(target.address)]:\($0)" } ?? target.address
            return "its SSH host key changed since the fleet first saw it (\(state.knownHosts)); refused. If the change is expected "
                + "(the host was reinstalled), remove the old key with: ssh-keygen -f \(Self.quote(state.knownHosts)) -R \(Self.quote(name))"
        }
        if timedOut { return "no SSH connection within \(connectTimeout * 3 + 5) s" }
        let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("Warning: Permanently added") }
        return lines.suffix(3).joined(separator: "; ").nonEmpty ?? "ssh failed without saying why"
    }

    /// Runs `argv` on the host (through `sudo -n` when the inventory says become), `input` on its
    /// standard input. Exit 255 with nothing from the command is ssh's own failure: `Unreachable`.
    func run(_ argv: [String], input: Data = Data(), timeout: TimeInterval?) throws -> Subprocess.Result {
        var remote = argv
        if target.become {
            remote = ["sudo", "-n"] + (target.becomeUser.map { ["-u", $0] } ?? []) + ["--"] + remote
        }
        let command = remote.map(Self.quote).joined(separator: " ")
        let started = Date()
        defer { trace(String(command.prefix(60)), since: started) }
        let result = try Subprocess.run(baseArguments(master: false) + ["--", destination, command], input: input, timeout: timeout)
        if result.status == 255 && result.stdout.isEmpty {
            throw Unreachable(description: explain(String(decoding: result.stderr, as: UTF8.self), timedOut: result.timedOut))
        }
        return result
    }

    /// Ends the master connection (it would otherwise linger for ControlPersist).
    func close() {
        guard isOpen else { return }
        let started = Date()
        defer { trace("ssh -O exit", since: started) }
        _ = try? Subprocess.run(baseArguments(master: false) + ["-O", "exit", "--", destination], timeout: 10)
        isOpen = false
    }

    /// One word for a POSIX shell: single-quoted unless it needs no quoting.
    static func quote(_ word: String) -> String {
        if !word.isEmpty, word.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) && $0.isASCII || "@%+=:,./-_".unicodeScalars.contains($0) }) {
            return word
        }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
