import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Canary files in a directory outside the root: their bytes, names and modes must survive
/// whatever the root says.
struct Canaries {
    let directory: TempDirectory
    let marker = "CANARY-\(UUID().uuidString)"
    let before: [String: String]

    /// `files`: name -> text (the marker is appended to each); `directories`: empty directories.
    init(files: [String], directories: [String] = []) throws {
        directory = try TempDirectory("provision-outside")
        for name in files { try directory.write(name, "\(name): \(marker)\n") }
        for name in directories { try FileManager.default.createDirectory(atPath: directory.file(name), withIntermediateDirectories: true) }
        before = Tree.fingerprint(directory.path)
    }

    var path: String { directory.path }

    /// What changed outside ("no differences" when nothing did).
    var damage: String { Tree.differences(before, Tree.fingerprint(directory.path)) }
}

enum Crafted {
    /// A commit made with plain git on top of main: `files` (tree path -> bytes) replace or add
    /// blobs; main moves to it. Returns its id.
    static func commit(_ history: String, files: [String: Data], message: String) throws -> String {
        let scratch = try TempDirectory("provision-craft")
        let index = scratch.file("index")
        let environment = ["GIT_INDEX_FILE": index, "GIT_AUTHOR_NAME": "mallory", "GIT_AUTHOR_EMAIL": "m@example.invalid",
            "GIT_COMMITTER_NAME": "mallory", "GIT_COMMITTER_EMAIL": "m@example.invalid"]
        func git(_ arguments: [String]) throws -> String {
            let run = try Spawn.run(["git", "--git-dir", history] + arguments, environment: environment)
            guard run.status == 0 else { throw ProvisionError(.io, "git \(arguments.joined(separator: " ")): \(run.output)") }
            return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        _ = try git(["read-tree", "main"])
        for (path, data) in files.sorted(by: { $0.key < $1.key }) {
            let file = scratch.file(UUID().uuidString)
            try data.write(to: URL(fileURLWithPath: file))
            let blob = try git(["hash-object", "-w", file])
            _ = try git(["update-index", "--add", "--cacheinfo", "100644,\(blob),\(path)"])
        }
        let tree = try git(["write-tree"])
        let commit = try git(["commit-tree", tree, "-p", "main", "-m", message])
        _ = try git(["update-ref", "refs/heads/main", commit])
        return commit
    }

    static func json(_ object: Any) throws -> Data {
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }

    static func object(_ text: String) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw ProvisionError(.invalidInput, "not a JSON object")
        }
        return object
    }
}

extension SafetyTests {
    /// §4: a root (or its history) whose paths lead outside it. Canaries outside must keep their
    /// bytes and existence; provision must neither write, delete nor (for rollback) read there.
    @Suite struct HostilePaths {
        static let arch = Safety.family("arch")

        /// Replaces ROOT/etc/default (after an apply) with an absolute symlink to the canaries.
        static func symlinkDefault(_ root: TempRoot, to outside: String) throws {
            try FileManager.default.removeItem(atPath: root.real("/etc/default"))
            try FileManager.default.createSymbolicLink(atPath: root.real("/etc/default"), withDestinationPath: outside)
        }

        @Test func rollbackThroughASymlinkedDirectoryTouchesNothingOutside() throws {
            try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/strace"), "strace is needed")
            let (root, _) = try Safety.applied(Self.arch)
            let canaries = try Canaries(files: ["grub", "other"])
            try Self.symlinkDefault(root, to: canaries.path)
            let logs = try TempDirectory("provision-strace")
            let run = try Spawn.run(
                ["strace", "-f", "-y", "-s", "256", "-o", logs.file("rollback.log"), "-e", "trace=%file,%desc", "--",
                    CLI.binary, "rollback", "--root", root.path])
            #expect(run.exitedWithError, "rollback refuses a root whose /etc/default leads outside it: \(run)")
            let events = StraceLog.parse(try String(contentsOfFile: logs.file("rollback.log"), encoding: .utf8))
            let outside = events.filter { event in
                event.mentionedPaths.contains { $0 == canaries.path || $0.hasPrefix(canaries.path + "/") }
            }
            #expect(
                outside.count == 0,
                "rollback opened, read or wrote outside the root:\n\(outside.prefix(8).map { "  \($0)" }.joined(separator: "\n"))")
            #expect(canaries.damage == "no differences", "files outside the root changed: \(canaries.damage)")
            #expect(!run.output.contains(canaries.marker), "rollback printed the content of a file outside the root")
        }

        @Test func forcedRollbackThroughASymlinkedDirectoryNeitherRecordsNorPrintsOutsideContent() throws {
            let (root, _) = try Safety.applied(Self.arch)
            let canaries = try Canaries(files: ["grub", "other"])
            try Self.symlinkDefault(root, to: canaries.path)
            let forced = try CLI.measure(["rollback", "--force", "--root", root.path])
            #expect(canaries.damage == "no differences", "rollback --force changed files outside the root: \(canaries.damage) (\(forced))")
            #expect(!forced.output.contains(canaries.marker), "rollback --force printed the content of a file outside the root")
            let log = try Safety.git(root.historyPath, ["log", "-p", "--all"])
            #expect(log.status == 0)
            #expect(!log.stdout.contains(canaries.marker), "history recorded the content of a file outside the root")
        }

        enum JournalCase: String, CaseIterable, Sendable, CustomStringConvertible {
            /// The journal names `/../../…/CANARY` and a created directory `/../../…/empty`.
            case dotDot
            /// The journal names /etc/modprobe.d/vfio.conf, and etc/modprobe.d is a relative
            /// symlink climbing out of the root to the canaries.
            case throughSymlink
            var description: String { rawValue }
        }

        @Test(arguments: JournalCase.allCases)
        func craftedJournalCannotDeleteOutside(_ kind: JournalCase) throws {
            let (root, _) = try Safety.applied(Self.arch)
            let canaries = try Canaries(files: ["CANARY", "vfio.conf"], directories: ["empty"])
            let preState = try Safety.git(root.historyPath, ["rev-parse", "main~1"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            var paths = ["/etc/mkinitcpio.conf"]
            var created: [String] = []
            switch kind {
            case .dotDot:
                paths.append(Safety.climbing(from: root.path, to: canaries.directory.file("CANARY")))
                created.append(Safety.climbing(from: root.path, to: canaries.directory.file("empty")))
            case .throughSymlink:
                try FileManager.default.removeItem(atPath: root.real("/etc/modprobe.d"))
                try FileManager.default.createSymbolicLink(
                    atPath: root.real("/etc/modprobe.d"), withDestinationPath: Safety.relativeLink(from: root.real("/etc"), to: canaries.path))
                paths.append("/etc/modprobe.d/vfio.conf")
                created.append("/etc/modprobe.d")
            }
            let journal: [String: Any] = [
                "run": 2, "action": "apply", "base": preState, "paths": paths, "createdDirectories": created, "handlers": [Any](),
            ]
            let journalPath = root.historyPath + "/provision-journal.json"
            try Crafted.json(journal).write(to: URL(fileURLWithPath: journalPath))

            let apply = try CLI.measure(["apply", Safety.recipe, "--root", root.path])
            #expect(canaries.damage == "no differences", "\(kind): recovering a crafted journal changed files outside the root: \(canaries.damage)")
            #expect(apply.exitedWithError, "\(kind): apply refuses a journal naming paths outside the root: \(apply)")
            #expect(apply.stderr.contains("provision-journal.json"), "\(kind): the error names the journal: \(apply.stderr)")
        }

        @Test func craftedHistoryNamingAPathOutsideIsRefused() throws {
            let (root, _) = try Safety.applied(Self.arch)
            let canaries = try Canaries(files: ["CANARY"])
            let escaping = Safety.climbing(from: root.path, to: canaries.directory.file("CANARY"))
            let key = String(escaping.dropFirst())
            let history = root.historyPath
            var record = try Crafted.object(try Safety.git(history, ["show", "main:.provision/run.json"]).stdout)
            var meta = try Crafted.object(try Safety.git(history, ["show", "main:.provision/meta.json"]).stdout)

            // A pre-state commit saying the file was absent, then an apply that "created" it.
            record["run"] = 2
            record["action"] = "pre-state"
            record["summary"] = "pre-state: 1 file(s) before run 2 first touches them"
            record["files"] = [["path": escaping, "change": "modified"]]
            meta[key] = ["type": "absent"]
            _ = try Crafted.commit(
                history, files: [".provision/run.json": try Crafted.json(record), ".provision/meta.json": try Crafted.json(meta)],
                message: "pre-state: 1 file(s) before run 2 first touches them\n\nProvision-Run: 2\nProvision-Action: pre-state\n")
            record["action"] = "apply"
            record["summary"] = "apply vfio-passthrough: 1 step(s) changed, 1 file(s)"
            record["files"] = [["path": escaping, "change": "created"]]
            record["createdDirectories"] = [Safety.climbing(from: root.path, to: canaries.path)]
            record["handlers"] = [Any]()
            meta[key] = ["type": "file", "mode": "0644", "uid": 0, "gid": 0, "user": "root", "group": "root"]
            _ = try Crafted.commit(
                history, files: [".provision/run.json": try Crafted.json(record), ".provision/meta.json": try Crafted.json(meta)],
                message: "apply vfio-passthrough: 1 step(s) changed, 1 file(s)\n\nProvision-Run: 2\nProvision-Action: apply\n")

            let rollback = try CLI.measure(["rollback", "--root", root.path])
            #expect(rollback.exitedWithError, "rollback refuses a run record naming \(escaping): \(rollback)")
            #expect(canaries.damage == "no differences", "rollback changed files outside the root: \(canaries.damage)")
            #expect(!rollback.output.contains(canaries.marker), "rollback printed the content of a file outside the root")
            let forced = try CLI.measure(["rollback", "--force", "--root", root.path])
            #expect(forced.exitedWithError, "rollback --force refuses it too: \(forced)")
            #expect(canaries.damage == "no differences", "rollback --force changed files outside the root: \(canaries.damage)")
            #expect(!forced.output.contains(canaries.marker), "rollback --force printed the content of a file outside the root")
        }

        enum HistoryLink: String, CaseIterable, Sendable, CustomStringConvertible {
            case varAbsolute = "ROOT/var -> /OUTSIDE"
            case provisionAbsolute = "ROOT/var/lib/provision -> /OUTSIDE"
            case varRelative = "ROOT/var -> ../../OUTSIDE"
            case provisionRelative = "ROOT/var/lib/provision -> ../../../../OUTSIDE"
            var description: String { rawValue }

            var link: String { self == .varAbsolute || self == .varRelative ? "/var" : "/var/lib/provision" }
            var absolute: Bool { self == .varAbsolute || self == .provisionAbsolute }
        }

        @Test(arguments: HistoryLink.allCases)
        func historyBehindASymlinkStaysInsideTheRoot(_ kind: HistoryLink) throws {
            let root = try TempRoot(copying: "arch")
            let canaries = try Canaries(files: ["canary"])
            let link = root.real(kind.link)
            if Tree.exists(link) { try FileManager.default.removeItem(atPath: link) }
            try FileManager.default.createDirectory(atPath: (link as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let target = kind.absolute ? canaries.path : Safety.relativeLink(from: (link as NSString).deletingLastPathComponent, to: canaries.path)
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)

            let apply = try CLI.measure(["apply", Safety.recipe, "--root", root.path])
            #expect(canaries.damage == "no differences", "\(kind): apply created or changed files outside the root: \(canaries.damage) (\(apply))")
            if kind.absolute {
                // Resolved as if chrooted, /var (or /var/lib/provision) is ROOT/OUTSIDE: history lands there, or nowhere.
                let inside = root.path + canaries.path + (kind == .varAbsolute ? "/lib/provision/history.git" : "/history.git")
                #expect(
                    apply.exitedWithError || Tree.exists(inside + "/HEAD"),
                    "\(kind): apply either refuses or keeps its history inside the root (\(inside)): \(apply)")
            } else {
                #expect(apply.exitedWithError, "\(kind): apply refuses a history path that climbs out of the root: \(apply)")
            }
        }
    }
}
