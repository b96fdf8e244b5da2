import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 12's "must show": what happens to a root (and to everything outside it) when provision is
/// killed at any write, runs out of disk, meets hostile paths, unbounded input, secrets, or a damaged
/// history. Every test drives the real binary on a copy of a snapshot. The suites run one after the
/// other (the sweeps use two workers each, and the time and memory bounds are measured).
@Suite(.serialized) struct SafetyTests {}

enum Safety {
    static let recipe = Package.path("recipes/vfio-passthrough.yaml")

    typealias Family = SnapshotFamily
    static let families = SnapshotFamily.all

    static func family(_ name: String) -> Family { families.first { $0.name == name }! }

    static func history(_ root: String) -> String { root + "/var/lib/provision/history.git" }

    /// `git --git-dir HISTORY ARGS` as a measured child.
    static func git(_ history: String, _ arguments: [String], timeout: Double = 60) throws -> Measured {
        try Spawn.run(["git", "--git-dir", history] + arguments, timeout: timeout)
    }

    /// What must hold after any run that ended (normally or after a recovery): history passes
    /// `git fsck --strict`, no lock or temporary object is left in it, no `.NAME.provision-XXXXXX`
    /// temporary file anywhere in the root, no journal, and the history is 0700.
    /// `root` is where the tree is read from; `git` runs git on the history (inside a mount
    /// namespace, say).
    static func leftovers(root: String, git: ([String]) throws -> Measured) -> [String] {
        var problems: [String] = []
        let history = Self.history(root)
        do {
            let fsck = try git(["fsck", "--strict", "--no-progress"])
            if fsck.status != 0 { problems.append("git fsck --strict failed: \(fsck.output.split(separator: "\n").prefix(4).joined(separator: " | "))") }
        } catch {
            problems.append("git fsck could not run: \(error)")
        }
        let locks = Tree.find(history) { $0.hasSuffix(".lock") }
        if !locks.isEmpty { problems.append("lock file(s) left in history: \(locks.joined(separator: ", "))") }
        let temporaryObjects = Tree.find(history) { $0.hasPrefix("tmp_obj") || $0.hasPrefix("tmp_pack") || $0.hasPrefix("tmp_idx") }
        if !temporaryObjects.isEmpty { problems.append("temporary object(s) left: \(temporaryObjects.joined(separator: ", "))") }
        let temporaryFiles = Tree.find(root) { isProvisionTemporary($0) }
        if !temporaryFiles.isEmpty { problems.append("temporary file(s) left in the root: \(temporaryFiles.joined(separator: ", "))") }
        let journals = Tree.find(history) { $0.hasPrefix("provision-journal") }
        if !journals.isEmpty { problems.append("journal left: \(journals.joined(separator: ", "))") }
        if let mode = Tree.mode(history), mode != 0o700 { problems.append("history mode is \(String(mode, radix: 8)), not 700") }
        return problems
    }

    /// `.NAME.provision-XXXXXX`: HostRoot's temporary file for an atomic write.
    static func isProvisionTemporary(_ name: String) -> Bool {
        name.range(of: #"^\..+\.provision-[A-Za-z0-9]{6}$"#, options: .regularExpression) != nil
    }

    /// A copy of `family` with the recipe applied once, uninterrupted: (copy, its host fingerprint).
    static func applied(_ family: Family) throws -> (TempRoot, [String: String]) {
        let root = try TempRoot(copying: family.name)
        let apply = try CLI.measure(["apply", recipe, "--root", root.path] + family.vars)
        guard apply.status == 0 else { throw ProvisionError(.io, "reference apply on \(family) failed: \(apply)") }
        return (root, Tree.hostFingerprint(root.path))
    }

    /// `/../../…/OUTSIDE`: a host path written so that ROOT + path names `outside` on this machine.
    static func climbing(from root: String, to outside: String) -> String {
        let depth = root.split(separator: "/").count
        return String(repeating: "/..", count: depth) + outside
    }

    /// A path from `directory` (inside the root) to `outside`, relative, climbing out with `..`.
    static func relativeLink(from directory: String, to outside: String) -> String {
        let depth = directory.split(separator: "/").count
        return Array(repeating: "..", count: depth).joined(separator: "/") + outside
    }

    /// Readable summary of a list of failures, for an #expect comment.
    static func summary(_ failures: [String], limit: Int = 25) -> String {
        failures.prefix(limit).joined(separator: "\n") + (failures.count > limit ? "\n… and \(failures.count - limit) more" : "")
    }
}

extension Measured {
    var exitedWithError: Bool { !timedOut && signal == 0 && status != 0 }
}
