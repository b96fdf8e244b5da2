import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// A real libvirtd for one test, in a private mount namespace: the root's /etc/libvirt is bound over
/// /etc/libvirt, and /run, /var, /etc/passwd and /etc/group are the test's own, so neither the
/// machine's libvirt state nor its user database is touched. Its socket is reachable from outside
/// through `uri`. Stopped (SIGKILL, reaped) when the value goes away.
final class LibvirtDaemon {
    let root: TempRoot
    let state: TempRoot
    let uri: String
    private let process: BackgroundProcess

    /// nil when libvirtd is not installed (outside CI, where its absence is a failure).
    static func start(root: TempRoot, users: [(name: String, groups: [String])] = []) throws -> LibvirtDaemon? {
        for tool in ["/usr/sbin/libvirtd", "/usr/bin/virsh", "/usr/bin/unshare"] where !FileManager.default.isExecutableFile(atPath: tool) {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("\(tool) is missing: scripts/install-deps.sh installs it") }
            return nil
        }
        return try LibvirtDaemon(root: root, users: users)
    }

    private init(root: TempRoot, users: [(name: String, groups: [String])]) throws {
        self.root = root
        state = try TempRoot()
        for directory in ["/run", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt", "/etc"] {
            try FileManager.default.createDirectory(atPath: state.real(directory), withIntermediateDirectories: true)
        }
        try FileManager.default.createDirectory(atPath: root.real("/etc/libvirt/qemu"), withIntermediateDirectories: true)
        // QEMU as root: as any other user it cannot open this machine's /dev/kvm (0600), and every
        // capability probe then crawls through its time-outs (tens of seconds per virsh call).
        if !root.exists("/etc/libvirt/qemu.conf") { try root.write("/etc/libvirt/qemu.conf", "user = \"root\"\ngroup = \"root\"\n") }

        // Debian's build runs QEMU as libvirt-qemu:libvirt-qemu and expects a kvm group; the daemon
        // refuses to start unless they (and the users of the root's qemu.conf) resolve.
        var passwd = try String(contentsOfFile: "/etc/passwd", encoding: .utf8)
        var group = try String(contentsOfFile: "/etc/group", encoding: .utf8)
        var gid = 64000
        func addGroup(_ name: String, members: [String] = []) {
            guard !group.split(separator: "\n").contains(where: { $0.hasPrefix("\(name):") }) else { return }
            gid += 1
            group += "\(name):x:\(gid):\(members.joined(separator: ","))\n"
        }
        for name in ["kvm", "input", "libvirt-qemu"] { addGroup(name) }
        for (index, user) in ([(name: "libvirt-qemu", groups: ["kvm"])] + users).enumerated()
        where !passwd.split(separator: "\n").contains(where: { $0.hasPrefix("\(user.name):") }) {
            addGroup(user.name)
            passwd += "\(user.name):x:\(64100 + index):\(gid)::/:/usr/sbin/nologin\n"
            for name in user.groups {
                group = group.split(separator: "\n").map { line in
                    guard line.hasPrefix("\(name):") else { return String(line) }
                    return line.hasSuffix(":") ? line + user.name : line + "," + user.name
                }.joined(separator: "\n") + "\n"
            }
        }
        try state.write("/etc/passwd", passwd)
        try state.write("/etc/group", group)
        try state.write("/etc/libvirtd.conf", "log_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"\n")

        let script = """
            set -e
            mount --bind '\(root.real("/etc/libvirt"))' /etc/libvirt
            mount --bind '\(state.real("/etc/passwd"))' /etc/passwd
            mount --bind '\(state.real("/etc/group"))' /etc/group
            mount --bind '\(state.real("/run"))' /run
            mount --bind '\(state.real("/var"))' /var
            echo started
            exec libvirtd --config '\(state.real("/etc/libvirtd.conf"))'
            """
        process = try BackgroundProcess(["unshare", "--mount", "--propagation", "private", "sh", "-c", script])
        uri = "qemu:///system?socket=\(state.real("/run/libvirt/libvirt-sock"))"
        guard process.readLine() == "started" else { throw ProvisionError(.io, "libvirtd's namespace could not be set up") }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: state.real("/run/libvirt/libvirt-sock")), (try? virsh("uri")) != nil { return }
            usleep(200_000)
        }
        throw ProvisionError(.io, "libvirtd did not answer within 60 s:\n\(log)")
    }

    var log: String { state.read("/var/log/libvirt/libvirtd.log").map { String($0.suffix(3000)) } ?? "(no log)" }

    /// `virsh --connect URI ARGS…`; throws with virsh's output when it fails.
    @discardableResult
    func virsh(_ arguments: String...) throws -> String { try virsh(arguments) }

    @discardableResult
    func virsh(_ arguments: [String]) throws -> String {
        let result = try ProcessRunner.run(["virsh", "--connect", uri] + arguments)
        guard result.status == 0 else { throw ProvisionError(.io, "virsh \(arguments.joined(separator: " ")) failed: \(result.output)") }
        return result.output
    }

    /// `virt-install --print-xml` against this daemon: a domain as a real client writes it.
    func virtInstall(_ arguments: [String]) throws -> String {
        // Its warnings go to stderr, which must not end up in the XML.
        let command = (["virt-install", "--connect", uri, "--print-xml"] + arguments).map { "'\($0)'" }.joined(separator: " ")
        let errors = state.real("/virt-install.err")
        let result = try ProcessRunner.run(["sh", "-c", command + " 2>'\(errors)'"])
        guard result.status == 0 else {
            throw ProvisionError(.io, "virt-install failed: \(result.output)\n\(state.read("/virt-install.err") ?? "")")
        }
        return result.output
    }
}
