import CGit2
import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// Which entries `provision history` lists.
public struct HistoryFilter: Sendable {
    public var path: String?
    /// Runs in which this step changed something.
    public var step: String?
    public var action: RunRecord.Action?
    public var since: Date?
    public var until: Date?
    public var user: String?
    public var limit: Int?

    public init(
        path: String? = nil, step: String? = nil, action: RunRecord.Action? = nil, since: Date? = nil, until: Date? = nil,
        user: String? = nil, limit: Int? = nil
    ) {
        self.path = path
        self.step = step
        self.action = action
        self.since = since
        self.until = until
        self.user = user
        self.limit = limit
    }
}

/// Dates as the audit commands take them: ISO 8601 (`2026-11-27T14:05:00Z`, an offset, or none
/// meaning UTC, fractional seconds allowed) or a day (`2026-11-27`, in UTC).
public enum AuditDate {
    /// `endOfDay`: a bare day means its last second (for --until).
    public static func parse(_ text: String, endOfDay: Bool = false) -> Date? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let utc = TimeZone(identifier: "UTC")!
        if trimmed.count == 10, trimmed.wholeMatch(of: /\d{4}-\d{2}-\d{2}/) != nil {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = utc
            formatter.dateFormat = "yyyy-MM-dd"
            guard let day = formatter.date(from: trimmed) else { return nil }
            return endOfDay ? day.addingTimeInterval(86_399) : day
        }
        let iso = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds]] {
            iso.formatOptions = options
            if let date = iso.date(from: trimmed) { return date }
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = utc
        for format in ["yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: trimmed) { return date }
        }
        return nil
    }
}

/// A commit of history as the audit commands name it.
public struct RunRef: Sendable, Codable, Hashable {
    public var run: Int?
    public var action: RunRecord.Action?
    public var commit: String
}

public struct FileDiff: Sendable, Codable {
    public var path: String
    /// created, modified, deleted, or metadata (only owner or mode changed).
    public var change: String
    /// git's patch for this file (`diff --git` header included), shadow hashes redacted.
    public var diff: String
    /// Owner and mode changes git does not keep (from `.provision/meta.json`).
    public var meta: [String]
}

public struct DiffReport: Sendable, Codable {
    /// nil: the empty tree (the first commit).
    public var from: RunRef?
    public var to: RunRef
    public var files: [FileDiff]

    /// The patch as `git diff` prints it, then `# ` lines for the owner and mode changes it cannot show.
    public var text: String {
        files.map(\.diff).joined() + files.flatMap(\.meta).map { "# \($0)\n" }.joined()
    }
}

public struct BlameLine: Sendable, Codable {
    public var line: Int
    public var text: String
    /// "run" (an apply set it), "by hand" (a drift commit found it), "original" (there before
    /// provision first touched the file), "rollback", "recover", or "not recorded" (edited on the
    /// host since the last run).
    public var origin: String
    public var run: Int?
    public var action: RunRecord.Action?
    public var step: String?
    public var commit: String?
    public var user: String?
    public var date: Date?
}

extension BlameLine {
    /// A line as the commit that last set it says: the run and step of an apply, "by hand" for a
    /// drift commit, "original" for a pre-state one.
    init(_ number: Int, _ text: String, owner: ObjectID, record: RunRecord?, info: GitCommitInfo, path: String) {
        self.init(
            line: number, text: text, origin: "run", run: record?.run, action: record?.action, step: nil, commit: owner.description,
            user: record?.user ?? info.author, date: info.time)
        switch record?.action {
        case .drift?: origin = "by hand"
        case .preState?: origin = "original"
        case .rollback?: origin = "rollback"
        case .recover?: origin = "recover"
        default: step = record?.steps?.first { $0.files.contains(path) }?.id
        }
    }
}

public struct BlameReport: Sendable, Codable {
    public var path: String
    /// The last recorded state (the history's tip).
    public var recorded: RunRef
    /// The file on the host: "recorded" (as history has it), "differs" (the lines are the host's),
    /// "metadata" (content as recorded, owner or mode not), "absent", or "unreadable".
    public var live: String
    public var lines: [BlameLine]
}

public struct DriftEntry: Sendable, Codable {
    public var path: String
    /// modified, created (recorded absent), deleted, metadata (owner or mode), unsafe (the path
    /// no longer resolves to itself), unreadable.
    public var change: String
    public var diff: String
}

public struct PendingRecovery: Sendable, Codable {
    public var run: Int
    public var action: RunRecord.Action
    public var paths: [String]
}

/// What `provision status` reports: how the host compares with the last recorded state.
public struct HostStatus: Sendable, Codable {
    public var root: String
    public var run: Int?
    public var commit: String?
    public var tracked: Int
    public var drift: [DriftEntry]
    /// A run that was interrupted: the next apply or rollback puts its files back first.
    public var recovery: PendingRecovery?
    /// Handlers that failed and have not run since (the next apply runs them).
    public var pendingHandlers: [[String]]
    /// The newest apply in effect.
    public var lastApplied: Int?
    /// No drift and no interrupted run.
    public var clean: Bool { drift.isEmpty && recovery == nil }
}

public struct ExportOptions: Sendable {
    public var file: String
    /// A run (number, run/N, commit prefix) or a date: only what was recorded after it.
    public var since: String?
    public var includeSecrets: Bool

    public init(file: String, since: String? = nil, includeSecrets: Bool = false) {
        self.file = file
        self.since = since
        self.includeSecrets = includeSecrets
    }
}

public struct ExportMember: Sendable, Codable, Hashable {
    public var name: String
    public var size: Int
    public var sha256: String
}

/// `provision-export/manifest.json`: what the archive holds and the SHA-256 of every other member.
public struct ExportManifest: Sendable, Codable {
    public var format: String
    public var version: Int
    public var tool: String
    public var host: String?
    public var created: Date
    public var history: String
    /// libarchive and its compression libraries, as `archive_version_details` names them.
    public var archiver: String?
    /// Password hash fields of shadow and gshadow replaced by `<redacted>` in every blob of the bundle.
    public var redacted: Bool
    public var since: String?
    public var commits: Int
    public var runs: [Int]
    public var bundle: String
    public var references: [GitBundle.Reference]
    public var prerequisites: [String]
    public var members: [ExportMember]
}

public struct ExportReport: Sendable, Codable {
    public var file: String
    public var compression: ArchiveCompression
    public var bytes: Int
    public var manifest: ExportManifest
}

public struct ExportVerification: Sendable, Codable {
    public var file: String
    public var valid: Bool
    public var problems: [String]
    /// What could not be checked (not a problem).
    public var notes: [String] = []
    public var manifest: ExportManifest?
    public var bundle: GitBundle.Summary?
}

extension Engine {
    static let exportDirectory = "provision-export/"

    func requireHistory() throws -> HistoryStore {
        guard let history = try openHistory() else {
            throw ProvisionError(.notFound, "no history at \(historyPath): nothing recorded yet")
        }
        return history
    }

    /// RUN as the audit commands take it: a run number, `run/N`, or a commit id prefix of at least
    /// 4 hex digits (a prefix of digits only is read as a run number first).
    func resolve(_ spec: String, in history: HistoryStore) throws -> (id: ObjectID, record: RunRecord?, info: GitCommitInfo) {
        var text = spec.trimmingCharacters(in: .whitespaces)
        let tagged = text.hasPrefix("run/")
        if tagged { text.removeFirst(4) }
        if !text.isEmpty, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber), let run = Int(text) {
            if let found = try history.runCommit(run) { return (found.id, found.record, found.info) }
            if tagged || text.count < 4 { throw ProvisionError(.notFound, "history has no run \(run) (see provision history)") }
        } else if tagged {
            throw ProvisionError(.invalidInput, "\(spec) is not a run tag (run/N)")
        }
        if let id = try history.repo.commit(prefix: text) {
            let (record, info) = try history.record(at: id)
            return (id, record, info)
        }
        throw ProvisionError(
            .notFound, "\(spec) names no run or commit in \(historyPath) (give a run number, run/N, or a commit id of at least 4 hex digits)")
    }

    /// A path argument as a host path: absolute, or relative to the root (as git pathspecs are).
    static func hostPath(_ argument: String) throws -> String {
        try HostRoot.normalize(argument.hasPrefix("/") ? argument : "/" + argument)
    }

    static func ref(_ record: RunRecord?, _ id: ObjectID) -> RunRef { RunRef(run: record?.run, action: record?.action, commit: id.description) }

    /// The run number RUN names (a drift or pre-state commit names the run it was recorded for).
    public func runNumber(_ spec: String) throws -> Int {
        if let run = Int(spec), spec.allSatisfy(\.isNumber) { return run }
        let history = try requireHistory()
        guard let record = try resolve(spec, in: history).record else {
            throw ProvisionError(.notFound, "\(spec) names a commit without a run record")
        }
        return record.run
    }

    // MARK: history

    public func history(_ filter: HistoryFilter) throws -> [HistoryEntry] {
        guard let history = try openHistory() else { return [] }
        let path = try filter.path.map { try root.resolve(try Self.hostPath($0)) }
        func matches(_ candidate: String) -> Bool { path.map { candidate == $0 || candidate.hasPrefix($0 + "/") } ?? true }
        var entries: [HistoryEntry] = []
        var older = 0
        try history.walkRecords { record, info in
            if let since = filter.since, info.time < since {
                // Commits come newest first; like git log --since, a few out of order are tolerated.
                older += 1
                return older < 5
            }
            older = 0
            if let until = filter.until, info.time > until { return true }
            if let action = filter.action, record.action != action { return true }
            if let user = filter.user, record.user != user { return true }
            if let step = filter.step {
                guard let entry = record.steps?.first(where: { $0.id == step }), entry.files.contains(where: matches) else { return true }
            }
            if path != nil, !record.files.contains(where: { matches($0.path) }) { return true }
            entries.append(HistoryEntry(record, info))
            return filter.limit.map { entries.count < $0 } ?? true
        }
        return entries
    }

    // MARK: diff

    /// What RUN changed (its parent to it), or with `second` every change from RUN to RUN2: the
    /// same files and hunks as `git diff A B -- PATHS`, less `.provision/`, with shadow hashes
    /// redacted, and the owner and mode changes git cannot show.
    public func diff(_ first: String, _ second: String? = nil, paths: [String] = []) throws -> DiffReport {
        let history = try requireHistory()
        let a = try resolve(first, in: history)
        let from: (id: ObjectID, record: RunRecord?, info: GitCommitInfo)?
        let to: (id: ObjectID, record: RunRecord?, info: GitCommitInfo)
        if let second {
            from = a
            to = try resolve(second, in: history)
        } else {
            to = a
            from = try a.info.parent.map { id in
                let (record, info) = try history.record(at: id)
                return (id, record, info)
            }
        }
        let specs = try paths.filter { !["/", ".", ""].contains($0) }.map { HostRoot.relative(try Self.hostPath($0)) }
        var files: [FileDiff] = []
        for delta in try history.repo.diffTrees(from?.info.tree, to.info.tree, paths: specs)
        where !(delta.path == ".provision" || delta.path.hasPrefix(".provision/")) {
            files.append(try render(delta, repo: history.repo))
        }
        let before = try from.map { try history.point(at: $0.id) } ?? .empty
        let after = try history.point(at: to.id)
        for key in Set(before.meta.keys).union(after.meta.keys).sorted() where GitRepository.pathspecMatches(specs, key) {
            guard let old = before.meta[key], let new = after.meta[key], old.type == "file", new.type == "file" else { continue }
            var lines: [String] = []
            if old.mode != new.mode { lines.append("mode \(old.mode ?? "?") -> \(new.mode ?? "?") /\(key)") }
            if old.uid != new.uid || old.gid != new.gid {
                lines.append("owner \(old.uid.map(String.init) ?? "?"):\(old.gid.map(String.init) ?? "?") -> \(new.uid.map(String.init) ?? "?"):\(new.gid.map(String.init) ?? "?") /\(key)")
            }
            guard !lines.isEmpty else { continue }
            if let index = files.firstIndex(where: { $0.path == "/" + key }) {
                files[index].meta = lines
            } else {
                files.append(FileDiff(path: "/" + key, change: "metadata", diff: "", meta: lines))
            }
        }
        return DiffReport(from: from.map { Self.ref($0.record, $0.id) }, to: Self.ref(to.record, to.id), files: files)
    }

    /// One file's patch in git's own layout (header lines, 7-digit index ids, hunks from xdiff).
    private func render(_ delta: TreeDelta, repo: GitRepository) throws -> FileDiff {
        let path = delta.path
        let zero = "0000000"
        func abbrev(_ id: ObjectID?) -> String { id.map { String($0.description.prefix(7)) } ?? zero }
        func mode(_ value: UInt32) -> String { String(value, radix: 8) }
        var text = "diff --git a/\(path) b/\(path)\n"
        switch delta.status {
        case .added:
            text += "new file mode \(mode(delta.newMode))\nindex \(zero)..\(abbrev(delta.newID))\n"
        case .deleted:
            text += "deleted file mode \(mode(delta.oldMode))\nindex \(abbrev(delta.oldID))..\(zero)\n"
        case .modified:
            if delta.oldMode != delta.newMode { text += "old mode \(mode(delta.oldMode))\nnew mode \(mode(delta.newMode))\n" }
            if delta.oldID != delta.newID {
                text += "index \(abbrev(delta.oldID))..\(abbrev(delta.newID))\(delta.oldMode == delta.newMode ? " " + mode(delta.newMode) : "")\n"
            }
        }
        if delta.oldID != delta.newID {
            let old = try delta.oldID.map { try repo.blob($0) } ?? Data()
            let new = try delta.newID.map { try repo.blob($0) } ?? Data()
            let oldLabel = delta.oldID == nil ? "/dev/null" : "a/\(path)"
            let newLabel = delta.newID == nil ? "/dev/null" : "b/\(path)"
            if old.prefix(8000).contains(0) || new.prefix(8000).contains(0) {
                text += "Binary files \(oldLabel) and \(newLabel) differ\n"
            } else {
                let body = Diff.unified(
                    old: old, new: new, oldLabel: oldLabel, newLabel: newLabel, redact: Secrets.redactor(for: "/" + path), requireUTF8: false)
                // An empty file has no hunks, and git then prints no ---/+++ lines either.
                if body.contains("\n@@ -") { text += body }
            }
        }
        let change: String
        switch delta.status {
        case .added: change = "created"
        case .deleted: change = "deleted"
        case .modified: change = "modified"
        }
        return FileDiff(path: "/" + path, change: change, diff: text, meta: [])
    }

    // MARK: blame

    /// Each line of PATH with the run, step, user and date that last set it, from libgit2's blame
    /// on the history (first parents). When the file on the host differs from the recorded state,
    /// the lines are the host's and those history never saw are "not recorded".
    public func blame(_ argument: String) throws -> BlameReport {
        let history = try requireHistory()
        let path = try root.resolve(try Self.hostPath(argument))
        let key = HostRoot.relative(path)
        let tip = try history.tip()
        guard let tipID = tip.commit, let tracked = tip.meta[key] else {
            throw ProvisionError(.notFound, "\(path) is not tracked: no run has recorded it (provision status lists what is)")
        }
        let tipRun = tip.record?.run
        guard tracked.type == "file", let recorded = try history.state(tip, path), let content = recorded.content else {
            throw ProvisionError(
                .notFound, "\(path) is absent in the last recorded state (run \(tipRun.map(String.init) ?? "?")); provision history \(path) shows the run that removed it")
        }
        let owners = try blameLines(history, key: key, tip: tipID, content: content)
        var described: [ObjectID: (RunRecord?, GitCommitInfo)] = [:]
        for owner in Set(owners) { described[owner] = try history.record(at: owner) }
        let redact = Secrets.redactor(for: path)
        func line(_ number: Int, _ text: Substring, _ owner: ObjectID) -> BlameLine {
            let (record, info) = described[owner]!
            return BlameLine(number, redact?(text) ?? String(text), owner: owner, record: record, info: info, path: path)
        }
        var lines: [BlameLine] = []
        var live = "recorded"
        let current: FileState?
        do { current = try root.readState(path) } catch { current = nil }
        if current == nil { live = "unreadable" } else if current == .absent { live = "absent" }
        if let liveData = current?.content, liveData != content {
            live = "differs"
            let mapping = Diff.lineMapping(old: content, new: liveData)
            for (index, text) in Diff.lines(liveData).enumerated() {
                if let old = mapping[index], old < owners.count {
                    lines.append(line(index + 1, text, owners[old]))
                } else {
                    lines.append(
                        BlameLine(
                            line: index + 1, text: redact?(text) ?? String(text), origin: "not recorded", run: tipRun, action: nil, step: nil,
                            commit: nil, user: nil, date: nil))
                }
            }
        } else {
            if let meta = current?.meta, meta != recorded.meta { live = "metadata" }
            for (index, text) in Diff.lines(content).enumerated() { lines.append(line(index + 1, text, owners[index])) }
        }
        return BlameReport(path: path, recorded: Self.ref(tip.record, tipID), live: live, lines: lines)
    }

    /// The commit that last set each line of `content` (the file at `tip`). libgit2 walks back only
    /// to the commit of the last blame kept in the cache; lines older than that take the cached
    /// answer, so a blame costs the runs since the last one, not the whole history.
    func blameLines(_ history: HistoryStore, key: String, tip: ObjectID, content: Data) throws -> [ObjectID] {
        let count = Diff.lines(content).count
        let cache = BlameCache(historyPath: historyPath, key: key)
        let cached = cache.load()
        func attempt(_ boundary: (commit: ObjectID, owners: [ObjectID])?) throws -> [ObjectID]? {
            let hunks = try history.repo.blame(path: key, newest: tip, oldest: boundary?.commit)
            var owners = [ObjectID?](repeating: nil, count: count)
            for hunk in hunks {
                for offset in 0..<hunk.lines {
                    let index = hunk.finalStart - 1 + offset
                    guard index >= 0, index < count else { return nil }
                    if let boundary, hunk.boundary, hunk.commit == boundary.commit {
                        let origin = hunk.originStart - 1 + offset
                        guard origin >= 0, origin < boundary.owners.count else { return nil }
                        owners[index] = boundary.owners[origin]
                    } else {
                        owners[index] = hunk.commit
                    }
                }
            }
            return owners.allSatisfy { $0 != nil } ? owners.map { $0! } : nil
        }
        var owners = try attempt(cached)
        // A cache naming a commit the history cannot read is ignored like any other bad cache.
        if let found = owners, cached != nil, !Set(found).allSatisfy({ (try? history.repo.commit($0)) != nil }) { owners = nil }
        if owners == nil && cached != nil { owners = try attempt(nil) }
        guard let owners else { throw ProvisionError(.history, "libgit2's blame of \(key) did not account for every line") }
        cache.save(commit: tip, owners: owners)
        return owners
    }

    /// Brings the blame caches up to the tip (when history is packed): `all` every tracked file,
    /// else only those already blamed once. Failures only leave a cache behind.
    func refreshBlameCaches(_ history: HistoryStore, all: Bool) {
        guard let tip = try? history.tip(), let tipID = tip.commit, let tree = tip.tree else { return }
        for key in tip.meta.keys.sorted() where tip.meta[key]?.type == "file" {
            let cache = BlameCache(historyPath: historyPath, key: key)
            if !all && !cache.exists { continue }
            guard let content = try? history.repo.blob(tree: tree, path: key) else { continue }
            _ = try? blameLines(history, key: key, tip: tipID, content: content)
        }
    }

    // MARK: status

    /// Tracked files that differ from the last recorded state, an interrupted run, failed
    /// handlers still due, and the apply in effect (for the reboot check the CLI adds).
    public func status() throws -> (status: HostStatus, lastApplied: RunRecord?) {
        guard let history = try openHistory() else {
            return (HostStatus(root: root.path, tracked: 0, drift: [], pendingHandlers: []), nil)
        }
        let tip = try history.tip()
        var drift: [DriftEntry] = []
        let source = "the metadata of \(historyPath)"
        for key in tip.meta.keys.sorted() {
            let path: String
            do {
                path = try root.recorded("/" + key, in: source)
            } catch let error as ProvisionError {
                drift.append(DriftEntry(path: "/" + key, change: "unsafe", diff: error.message + "\n"))
                continue
            }
            let current: FileState
            do {
                current = try root.readState(path)
            } catch {
                drift.append(DriftEntry(path: path, change: "unreadable", diff: "\((error as? ProvisionError)?.message ?? "\(error)")\n"))
                continue
            }
            guard try history.compare(tip, path, current: current) == .differs else { continue }
            let recorded = try history.state(tip, path) ?? .absent
            let change: String
            switch (recorded, current) {
            case (.absent, _): change = "created"
            case (_, .absent): change = "deleted"
            default: change = recorded.content == current.content ? "metadata" : "modified"
            }
            drift.append(DriftEntry(path: path, change: change, diff: Diff.describe(path: path, before: recorded, after: current)))
        }
        var recovery: PendingRecovery?
        if let journal = try Journal.read(history.journalPath) {
            let done =
                tip.record.map {
                    ($0.run == journal.run && $0.action == journal.action) || ($0.action == .recover && $0.undid == [journal.run])
                } ?? false
            if !done { recovery = PendingRecovery(run: journal.run, action: journal.action, paths: journal.paths) }
        }
        let applied = try lastApplied()
        let status = HostStatus(
            root: root.path, run: tip.record?.run, commit: tip.commit?.description, tracked: tip.meta.count, drift: drift, recovery: recovery,
            pendingHandlers: Self.pendingHandlers(after: tip.record).map(\.argv), lastApplied: applied?.run)
        return (status, applied)
    }

    // MARK: gc

    /// `provision history gc`: everything into one pack (libgit2's pack builder), the run tags into
    /// packed-refs, and the blame caches brought up to date. Under the root lock.
    public func gc() throws -> PackReport {
        let lock = try RootLock(root: root, timeout: lockTimeout, onWait: onWait)
        defer { withExtendedLifetime(lock) {} }
        guard let history = try openHistory(repairing: true) else {
            throw ProvisionError(.notFound, "no history at \(historyPath): nothing to pack")
        }
        let report = try history.repo.pack(full: true)
        refreshBlameCaches(history, all: true)
        return report
    }

    // MARK: export

    /// One archive holding a git bundle of the history (redacted unless `includeSecrets`), every
    /// commit's run record, and a manifest with the SHA-256 of each. Written beside FILE and
    /// renamed into place (mode 0600).
    public func export(_ options: ExportOptions) throws -> ExportReport {
        guard let compression = ArchiveCompression.forFile(options.file) else {
            throw ProvisionError(.invalidInput, "\(options.file): the export's name must end in .tar, .tar.gz or .tar.zst (it chooses the compression)")
        }
        let history = try requireHistory()
        guard let tipID = try history.repo.tip() else { throw ProvisionError(.notFound, "the history at \(historyPath) has no commits") }
        var chain: [(info: GitCommitInfo, record: RunRecord?)] = []
        var next: ObjectID? = tipID
        while let id = next {
            let (record, info) = try history.record(at: id)
            chain.append((info, record))
            next = info.parent
        }
        chain.reverse()
        var start = 0
        if let since = options.since {
            if since.contains("-") || since.contains(":"), let date = AuditDate.parse(since) {
                start = chain.firstIndex { $0.info.time >= date } ?? chain.count
            } else {
                let boundary = try resolve(since, in: history)
                guard let index = chain.firstIndex(where: { $0.info.id == boundary.id }) else {
                    throw ProvisionError(.invalidInput, "\(since) is not on the history's main line")
                }
                start = index + 1
            }
            guard start < chain.count else { throw ProvisionError(.notFound, "nothing was recorded after \(since)") }
        }
        let included = chain[start...]
        let boundary = start > 0 ? chain[start - 1].info : nil

        // The bundle: the history as it is, or a copy whose shadow and gshadow blobs have their
        // hash fields redacted, every commit re-created on the redacted trees (in memory only).
        let scratch = try GitRepository.scratch(history.repo.path)
        var mapped: [ObjectID: ObjectID] = [:]
        if !options.includeSecrets {
            var redacted: [ObjectID: ObjectID] = [:]
            var parent: ObjectID?
            for (info, _) in chain {
                var changes: [GitRepository.TreeChange] = []
                for file in Secrets.files.sorted() {
                    let key = HostRoot.relative(file)
                    guard let entry = try scratch.entry(tree: info.tree, path: key) else { continue }
                    let replacement: ObjectID
                    if let known = redacted[entry.id] {
                        replacement = known
                    } else {
                        let data = try scratch.blob(entry.id)
                        let clean = Secrets.redactText(data)
                        replacement = clean == data ? entry.id : try scratch.writeBlob(clean)
                        redacted[entry.id] = replacement
                    }
                    if replacement != entry.id {
                        changes.append(.upsert(path: key, blob: replacement, executable: entry.mode == GIT_FILEMODE_BLOB_EXECUTABLE.rawValue))
                    }
                }
                let tree = changes.isEmpty ? info.tree : try scratch.updateTree(base: info.tree, changes: changes)
                let id = tree == info.tree && parent == info.parent ? info.id : try scratch.recreateCommit(info.id, tree: tree, parent: parent)
                mapped[info.id] = id
                parent = id
            }
        }
        func map(_ id: ObjectID) -> ObjectID { mapped[id] ?? id }
        var references: [(name: String, id: ObjectID)] = [("HEAD", map(tipID)), (GitRepository.branch, map(tipID))]
        for (info, record) in included {
            if let record, HistoryStore.isRun(record.action) { references.append((GitRepository.runTag(record.run), map(info.id))) }
        }
        let prerequisites: [(id: ObjectID, subject: String)] = boundary.map { [(map($0.id), String($0.message.prefix { $0 != "\n" }))] } ?? []
        let pack = try scratch.packData(tips: [map(tipID)], hidden: prerequisites.map(\.id))
        let bundle = GitBundle.encode(references: references, prerequisites: prerequisites, pack: pack)

        // The archive, beside its final name until it is complete and synced.
        let target = URL(fileURLWithPath: options.file).standardizedFileURL.path
        let directory = (target as NSString).deletingLastPathComponent
        var template = Array("\(directory)/.\((target as NSString).lastPathComponent).provision-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw ProvisionError.io("cannot create the export in", directory) }
        let temporary = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var placed = false
        defer {
            if !placed { unlink(temporary) }
        }
        var members: [ExportMember] = []
        var runs: [Int] = []
        do {
            defer { close(fd) }
            fchmod(fd, 0o600)
            let writer = try TarWriter(fd: fd, compression: compression, mtime: chain.last!.info.time)
            func add(_ name: String, _ data: Data) throws {
                try writer.add(Self.exportDirectory + name, data)
                members.append(ExportMember(name: Self.exportDirectory + name, size: data.count, sha256: SHA256.hex(data)))
            }
            try add("history.bundle", bundle)
            var names: Set<String> = []
            for (info, record) in included {
                guard let record, let data = try history.repo.blob(tree: info.tree, path: HistoryStore.recordPath) else { continue }
                if HistoryStore.isRun(record.action) { runs.append(record.run) }
                var name = "records/" + String(format: "%06d", record.run) + "-" + record.action.rawValue
                if !names.insert(name).inserted { name += "-" + info.id.short }
                try add(name + ".json", data)
            }
            let manifest = ExportManifest(
                format: "provision-export", version: 1, tool: "provision \(provisionVersion)", host: chain.last?.record?.host, created: Date(),
                history: historyPath, archiver: TarWriter.libraries, redacted: !options.includeSecrets, since: options.since, commits: included.count, runs: runs,
                bundle: Self.exportDirectory + "history.bundle",
                references: references.map { GitBundle.Reference(name: $0.name, id: $0.id.description) },
                prerequisites: prerequisites.map { $0.id.description }, members: members)
            // The manifest's own hash, in sha256sum's format (`sha256sum -c manifest.sha256`).
            let manifestData = try JSONEncoder.history.encode(manifest)
            try writer.add(Self.exportDirectory + "manifest.json", manifestData)
            try writer.add(Self.exportDirectory + "manifest.sha256", Data("\(SHA256.hex(manifestData))  manifest.json\n".utf8))
            try writer.finish()
            guard fsync(fd) == 0 else { throw ProvisionError.io("cannot sync", temporary) }
            guard rename(temporary, target) == 0 else { throw ProvisionError.io("cannot write", target) }
            placed = true
            GitRepository.syncDirectory(directory)
            var info = stat()
            stat(target, &info)
            return ExportReport(file: target, compression: compression, bytes: Int(info.st_size), manifest: manifest)
        }
    }

    /// Checks an export: every byte of the archive (tar headers, padding, gzip trailer), each
    /// member against the manifest's SHA-256 and size, nothing extra and nothing missing, the
    /// records readable, and the bundle valid (header, references, pack, connectivity).
    public static func verifyExport(_ file: String) -> ExportVerification {
        var result = ExportVerification(file: file, valid: false, problems: [])
        func problem(_ text: String) { result.problems.append(text) }
        let limit = 4 << 30
        var info = stat()
        guard stat(file, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            problem("\(file) is not a regular file")
            return result
        }
        guard Int(info.st_size) <= limit, let raw = FileManager.default.contents(atPath: file) else {
            problem("\(file) cannot be read (or is larger than 4 GiB)")
            return result
        }
        var hashes: [String: (size: Int, sha256: String)] = [:]
        var manifestData: Data?
        var manifestHash: Data?
        var bundleData: Data?
        var records: [String: Data] = [:]
        do {
            let reader = try TarReader(path: file)
            while let entry = try reader.next() {
                let data = try reader.read(limit: 1 << 30)
                guard entry.isRegularFile else {
                    problem("\(entry.name) is not a regular file")
                    continue
                }
                guard hashes[entry.name] == nil else {
                    problem("\(entry.name) appears twice")
                    continue
                }
                hashes[entry.name] = (data.count, SHA256.hex(data))
                if entry.name == exportDirectory + "manifest.json" { manifestData = data }
                if entry.name == exportDirectory + "manifest.sha256" { manifestHash = data }
                if entry.name == exportDirectory + "history.bundle" { bundleData = data }
                if entry.name.hasPrefix(exportDirectory + "records/") { records[entry.name] = data }
            }
        } catch {
            problem("the archive is damaged: \((error as? ProvisionError)?.message ?? "\(error)")")
        }
        // The bytes libarchive's reader skips over.
        let magic = [UInt8](raw.prefix(4))
        let gzip = magic.starts(with: [0x1f, 0x8b])
        let zstd = magic == [0x28, 0xb5, 0x2f, 0xfd]
        var tarStream: Data?
        do {
            let tar = gzip || zstd ? try TarReader.decompressed(path: file, limit: limit) : raw
            tarStream = tar
            if let issue = ArchiveLayout.tarProblem(tar) { problem("the tar stream is damaged: \(issue)") }
            if gzip, let issue = ArchiveLayout.gzipProblem(file: raw, decompressed: tar) { problem(issue) }
            if zstd, let issue = ArchiveLayout.zstdProblem(file: raw) { problem(issue) }
        } catch {
            problem("the archive cannot be decompressed: \((error as? ProvisionError)?.message ?? "\(error)")")
        }
        guard let manifestData else {
            problem("no \(exportDirectory)manifest.json in the archive")
            return result
        }
        if manifestHash != Data("\(SHA256.hex(manifestData))  manifest.json\n".utf8) {
            problem("\(exportDirectory)manifest.json does not match \(exportDirectory)manifest.sha256")
        }
        guard let manifest = try? JSONDecoder.history.decode(ExportManifest.self, from: manifestData), manifest.format == "provision-export" else {
            problem("\(exportDirectory)manifest.json is not a provision export manifest")
            return result
        }
        result.manifest = manifest
        // zstd as libarchive 3.6 writes it carries no checksum, and some bits of a compressed block
        // change nothing when decoded: with the same libraries, the stream must re-compress to
        // the very same bytes.
        if zstd, let tarStream {
            if manifest.archiver == TarWriter.libraries {
                if (try? TarWriter.compress(tarStream, .zstd)) != raw { problem("the zstd stream is not the one its content compresses to") }
            } else {
                result.notes.append(
                    "written with \(manifest.archiver ?? "unknown libraries"), read with \(TarWriter.libraries): the zstd stream is checked by decoding it only")
            }
        }
        var listed: Set<String> = []
        for member in manifest.members {
            listed.insert(member.name)
            guard let found = hashes[member.name] else {
                problem("\(member.name) is listed in the manifest but missing")
                continue
            }
            if found.size != member.size || found.sha256 != member.sha256 {
                problem("\(member.name) does not match the manifest (SHA-256 \(found.sha256), manifest \(member.sha256))")
            }
        }
        let own: Set<String> = [exportDirectory + "manifest.json", exportDirectory + "manifest.sha256"]
        for name in hashes.keys.sorted() where !own.contains(name) && !listed.contains(name) {
            problem("\(name) is in the archive but not in the manifest")
        }
        for (name, data) in records.sorted(by: { $0.key < $1.key }) where (try? JSONDecoder.history.decode(RunRecord.self, from: data)) == nil {
            problem("\(name) is not a run record")
        }
        if let bundleData {
            do {
                let summary = try GitBundle.verify(bundleData)
                result.bundle = summary
                if Set(summary.references) != Set(manifest.references) { problem("the bundle's references differ from the manifest's") }
            } catch {
                problem("\(manifest.bundle): \((error as? ProvisionError)?.message ?? "\(error)")")
            }
        } else {
            problem("no \(manifest.bundle) in the archive")
        }
        result.valid = result.problems.isEmpty
        return result
    }
}

/// The last blame of one tracked file, kept beside the history (`provision-cache/`, 0700 like the
/// history): which commit set each line of the file at `commit`. Derived data only: a cache that
/// is missing, damaged or does not fit is ignored and the blame walks history instead.
struct BlameCache {
    struct Entry: Codable {
        var version: Int
        var path: String
        var commit: String
        var commits: [String]
        var lines: [Int]
    }

    let directory: String
    let key: String
    let name: String

    init(historyPath: String, key: String) {
        directory = historyPath + "/provision-cache"
        self.key = key
        name = "blame-" + SHA256.hex(Data(key.utf8)).prefix(32) + ".json"
    }

    /// The cache directory, opened without following a symlink put in its place.
    private func openDirectory(create: Bool) -> Int32? {
        if create { mkdir(directory, 0o700) }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        return fd >= 0 ? fd : nil
    }

    var exists: Bool {
        guard let dir = openDirectory(create: false) else { return false }
        defer { close(dir) }
        var info = stat()
        return fstatat(dir, name, &info, AT_SYMLINK_NOFOLLOW) == 0
    }

    func load() -> (commit: ObjectID, owners: [ObjectID])? {
        guard let dir = openDirectory(create: false) else { return nil }
        defer { close(dir) }
        let fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
            let data = try? HostRoot.readAll(fd, size: Int(info.st_size), what: name, limit: 16 << 20),
            let entry = try? JSONDecoder().decode(Entry.self, from: data), entry.version == 1, entry.path == key,
            let commit = ObjectID(hex: entry.commit)
        else { return nil }
        let commits = entry.commits.compactMap(ObjectID.init(hex:))
        guard commits.count == entry.commits.count, entry.lines.allSatisfy({ commits.indices.contains($0) }) else { return nil }
        return (commit, entry.lines.map { commits[$0] })
    }

    func save(commit: ObjectID, owners: [ObjectID]) {
        var commits: [String] = []
        var index: [ObjectID: Int] = [:]
        let lines = owners.map { owner -> Int in
            if let known = index[owner] { return known }
            index[owner] = commits.count
            commits.append(owner.description)
            return commits.count - 1
        }
        guard let data = try? JSONEncoder().encode(Entry(version: 1, path: key, commit: commit.description, commits: commits, lines: lines)),
            let dir = openDirectory(create: true)
        else { return }
        defer { close(dir) }
        let temporary = ".\(name).\(getpid()).tmp"
        let fd = openat(dir, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        let written = (try? RootWriter.writeAll(fd, data, what: temporary)) != nil
        close(fd)
        if !written || renameat(dir, temporary, dir, name) != 0 { unlinkat(dir, temporary, 0) }
    }
}
