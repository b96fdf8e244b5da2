import Foundation
import ProvisionCore

/// The real Ansible (ansible-core from PyPI) the fleet tests hold provision to. Found in
/// `PROVISION_ANSIBLE_BIN` (the bin directory of a venv: `python3 -m venv DIR && DIR/bin/pip install
/// ansible-core`), else on PATH. Every run gets its own ANSIBLE_HOME and temp directories and an
/// empty configuration, so nothing of this machine's (or the user's) Ansible set-up is read or written.
public enum Ansible {
    public static let binDirectory: String? = {
        if let given = ProcessInfo.processInfo.environment["PROVISION_ANSIBLE_BIN"], !given.isEmpty {
            return FileManager.default.isExecutableFile(atPath: given + "/ansible-inventory") ? given : nil
        }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            if FileManager.default.isExecutableFile(atPath: "\(directory)/ansible-inventory") { return String(directory) }
        }
        return nil
    }()

    public static var available: Bool { binDirectory != nil }

    /// Why a test did not run, for its skip message.
    public static let missing =
        "ansible-core is not installed: set PROVISION_ANSIBLE_BIN to a venv's bin directory "
        + "(python3 -m venv /work/venv-ansible && /work/venv-ansible/bin/pip install ansible-core)"

    /// Runs `ansible`, `ansible-inventory` or `ansible-playbook` with a private home; `prefix` wraps
    /// the command (`TestFleet.controller([])` runs it in the fleet's controller namespace).
    public static func run(
        _ tool: String, _ arguments: [String], environment: [String: String] = [:], prefix: [String] = [], timeout: Double = 300
    ) throws -> Measured {
        guard let binDirectory else { throw ProvisionError(.notFound, missing) }
        let home = try TempRoot()
        try home.write("/ansible.cfg", "")
        var env = [
            "ANSIBLE_HOME": home.path, "ANSIBLE_CONFIG": home.path + "/ansible.cfg", "ANSIBLE_LOCAL_TEMP": home.path + "/tmp",
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_COLLECTIONS_PATH": home.path + "/collections",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": home.path + "/cp",
        ]
        env.merge(environment) { _, new in new }
        return try withExtendedLifetime(home) {
            try Spawn.run(prefix + [binDirectory + "/" + tool] + arguments, timeout: timeout, environment: env)
        }
    }

    /// PLAY RECAP of `ansible-playbook` output: per host, ok/changed/unreachable/failed/skipped.
    public static func recap(_ output: String) -> [String: [String: Int]] {
        var result: [String: [String: Int]] = [:]
        guard let start = output.range(of: "PLAY RECAP") else { return result }
        for line in output[start.upperBound...].split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            var counts: [String: Int] = [:]
            for field in parts[1].split(whereSeparator: \.isWhitespace) {
                let pair = field.split(separator: "=")
                if pair.count == 2, let value = Int(pair[1]) { counts[String(pair[0])] = value }
            }
            if !counts.isEmpty { result[parts[0].trimmingCharacters(in: .whitespaces)] = counts }
        }
        return result
    }

    /// `ansible -i INVENTORY PATTERN [--limit LIMIT] --list-hosts`: the host names it lists.
    public static func listHosts(inventory: String, pattern: String, limit: String? = nil) throws -> [String] {
        var arguments = ["-i", inventory, pattern, "--list-hosts"]
        if let limit { arguments += ["--limit", limit] }
        let result = try run("ansible", arguments, timeout: 120)
        guard result.status == 0 else {
            throw ProvisionError(.io, "ansible \(arguments.joined(separator: " ")) failed: \(result.output)")
        }
        let lines = result.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let header = lines.firstIndex(where: { $0.hasPrefix("hosts (") }) else { return [] }
        return Array(lines[(header + 1)...]).filter { !$0.isEmpty }
    }
}
