import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// A view of history at one commit.
struct HistoryPoint {
    var commit: ObjectID?
    var tree: ObjectID?
    var meta: [String: TrackedFile]
    var record: RunRecord?

    static let empty = HistoryPoint(commit: nil, tree: nil, meta: [:], record: nil)
}

/// The git history of every file provision has touched: tree paths mirror host paths, metadata
/// lives in `.provision/meta.json`, the run record in `.provision/run.json`.
final class HistoryStore {
    static let metaPath = ".provision/meta.json"
    static let recordPath = ".provision/run.json"

    let repo: GitRepository

    init(repo: GitRepository) {
        self.repo = repo
    }

    var journalPath: String { repo.path + "/provision-journal.json" }

    func tip() throws -> HistoryPoint {
        guard let commit = try repo.tip() else { return .empty }
        return try point(at: commit)
    }

    /// The last point read: a run reads the tip when it opens the history (verifyTip) and again
    /// when it starts; a commit never changes, so the second read is this.
    private var lastPoint: HistoryPoint?

    func point(at commit: ObjectID) throws -> HistoryPoint {
        if let lastPoint, lastPoint.commit == commit { return lastPoint }
        let point = try readPoint(at: commit)
        lastPoint = point
        return point
    }

    private func readPoint(at commit: ObjectID) throws -> HistoryPoint {
        do {
            let info = try repo.commit(commit)
            let decoder = JSONDecoder.history
            let meta = try repo.blob(tree: info.tree, path: Self.metaPath).map { try decoder.decode([String: TrackedFile].self, from: $0) } ?? [:]
            let record = try repo.blob(tree: info.tree, path: Self.recordPath).map { try decoder.decode(RunRecord.self, from: $0) }
            return HistoryPoint(commit: commit, tree: info.tree, meta: meta, record: record)
        } catch let error as ProvisionError {
            throw damage(error.message)
        } catch {
            throw damage("commit \(commit.short) holds an unreadable record (\(error))")
        }
    }

    func damage(_ what: String) -> ProvisionError {
        GitRepository.damaged(repo.path, what, repair: "Run git --git-dir \(repo.path) fsck to see what is lost.")
    }

    /// What a run stands on must be readable before it starts: the tip's commit, tree, records and
    /// the recorded state of every file it tracks. Reading them is O(tracked files), not O(runs).
    func verifyTip() throws -> HistoryPoint {
        let tip = try tip()
        guard let tree = tip.tree else { return tip }
        for key in tip.meta.keys.sorted() where tip.meta[key]?.type == "file" {
            do {
                guard try repo.blob(tree: tree, path: key) != nil else { throw damage("\(key) is tracked but missing from commit \(tip.commit!.short)") }
            } catch let error as ProvisionError where !error.message.contains("is damaged") {
                throw damage(error.message)
            }
        }
        return tip
    }

    /// The recorded state of a host path, nil when history has never seen it.
    func state(_ point: HistoryPoint, _ hostPath: String) throws -> FileState? {
        let key = HostRoot.relative(hostPath)
        guard let tracked = point.meta[key] else { return nil }
        guard let meta = tracked.meta, let tree = point.tree else { return .absent }
        guard let data = try repo.blob(tree: tree, path: key) else { return .absent }
        return .file(data, meta)
    }

    enum Comparison { case untracked, same, differs }

    /// Whether a file on the host still is what history last recorded, by hashing rather than
    /// reading the stored blob.
    func compare(_ point: HistoryPoint, _ hostPath: String, current: FileState) throws -> Comparison {
        let key = HostRoot.relative(hostPath)
        guard let tracked = point.meta[key] else { return .untracked }
        switch current {
        case .absent:
            return tracked.type == "absent" ? .same : .differs
        case .file(let data, let meta):
            guard tracked.meta == meta, let tree = point.tree, let entry = try repo.entry(tree: tree, path: key) else { return .differs }
            return entry.id == GitRepository.hashBlob(data) ? .same : .differs
        }
    }

    /// Records `files` (host path -> state) on top of `base` as one commit. A run commit (apply,
    /// rollback, recover) is tagged `run/N` once it is read back.
    func commit(_ base: HistoryPoint, files: [(path: String, state: FileState)], record: RunRecord, names: HostView) throws -> HistoryPoint {
        var record = record
        let inEffect = try appliesInEffect(after: base, record: record)
        record.appliesInEffect = inEffect.runs
        record.appliesInEffectComplete = inEffect.complete
        var meta = base.meta
        var changes: [GitRepository.TreeChange] = []
        // Blobs, tree and commit object become durable together (one syncfs in createCommit).
        let tree = try repo.deferringObjectSyncs { () throws -> ObjectID in
            for (path, state) in files {
                let key = HostRoot.relative(path)
                switch state {
                case .absent:
                    meta[key] = .absent
                    changes.append(.remove(path: key))
                case .file(let data, let fileMeta):
                    meta[key] = TrackedFile(
                        type: "file", mode: fileMeta.modeString, uid: fileMeta.uid, gid: fileMeta.gid,
                        user: names.name(forID: fileMeta.uid, inFile: "/etc/passwd"),
                        group: names.name(forID: fileMeta.gid, inFile: "/etc/group"))
                    changes.append(.upsert(path: key, blob: try repo.writeBlob(data), executable: fileMeta.mode & 0o100 != 0))
                }
            }
            let encoder = JSONEncoder.history
            changes.append(.upsert(path: Self.metaPath, blob: try repo.writeBlob(try encoder.encode(meta)), executable: false))
            changes.append(.upsert(path: Self.recordPath, blob: try repo.writeBlob(try encoder.encode(record)), executable: false))
            return try repo.updateTree(base: base.tree, changes: changes)
        }
        let commit = try repo.createCommit(
            tree: tree, parent: base.commit, message: Self.message(record),
            author: (record.user, "\(record.user)@\(record.host)"), time: record.startedAt)
        let present = files.filter { $0.state.exists }.map { HostRoot.relative($0.path) }
        try repo.verifyRecorded(commit, files: [Self.metaPath, Self.recordPath] + present)
        // The run is recorded whatever happens to its tag: a tag that could not be written is
        // made by the next run (`repairTags`).
        if Self.isRun(record.action) { try? repo.setReference(GitRepository.runTag(record.run), to: commit, message: "provision: run \(record.run)") }
        return HistoryPoint(commit: commit, tree: tree, meta: meta, record: record)
    }

    static func isRun(_ action: RunRecord.Action) -> Bool { action == .apply || action == .rollback || action == .recover }

    /// The applies in effect once `record` is committed on `base`: the base's list, less what the
    /// record undoes, plus the record itself when it is an apply (at most 32, newest first).
    func appliesInEffect(after base: HistoryPoint, record: RunRecord) throws -> (runs: [Int], complete: Bool) {
        var runs: [Int]
        var complete: Bool
        if let previous = base.record {
            if let list = previous.appliesInEffect {
                (runs, complete) = (list, previous.appliesInEffectComplete ?? true)
            } else {
                (runs, complete) = try appliesInEffectByWalk()
            }
        } else {
            (runs, complete) = ([], true)
        }
        let undone = Set(record.undid ?? [])
        runs.removeAll { undone.contains($0) }
        if record.action == .apply { runs.insert(record.run, at: 0) }
        if runs.count > 32 {
            runs = Array(runs.prefix(32))
            complete = false
        }
        return (runs, complete)
    }

    /// For a history written before records carried the list: once, the whole walk.
    private func appliesInEffectByWalk() throws -> (runs: [Int], complete: Bool) {
        var undone: Set<Int> = []
        var runs: [Int] = []
        try walkRecords { record, _ in
            undone.formUnion(record.undid ?? [])
            if record.action == .apply && !undone.contains(record.run) { runs.append(record.run) }
            return true
        }
        return (Array(runs.prefix(32)), runs.count <= 32)
    }

    /// The record of one commit, reading only `.provision/run.json`.
    func record(at commit: ObjectID) throws -> (RunRecord?, GitCommitInfo) {
        let info = try repo.commit(commit)
        do {
            let record = try repo.blob(tree: info.tree, path: Self.recordPath).map { try JSONDecoder.history.decode(RunRecord.self, from: $0) }
            return (record, info)
        } catch let error as ProvisionError {
            throw damage(error.message)
        } catch {
            throw damage("commit \(commit.short) holds an unreadable record (\(error))")
        }
    }

    /// Records from the tip back along first parents, newest first (the metadata is not read).
    func walkRecords(from start: ObjectID? = nil, _ body: (RunRecord, GitCommitInfo) throws -> Bool) throws {
        var next = try start ?? repo.tip()
        while let id = next {
            let (record, info) = try record(at: id)
            if let record, try !body(record, info) { return }
            next = info.parent
        }
    }

    /// The commit of run N (apply, rollback or recover): its tag, checked against the record it
    /// points at (a tag is as untrusted as the rest of a handed-over history), else a walk.
    func runCommit(_ run: Int) throws -> (id: ObjectID, record: RunRecord, info: GitCommitInfo)? {
        if let tagged = try repo.reference(GitRepository.runTag(run)),
            let (record, info) = try? record(at: tagged), let record, record.run == run, Self.isRun(record.action)
        {
            return (tagged, record, info)
        }
        var found: (ObjectID, RunRecord, GitCommitInfo)?
        try walkRecords { record, info in
            if record.run < run { return false }
            if record.run == run && Self.isRun(record.action) {
                found = (info.id, record, info)
                return false
            }
            return true
        }
        return found
    }

    /// Tags every run commit that lacks its tag (a history from before tags, or a run killed
    /// between its commit and its tag): the untagged ones from the tip back to the first tagged
    /// one, tagged oldest first, so that a tagged tip always means every run below it is tagged
    /// and the check costs one lookup. Under the root lock: a tag's stale lock file goes first.
    func repairTags(_ tip: HistoryPoint) throws -> Int {
        guard let start = tip.commit else { return 0 }
        if let record = tip.record, Self.isRun(record.action), try repo.reference(GitRepository.runTag(record.run)) == start { return 0 }
        var missing: [(run: Int, id: ObjectID)] = []
        try walkRecords(from: start) { record, info in
            guard Self.isRun(record.action) else { return true }
            if try repo.reference(GitRepository.runTag(record.run)) == info.id {
                // A repair killed after writing this tag can have left its lock file.
                unlink(repo.path + "/" + GitRepository.runTag(record.run) + ".lock")
                return false
            }
            missing.append((record.run, info.id))
            return true
        }
        for (run, id) in missing.reversed() {
            let name = GitRepository.runTag(run)
            unlink(repo.path + "/" + name + ".lock")
            try repo.setReference(name, to: id, message: "provision: run \(run)")
        }
        return missing.count
    }

    static func message(_ record: RunRecord) -> String {
        var trailers = ["Provision-Run: \(record.run)", "Provision-Action: \(record.action.rawValue)"]
        if let name = record.recipeName, let path = record.recipe { trailers.append("Provision-Recipe: \(name) (\(path))") }
        if let hash = record.recipeSHA256, record.recipe != nil { trailers.append("Provision-Recipe-SHA256: \(hash)") }
        if let undid = record.undid, !undid.isEmpty { trailers.append("Provision-Undid: \(undid.map(String.init).joined(separator: ", "))") }
        trailers += ["Provision-Host: \(record.host)", "Provision-User: \(record.user)", "Provision-Version: \(record.version)"]
        var body = ""
        if !record.files.isEmpty {
            body = record.files.map { "  \($0.change.rawValue): \($0.path)" }.joined(separator: "\n") + "\n\n"
        }
        return "\(record.summary)\n\n\(body)\(trailers.joined(separator: "\n"))\n"
    }

    /// Commits from the tip back along first parents, newest first.
    func walk(_ body: (HistoryPoint, GitCommitInfo) throws -> Bool) throws {
        var next = try repo.tip()
        while let id = next {
            let info = try repo.commit(id)
            if try !body(try point(at: id), info) { return }
            next = info.parent
        }
    }
}

extension JSONEncoder {
    static var history: JSONEncoder {
        let encoder = JSONEncoder.sorted
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }
}

extension JSONDecoder {
    static var history: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
