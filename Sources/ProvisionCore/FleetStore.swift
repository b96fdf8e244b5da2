import CGit2
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What one fleet run did on one host, as the controller saw it.
public struct FleetHostOutcome: Sendable, Codable {
    public enum Status: String, Sendable, Codable {
        /// The host's run succeeded and changed nothing (or, for plan, has nothing to change).
        case ok
        case changed
        case failed
        /// No SSH connection (refused, timed out, host key changed).
        case unreachable
        /// Not attempted: a batch before it passed --max-fail-percent, or nothing to roll back there.
        case skipped
    }
    public var host: String
    public var status: Status
    /// The host's own run number (its history's `run/N`), when the run was recorded there.
    public var run: Int?
    /// The host's commit of that run (also under refs/hosts/HOST in fleet.git).
    public var commit: String?
    public var changedFiles: Int
    public var stepsOK: Int
    public var stepsChanged: Int
    public var rebootRequired: Bool
    public var error: String?
    /// After a failure: was the run recorded on the host, and is a crash recovery pending there?
    public var recorded: Bool?
    public var recoveryPending: Bool?
    public var seconds: Double

    public init(host: String, status: Status) {
        self.host = host
        self.status = status
        changedFiles = 0
        stepsOK = 0
        stepsChanged = 0
        rebootRequired = false
        seconds = 0
    }
}

/// One fleet run as the controller records it in `fleet.git`: which host run belongs to it, with
/// which recipe and variables, run by whom.
public struct FleetRunRecord: Sendable, Codable {
    public var number: Int
    public var action: String
    public var recipe: String?
    public var recipeSHA256: String?
    public var vars: [String: String]
    public var inventory: String
    public var limit: String?
    /// For a rollback: the fleet run it undid.
    public var undid: Int?
    public var user: String
    public var controller: String
    public var version: String
    public var started: Date
    public var finished: Date
    public var hosts: [FleetHostOutcome]

    public init(
        number: Int, action: String, recipe: String?, recipeSHA256: String?, vars: [String: String], inventory: String, limit: String?,
        undid: Int?, user: String = Invoker.current().user, controller: String = ProcessInfo.processInfo.hostName, started: Date,
        finished: Date = Date(), hosts: [FleetHostOutcome]
    ) {
        self.number = number
        self.action = action
        self.recipe = recipe
        self.recipeSHA256 = recipeSHA256
        self.vars = vars
        self.inventory = inventory
        self.limit = limit
        self.undid = undid
        self.user = user
        self.controller = controller
        version = provisionVersion
        self.started = started
        self.finished = finished
        self.hosts = hosts
    }
}

/// A run as a host's history recorded it, read from the controller's copy.
public struct FleetHostRun: Sendable, Codable {
    public var host: String
    public var run: Int
    public var action: String
    public var commit: String
    public var time: Date
    public var user: String
    public var summary: String
    public var files: [String]
}

/// The controller's central, read-only copy of every host's history, and the fleet-run records:
/// `STATE/fleet.git`, a bare repository. Each host's branch and run tags live under
/// `refs/hosts/HOST/` (fetched from a git bundle the host's provision writes); each fleet run is a
/// commit on `main` whose tree holds `fleet-run.json`, tagged `fleet/N`. Plain
/// `git --git-dir STATE/fleet.git log --all` spans the fleet.
public final class FleetStore {
    let repo: GitRepository
    public let path: String
    private static let recordPath = "fleet-run.json"

    /// Opens the store, creating it (mode 0700: host histories hold copies of /etc/shadow).
    public init(path: String) throws {
        self.path = path
        let parent = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        repo = try GitRepository.open(path) ?? GitRepository.create(path)
    }

    /// A host name as a reference component: what the inventory calls it, refused if git could not
    /// name it (so a hostile inventory cannot write outside refs/hosts/).
    public static func hostReference(_ host: String) throws -> String {
        let name = "refs/hosts/\(host)/heads/main"
        var valid: Int32 = 0
        guard !host.contains("/"), git_reference_name_is_valid(&valid, name) == 0, valid == 1 else {
            throw ProvisionError(.invalidInput, "the host name \(host) cannot name a git reference in fleet.git")
        }
        return name
    }

    /// The host's history tip as last fetched, to send as `--have`.
    public func tip(host: String) throws -> String? {
        try repo.reference(Self.hostReference(host))?.description
    }

    /// Stores a bundle from `provision history bundle` under refs/hosts/HOST/: its pack is indexed
    /// into the object database (libgit2 checks every object), then the host's branch and run tags
    /// move. Returns how many commits are new.
    @discardableResult
    public func store(bundle: Data, host: String) throws -> Int {
        let branchReference = try Self.hostReference(host)
        let header = try GitBundle.header(bundle)
        for prerequisite in header.prerequisites {
            guard let id = ObjectID(hex: prerequisite), (try? repo.commit(id)) != nil else {
                throw ProvisionError(.history, "the history bundle from \(host) needs commit \(prerequisite.prefix(10)), which fleet.git lacks")
            }
        }
        let pack = bundle.subdata(in: header.packOffset..<bundle.count)
        if pack.count > 32 {
            var odb: OpaquePointer?
            guard git_repository_odb(&odb, repo.handle) == 0, let odb else { throw GitRepository.lastError("cannot open fleet.git's objects") }
            defer { git_odb_free(odb) }
            var options = git_indexer_options()
            git_indexer_options_init(&options, UInt32(GIT_INDEXER_OPTIONS_VERSION))
            var indexer: OpaquePointer?
            guard git_indexer_new(&indexer, path + "/objects/pack", 0o444, odb, &options) == 0, let indexer else {
                throw GitRepository.lastError("cannot index the history of \(host)")
            }
            defer { git_indexer_free(indexer) }
            var progress = git_indexer_progress()
            let appended = pack.withUnsafeBytes { git_indexer_append(indexer, $0.baseAddress, $0.count, &progress) }
            guard appended == 0, git_indexer_commit(indexer, &progress) == 0 else {
                throw ProvisionError(.history, "the history bundle from \(host) is damaged: \(GitRepository.lastError("libgit2").message)")
            }
            git_odb_refresh(odb)
        }
        let before = try repo.reference(branchReference)
        var newCommits = 0
        for reference in header.references where reference.name != "HEAD" {
            guard let id = ObjectID(hex: reference.id), (try? repo.commit(id)) != nil else {
                throw ProvisionError(.history, "the history bundle from \(host) names \(reference.id.prefix(10)) for \(reference.name), which it lacks")
            }
            let target: String
            if reference.name == GitRepository.branch {
                target = branchReference
                var walked: ObjectID? = id
                while let commit = walked, commit != before, newCommits < 1_000_000 {
                    newCommits += 1
                    walked = try repo.commit(commit).parent
                }
            } else if reference.name.hasPrefix("refs/tags/run/") {
                target = "refs/hosts/\(host)/" + reference.name.dropFirst("refs/".count)
            } else {
                continue
            }
            if try repo.reference(target) != id { try repo.setReference(target, to: id, message: "provision fleet: fetched from \(host)") }
        }
        if repo.packs().count > 50 { _ = try repo.pack(full: true) }
        return newCommits
    }

    /// Records a fleet run as the next commit on main (tagged fleet/N); `record.number` is set here.
    @discardableResult
    public func append(_ record: FleetRunRecord) throws -> FleetRunRecord {
        var record = record
        let parent = try repo.tip()
        record.number = try (parent.map { try read(commit: $0).number } ?? 0) + 1
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let blob = try repo.writeBlob(try encoder.encode(record))
        let tree = try repo.updateTree(base: nil, changes: [.upsert(path: Self.recordPath, blob: blob, executable: false)])
        var message = "fleet run \(record.number): \(record.action)"
        if let recipe = record.recipe { message += " \((recipe as NSString).lastPathComponent)" }
        message += " on \(record.hosts.count) host(s)\n\n"
        for host in record.hosts {
            message += "\(host.host): \(host.status.rawValue)\(host.run.map { " (run \($0))" } ?? "")\n"
        }
        message += "\nProvision-Fleet-Run: \(record.number)\nProvision-User: \(record.user)\n"
        let commit = try repo.createCommit(tree: tree, parent: parent, message: message, author: (record.user, "\(record.user)@\(record.controller)"), time: record.finished)
        try repo.setReference("refs/tags/fleet/\(record.number)", to: commit, message: "provision fleet run \(record.number)")
        return record
    }

    private func read(commit: ObjectID) throws -> FleetRunRecord {
        let info = try repo.commit(commit)
        guard let data = try repo.blob(tree: info.tree, path: Self.recordPath) else {
            throw ProvisionError(.history, "fleet.git commit \(commit.short) has no \(Self.recordPath)")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(FleetRunRecord.self, from: data)
    }

    /// Every fleet run, newest first.
    public func records(limit: Int = .max) throws -> [FleetRunRecord] {
        var result: [FleetRunRecord] = []
        var next = try repo.tip()
        while let id = next, result.count < limit {
            result.append(try read(commit: id))
            next = try repo.commit(id).parent
        }
        return result
    }

    public func record(_ number: Int) throws -> FleetRunRecord {
        guard let id = try repo.reference("refs/tags/fleet/\(number)") else {
            throw ProvisionError(.notFound, "fleet.git has no fleet run \(number) (see provision fleet history)")
        }
        return try read(commit: id)
    }

    /// The hosts fleet.git holds a history for.
    public func hosts() throws -> [String] {
        try repo.references("refs/hosts/*").compactMap { reference in
            let parts = reference.name.split(separator: "/")
            return parts.count == 5 && parts[3] == "heads" ? String(parts[2]) : nil
        }.sorted()
    }

    /// A host's runs from the copy (newest first), optionally only those that touched `path`.
    public func runs(host: String, path: String? = nil, limit: Int = .max) throws -> [FleetHostRun] {
        var result: [FleetHostRun] = []
        var next = try repo.reference(Self.hostReference(host))
        let decoder = JSONDecoder.history
        while let id = next, result.count < limit {
            let info = try repo.commit(id)
            next = info.parent
            guard let data = try repo.blob(tree: info.tree, path: HistoryStore.recordPath),
                let record = try? decoder.decode(RunRecord.self, from: data), HistoryStore.isRun(record.action)
            else { continue }
            let files = record.files.map(\.path)
            if let path, !files.contains(path) { continue }
            result.append(
                FleetHostRun(
                    host: host, run: record.run, action: record.action.rawValue, commit: id.description, time: info.time, user: record.user,
                    summary: record.summary, files: files))
        }
        return result
    }

    /// Each line of `path` as the host's history last recorded it, with the run, step, user and date
    /// that set it: git's blame on the copy of that host's branch. Nil when the host's history does
    /// not track the path. `live` says the host itself was not looked at.
    public func blame(host: String, path: String) throws -> BlameReport? {
        guard let tip = try repo.reference(Self.hostReference(host)) else { return nil }
        let key = HostRoot.relative(path)
        let tipInfo = try repo.commit(tip)
        guard let content = try repo.blob(tree: tipInfo.tree, path: key) else { return nil }
        let count = Diff.lines(content).count
        var owners = [ObjectID](repeating: tip, count: count)
        for hunk in try repo.blame(path: key, newest: tip, oldest: nil) {
            for offset in 0..<hunk.lines where hunk.finalStart - 1 + offset < count && hunk.finalStart - 1 + offset >= 0 {
                owners[hunk.finalStart - 1 + offset] = hunk.commit
            }
        }
        let decoder = JSONDecoder.history
        var described: [ObjectID: (RunRecord?, GitCommitInfo)] = [:]
        for owner in Set(owners + [tip]) {
            let info = try repo.commit(owner)
            let record = try repo.blob(tree: info.tree, path: HistoryStore.recordPath).flatMap { try? decoder.decode(RunRecord.self, from: $0) }
            described[owner] = (record, info)
        }
        let redact = Secrets.redactor(for: path)
        var lines: [BlameLine] = []
        for (index, text) in Diff.lines(content).enumerated() {
            let (record, info) = described[owners[index]]!
            lines.append(BlameLine(index + 1, redact?(text) ?? String(text), owner: owners[index], record: record, info: info, path: path))
        }
        let tipRecord = described[tip]!.0
        return BlameReport(
            path: path, recorded: RunRef(run: tipRecord?.run, action: tipRecord?.action, commit: tip.description), live: "not checked (fleet.git)",
            lines: lines)
    }
}
