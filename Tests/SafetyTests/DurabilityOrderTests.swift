import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// The order of durable steps in one run, read from an `strace -f -y` log: which data reached the
/// disk (fsync) before which name was switched (rename/link) or removed (unlink).
struct DurabilityLog {
    let events: [TraceEvent]
    let root: String
    let history: String

    var journal: String { history + "/provision-journal.json" }
    var branch: String { history + "/refs/heads/main" }

    init(log: String, root: String) {
        events = StraceLog.parse(log).filter { !$0.interrupted }
        self.root = root
        history = Safety.history(root)
    }

    /// A host file: in the root, outside provision's own state.
    func isHost(_ path: String) -> Bool { path.hasPrefix(root + "/") && !path.hasPrefix(root + "/var/lib/provision/") }

    func isSync(_ event: TraceEvent) -> Bool { ["fsync", "fdatasync", "syncfs"].contains(event.name) && event.succeeded }

    /// A rename (not a link) that succeeded, onto `predicate`'s paths.
    func renames(onto predicate: (String) -> Bool) -> [TraceEvent] {
        events.filter { $0.name.hasPrefix("rename") && $0.succeeded && $0.move.map { predicate($0.to) } == true }
    }

    /// A successful rename or link onto a path (how libgit2 and provision publish a file).
    func publishes(onto path: String) -> [TraceEvent] {
        events.filter { ($0.name.hasPrefix("rename") || $0.name.hasPrefix("link")) && $0.succeeded && $0.move?.to == path }
    }

    /// fsync/fdatasync of a descriptor whose path satisfies `predicate`, within `range` of the log.
    func syncs(_ range: Range<Int>, _ predicate: (String) -> Bool) -> [TraceEvent] {
        events[range].filter { isSync($0) && $0.descriptorPath.map(predicate) == true }
    }

    /// A loose object (or its temporary file, or a pack) under the history's objects/.
    func isObjectFile(_ path: String) -> Bool {
        // The objects directory itself: the one syncfs that makes a batch of objects durable.
        if path == history + "/objects" { return true }
        guard path.hasPrefix(history + "/objects/") else { return false }
        let name = String(path.dropFirst(history.count + "/objects/".count))
        return name.range(of: #"^([0-9a-f]{2}/[0-9a-f]{38,62}|.*tmp_obj.*|pack/.+)$"#, options: .regularExpression) != nil
    }

    func isBranchFile(_ path: String) -> Bool { path == branch || path == branch + ".lock" }

    func near(_ index: Int) -> String {
        events[max(0, index - 6)..<min(events.count, index + 2)].map { "    \($0)".replacingOccurrences(of: root, with: "ROOT") }
            .joined(separator: "\n")
    }
}

extension SafetyTests {
    /// §2: one apply under strace -y: history objects, the branch and the journal are on disk before
    /// the first host file is replaced; the run's branch update is on disk before the journal goes.
    @Suite struct DurabilityOrder {
        @Test func historyAndJournalReachTheDiskBeforeTheHostChanges() throws {
            try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/strace"), "strace is needed (scripts/install-deps.sh)")
            let root = try TempRoot(copying: "arch")
            let logs = try TempDirectory("provision-strace")
            let run = try Spawn.run(
                ["strace", "-f", "-y", "-s", "256", "-o", logs.file("apply.log"),
                    "-e", "trace=openat,fsync,fdatasync,syncfs,rename,renameat,renameat2,unlink,unlinkat,link,linkat",
                    "--", CLI.binary, "apply", Safety.recipe, "--root", root.path])
            try #require(run.status == 0, "apply under strace: \(run)")
            let log = DurabilityLog(log: try String(contentsOfFile: logs.file("apply.log"), encoding: .utf8), root: root.path)

            let hostRenames = log.renames(onto: log.isHost)
            let first = try #require(hostRenames.first, "the apply replaced at least one host file by rename")
            let before = 0..<first.index

            let objectSyncs = log.syncs(before, log.isObjectFile)
            #expect(!objectSyncs.isEmpty, "history.git/objects (its file system, by syncfs, or an object file) is synced before the first host rename:\n\(log.near(first.index))")

            let branchSyncs = log.syncs(before, log.isBranchFile)
            #expect(!branchSyncs.isEmpty, "refs/heads/main(.lock) is fsynced before the first host rename (the pre-state commit is durable)")

            // The journal: written to a temporary file, fsynced, renamed onto provision-journal.json.
            let journalRenames = log.publishes(onto: log.journal).filter { $0.index < first.index }
            let journalRename = journalRenames.last
            #expect(journalRename != nil, "the journal is renamed into place before the first host rename")
            if let journalRename, let temporary = journalRename.move?.from {
                let synced = log.syncs(0..<journalRename.index) { $0 == temporary }
                #expect(!synced.isEmpty, "the journal's temporary file \(temporary) is fsynced before its rename:\n\(log.near(journalRename.index))")
            }

            // The run commit: its branch update is durable before the journal is removed.
            let removals = log.events.filter { $0.name.hasPrefix("unlink") && $0.succeeded && $0.paths.first == log.journal }
            let removal = try #require(removals.last, "the journal is removed at the end of the run")
            let lastHost = hostRenames.last!.index
            #expect(lastHost < removal.index, "every host file is written before the journal is removed")
            let runBranchUpdates = log.publishes(onto: log.branch).filter { $0.index > lastHost && $0.index < removal.index }
            #expect(!runBranchUpdates.isEmpty, "the run commit moves refs/heads/main after the host writes and before the journal's unlink")
            let runBranchSyncs = log.syncs((lastHost + 1)..<removal.index, log.isBranchFile)
            #expect(
                !runBranchSyncs.isEmpty,
                "refs/heads/main(.lock) of the run commit is fsynced before the journal's unlink:\n\(log.near(removal.index))")
        }
    }
}
