import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// What an apply, rollback or recovery did.
public struct RunReport: Sendable {
    public var record: RunRecord
    public var commit: String
    /// Present for apply: the plan that was carried out.
    public var plan: Plan?
    public var changes: [FileChange]
    /// An interrupted earlier run that was undone first.
    public var recovered: RunRecord?
    /// Paths whose hand edits were recorded as a drift commit before this run.
    public var drift: [String]
    /// The history was packed at the end of the run (its loose objects passed gc.auto).
    public var packed: PackReport? = nil

    public var failedHandlers: [RunRecord.HandlerEntry] { record.handlers.filter { $0.status == .failed } }
}

/// One line of `provision history`.
public struct HistoryEntry: Sendable, Codable {
    public var run: Int
    public var action: RunRecord.Action
    public var summary: String
    public var commit: String
    public var date: Date
    public var user: String
    public var recipe: String?
    public var files: [RunRecord.FileEntry]
    public var undid: [Int]?
    public var host: String
    /// The steps that changed something (apply runs).
    public var steps: [String]?

    init(_ record: RunRecord, _ info: GitCommitInfo) {
        run = record.run
        action = record.action
        summary = record.summary
        commit = info.id.short
        date = info.time
        user = record.user
        recipe = record.recipeName
        files = record.files
        undid = record.undid
        host = record.host
        steps = record.steps.map { $0.filter { !$0.files.isEmpty }.map(\.id) }
    }
}

/// Everything `provision show` prints about a run.
public struct RunDetail: Sendable {
    public var record: RunRecord
    public var commit: String
    /// The drift and pre-state commits recorded just before the run.
    public var related: [HistoryEntry]
    public var changes: [FileChange]
}

/// The core: owns every side effect (reads confined to the root, history, writes, handlers).
public final class Engine {
    public let root: HostRoot
    public let historyPath: String
    public let registry: PluginRegistry
    let writer: RootWriter
    /// Where steps' declared inputs come from: the network, this machine's files and the root's
    /// sysfs by default; tests give data.
    public var inputs: any InputProvider = FetchInputs()
    /// False reports every handler as skipped (`--no-handlers`).
    public var runHandlers = true
    public var lockTimeout: TimeInterval = 300
    /// Told when the root lock is busy and the run starts waiting.
    public var onWait: (String) -> Void = { FileHandle.standardError.write(Data("provision: \($0)\n".utf8)) }
    /// Told what was repaired before a run: leftovers of a killed run removed, a history mode fixed.
    public var onRepair: (String) -> Void = { FileHandle.standardError.write(Data("provision: \($0)\n".utf8)) }
    /// Told what a run does as it does it: each step once planned, each handler as it starts, its
    /// output line by line, and how it ended.
    public var onEvent: ((RunEvent) -> Void)? = nil

    static let defaultHistory = "/var/lib/provision/history.git"

    /// The default history lives inside the root and is resolved there as if chrooted, so a
    /// symlinked `var` can never put the history (copies of passwd and shadow) outside the root.
    public init(root: HostRoot, historyPath: String? = nil, registry: PluginRegistry) throws {
        self.root = root
        self.historyPath = try historyPath ?? root.real(root.resolve(Self.defaultHistory))
        self.registry = registry
        writer = try RootWriter(root)
    }

    // MARK: plan and apply

    /// `only`: the ids of the steps to run (with the earlier steps whose facts they read).
    public func plan(_ recipe: Recipe, vars: [String: String] = [:], only: [String]? = nil) throws -> Plan {
        try Planner(root: root, registry: registry, inputs: inputs).plan(recipe, overrides: vars, only: only, onStep: stepObserver)
    }

    private var stepObserver: ((StepResult) -> Void)? {
        guard let onEvent else { return nil }
        return { onEvent(.step($0)) }
    }

    public func apply(_ recipe: Recipe, vars: [String: String] = [:], only: [String]? = nil) throws -> RunReport {
        let started = Date()
        let lock = try RootLock(root: root, timeout: lockTimeout, onWait: onWait)
        defer { withExtendedLifetime(lock) {} }
        let existing = try openHistory(repairing: true)
        let recovered = try existing.flatMap { try recover($0) }
        if let recovered { onEvent?(.recovered(recovered)) }
        let plan = try Planner(root: root, registry: registry, inputs: inputs).plan(recipe, overrides: vars, only: only, onStep: stepObserver)
        onEvent?(.planned(plan))
        // Created only now, so a recipe that fails to plan leaves nothing behind.
        let history = try existing ?? createHistory()

        var tip = try history.tip()
        let run = (tip.record?.run ?? 0) + 1
        let pending = Self.pendingHandlers(after: tip.record)
        var drifted: [(path: String, state: FileState)] = []
        var firstTouch: [(path: String, state: FileState)] = []
        for change in plan.changes {
            switch try history.compare(tip, change.path, current: change.before) {
            case .untracked: firstTouch.append((change.path, change.before))
            case .differs: drifted.append((change.path, change.before))
            case .same: break
            }
        }
        tip = try recordDrift(drifted, run: run, history: history, tip: tip, pending: pending)
        if !drifted.isEmpty { onEvent?(.driftRecorded(drifted.map(\.path), run: run)) }
        if !firstTouch.isEmpty {
            var record = auxiliaryRecord(
                run: run, action: .preState, files: firstTouch.map { $0.path },
                summary: "pre-state: \(firstTouch.count) file(s) before run \(run) first touches them")
            record.pendingHandlers = pending
            tip = try history.commit(tip, files: firstTouch, record: record, names: names())
        }

        let handlers = plan.handlers + pending.filter { failed in !plan.handlers.contains { $0.argv == failed.argv } }
        var record = newRecord(run: run, action: .apply, started: started)
        record.recipe = recipe.absolutePath ?? recipe.path
        record.recipeSHA256 = recipe.sha256
        record.recipeName = recipe.name
        record.vars = plan.vars
        record.facts = plan.facts
        record.exports = .map(plan.exports)
        record.steps = plan.steps.map { step in
            RunRecord.StepEntry(id: step.id, uses: step.uses, status: step.status, files: step.changes.map(\.path))
        }
        record.files = plan.changes.map { .init(path: $0.path, change: $0.kind) }
        record.notices = plan.notices
        record.summary = "apply \(recipe.name): \(plan.changedStepCount) step(s) changed, \(plan.changes.count) file(s)"
        var work = Work(
            changes: plan.changes, run: run, action: .apply, base: tip, handlers: handlers, retry: Set(pending.map(\.argv)))
        work.recordEstimate = ((try? JSONEncoder.history.encode(record))?.count ?? 64 << 10) + handlers.count * 4096
        let (committed, _) = try performAndRecord(work, history: history, started: started, pending: pending) { outcome in
            record.createdDirectories = outcome.created
            record.handlers = outcome.handlers
            return record
        }
        return RunReport(
            record: committed.record!, commit: committed.commit!.description, plan: plan, changes: plan.changes,
            recovered: recovered, drift: drifted.map(\.path), packed: autoPack(history))
    }

    /// Packs the history when its loose objects passed gc.auto (git's default, 6,700), at the end
    /// of a run that is already recorded: a failure is told, never the run's failure.
    private func autoPack(_ history: HistoryStore) -> PackReport? {
        let due = history.repo.autoPackDue()
        guard due.due else { return nil }
        do {
            let report = try history.repo.pack(full: due.full)
            refreshBlameCaches(history, all: false)
            return report
        } catch {
            onRepair("packing the history failed (\((error as? ProvisionError)?.message ?? "\(error)")); the run is recorded, and provision history gc tries again")
            return nil
        }
    }

    /// Handlers that failed and have not run successfully since, as the last record says. Older
    /// records without the list carry their own failed handlers.
    static func pendingHandlers(after previous: RunRecord?) -> [HandlerAction] {
        guard let previous else { return [] }
        if let pending = previous.pendingHandlers { return pending }
        return isRun(previous.action) ? previous.handlers.filter { $0.status == .failed }.map(\.action) : []
    }

    /// The pending list after a run: what was pending or failed now, less what ran now.
    static func pendingHandlers(_ pending: [HandlerAction], after entries: [RunRecord.HandlerEntry]) -> [HandlerAction] {
        let ran = Set(entries.filter { $0.status == .ran }.map(\.argv))
        var result: [HandlerAction] = []
        for action in pending + entries.filter({ $0.status == .failed }).map(\.action)
        where !ran.contains(action.argv) && !result.contains(where: { $0.argv == action.argv }) {
            result.append(action)
        }
        return result
    }

    // MARK: rollback

    /// Undoes one run (default: the latest apply not yet undone), or with `to` every run after it.
    /// Refuses with the diff when a file it would restore changed since, unless `force`.
    public func rollback(run target: Int? = nil, to: Int? = nil, force: Bool = false) throws -> RunReport {
        let started = Date()
        let lock = try RootLock(root: root, timeout: lockTimeout, onWait: onWait)
        defer { withExtendedLifetime(lock) {} }
        guard let history = try openHistory(repairing: true) else {
            throw ProvisionError(.notFound, "no history at \(historyPath): nothing to roll back")
        }
        let recovered = try recover(history)
        if let recovered { onEvent?(.recovered(recovered)) }
        // An interrupted apply that recovery undid was the run to roll back; an interrupted
        // rollback, once undone, still has to be done.
        if let recovered, target == nil, to == nil, recovered.undoneAction == .apply {
            let tip = try history.tip()
            return RunReport(record: recovered, commit: tip.commit!.description, plan: nil, changes: [], recovered: recovered, drift: [])
        }
        var tip = try history.tip()
        let run = (tip.record?.run ?? 0) + 1
        let pending = Self.pendingHandlers(after: tip.record)
        let (undo, preview) = try rollbackPreview(run: target, to: to, history: history, tip: tip)
        let conflicts = try preview.conflicts.map { (path: $0, state: try root.readState($0)) }
        if !conflicts.isEmpty {
            guard force else { throw preview.refusal }
            tip = try recordDrift(conflicts, run: run, history: history, tip: tip, pending: pending)
        }
        let changes = preview.changes
        onEvent?(.restoring(changes))
        var record = newRecord(run: run, action: .rollback, started: started)
        record.files = changes.map { .init(path: $0.path, change: $0.kind) }
        record.undid = undo.runs
        record.summary = "rollback \(undo.label): \(changes.count) file(s) restored"
        let work = Work(
            changes: changes, run: run, action: .rollback, base: tip, handlers: undo.handlers,
            removeDirectories: undo.createdDirectories)
        let (committed, _) = try performAndRecord(work, history: history, started: started, pending: pending) { outcome in
            record.handlers = outcome.handlers
            return record
        }
        return RunReport(
            record: committed.record!, commit: committed.commit!.description, plan: nil, changes: changes, recovered: recovered,
            drift: force ? conflicts.map(\.path) : [], packed: autoPack(history))
    }

    /// What `rollback` would do, without the lock and without writing anything (`rollback
    /// --dry-run`): the files it restores, those changed since (it refuses them without --force),
    /// and the handlers it runs. An interrupted run the next rollback recovers first is named.
    public func previewRollback(run target: Int? = nil, to: Int? = nil) throws -> RollbackPreview {
        guard let history = try openHistory() else {
            throw ProvisionError(.notFound, "no history at \(historyPath): nothing to roll back")
        }
        var preview = try rollbackPreview(run: target, to: to, history: history, tip: try history.tip()).1
        preview.recovery = try pendingRecovery(history)
        return preview
    }

    private func rollbackPreview(run target: Int?, to: Int?, history: HistoryStore, tip: HistoryPoint) throws -> (Undo, RollbackPreview) {
        let undo = try to.map { try undoAfter($0, history: history, tip: tip) } ?? undoRun(target, history: history)
        var preview = RollbackPreview(label: undo.label, runs: undo.runs, changes: [], conflicts: [], conflictDiff: "", handlers: undo.handlers)
        for path in undo.paths {
            let current = try root.readState(path)
            let expected = undo.expected[path] ?? .absent
            let desired = undo.desired[path] ?? .absent
            if current != expected && current != desired {
                preview.conflicts.append(path)
                preview.conflictDiff += Diff.describe(path: path, before: expected, after: current)
            }
            if current != desired { preview.changes.append(FileChange(path: path, before: current, after: desired)) }
        }
        return (undo, preview)
    }

    private struct Undo {
        var label: String
        var runs: [Int]
        var paths: [String]
        var expected: [String: FileState]
        var desired: [String: FileState]
        var handlers: [HandlerAction]
        var createdDirectories: [String]
    }

    static func isRun(_ action: RunRecord.Action) -> Bool { HistoryStore.isRun(action) }

    private func undoRun(_ target: Int?, history: HistoryStore) throws -> Undo {
        var undoneBy: [Int: Int] = [:]
        var found: (point: HistoryPoint, info: GitCommitInfo)?
        try history.walk { point, info in
            guard let record = point.record, Self.isRun(record.action) else { return true }
            if let target {
                if record.run == target {
                    found = (point, info)
                    return false
                }
            } else if record.action == .apply, !record.files.isEmpty, undoneBy[record.run] == nil {
                found = (point, info)
                return false
            }
            for undone in record.undid ?? [] where undoneBy[undone] == nil { undoneBy[undone] = record.run }
            return true
        }
        guard let found, let record = found.point.record else {
            if let target { throw ProvisionError(.notFound, "history has no run \(target) (see provision history)") }
            throw ProvisionError(.notFound, "nothing to roll back: every apply in history is already undone")
        }
        if let by = undoneBy[record.run] {
            throw ProvisionError(.invalidInput, "run \(record.run) was already undone by run \(by); roll back run \(by) to redo it")
        }
        guard let parent = found.info.parent else { throw ProvisionError(.history, "run \(record.run) has no recorded pre-state") }
        let before = try history.point(at: parent)
        let source = "run \(record.run) in \(historyPath)"
        var undo = Undo(
            label: "run \(record.run)", runs: [record.run], paths: try record.changedFiles.map { try root.recorded($0, in: source) },
            expected: [:], desired: [:], handlers: record.handlers.map(\.action),
            createdDirectories: try record.createdDirectories.map { try root.recorded($0, in: source) })
        for path in undo.paths {
            undo.expected[path] = try history.state(found.point, path) ?? .absent
            guard let previous = try history.state(before, path) else {
                throw ProvisionError(.history, "history lacks the state of \(path) before run \(record.run)")
            }
            undo.desired[path] = previous
        }
        return undo
    }

    private func undoAfter(_ target: Int, history: HistoryStore, tip: HistoryPoint) throws -> Undo {
        var targetPoint: HistoryPoint?
        var earliest: [String: HistoryPoint] = [:]
        var undo = Undo(label: "runs after \(target)", runs: [], paths: [], expected: [:], desired: [:], handlers: [], createdDirectories: [])
        try history.walk { point, _ in
            guard let record = point.record else { return true }
            if record.run == target && Self.isRun(record.action) {
                targetPoint = point
                return false
            }
            guard record.run > target else { return true }
            for key in point.meta.keys { earliest[key] = point }
            if Self.isRun(record.action) {
                undo.runs.insert(record.run, at: 0)
                undo.createdDirectories += try record.createdDirectories.map { try root.recorded($0, in: "run \(record.run) in \(historyPath)") }
                for handler in record.handlers where !undo.handlers.contains(where: { $0.argv == handler.argv }) {
                    undo.handlers.append(handler.action)
                }
            }
            return true
        }
        guard let targetPoint else { throw ProvisionError(.notFound, "history has no run \(target) (see provision history)") }
        for key in tip.meta.keys.sorted() {
            let path = try root.recorded("/" + key, in: "the metadata of \(historyPath)")
            let now = try history.state(tip, path) ?? .absent
            let then: FileState
            if let recorded = try history.state(targetPoint, path) {
                then = recorded
            } else if let first = earliest[key], let recorded = try history.state(first, path) {
                then = recorded
            } else {
                continue
            }
            if now != then {
                undo.paths.append(path)
                undo.expected[path] = now
                undo.desired[path] = then
            }
        }
        return undo
    }

    // MARK: shared machinery

    /// One run's writes: what changes, on top of which recorded commit, with which handlers.
    private struct Work {
        var changes: [FileChange]
        var run: Int
        var action: RunRecord.Action
        var base: HistoryPoint
        var handlers: [HandlerAction]
        var removeDirectories: [String] = []
        var retry: Set<[String]> = []
        /// Recovery works from the journal already on disk and never rewrites it.
        var journalOnDisk = false
        /// Bytes the run record will take (handler output comes on top: 4 KiB each).
        var recordEstimate = 4096
    }

    struct Outcome {
        var handlers: [RunRecord.HandlerEntry]
        var created: [String]
        var recorded: [FileChange]
    }

    /// Writes, runs handlers, and records the run, or changes nothing: if the run commit cannot be
    /// written and read back (a full disk), every file is put back from the pre-state and the
    /// command fails saying so. `finish` completes the record once handlers have run.
    private func performAndRecord(
        _ work: Work, history: HistoryStore, started: Date, pending: [HandlerAction], finish: (Outcome) -> RunRecord
    ) throws -> (HistoryPoint, Outcome) {
        var reserve: SpaceReserve?
        let outcome = try perform(work, history: history, reserve: &reserve)
        var record = finish(outcome)
        record.pendingHandlers = Self.pendingHandlers(pending, after: outcome.handlers)
        record.durationMs = Int(Date().timeIntervalSince(started) * 1000)
        reserve?.release()
        do {
            // The written files are durable before the commit that records them: the commit's own
            // syncfs covers the history's file system, so only other file systems (a separate
            // /boot, a history kept elsewhere) are synced here.
            try writer.syncFileSystems(writer.existingDirectories(of: work.changes.map(\.path)), except: history.repo.path)
            let committed = try history.commit(work.base, files: outcome.recorded.map { ($0.path, $0.after) }, record: record, names: names())
            Journal.remove(history.journalPath)
            return (committed, outcome)
        } catch let failure as ProvisionError {
            guard !work.journalOnDisk else {
                throw ProvisionError(
                    failure.kind, "\(work.action.rawValue) run \(work.run) could not be recorded (\(failure.message)); the journal is kept and the next run finishes it")
            }
            do {
                try putBack(work, outcome: outcome)
                Journal.remove(history.journalPath)
            } catch {
                throw ProvisionError(
                    .history,
                    "\(work.action.rawValue) run \(work.run) could not be recorded (\(failure.message)), and putting the files back failed too (\(error)); "
                        + "the journal is kept: the next provision apply or rollback restores them from history")
            }
            throw ProvisionError(
                .history,
                "\(work.action.rawValue) run \(work.run) could not be recorded in history (\(failure.message)); every file was put back as it was, nothing changed")
        }
    }

    /// Undoes a run's writes after its commit failed, and runs the handlers of the restored files
    /// again so what they build matches the files once more.
    private func putBack(_ work: Work, outcome: Outcome) throws {
        for change in work.changes.reversed() {
            let current = try root.readState(change.path)
            if current != change.before { try write(FileChange(path: change.path, before: current, after: change.before)) }
        }
        for directory in outcome.created.reversed() { writer.removeDirectoryIfEmpty(directory) }
        _ = HandlerRunner(root: root, enabled: runHandlers).run(work.handlers, changed: Set(work.changes.map(\.path)))
    }

    /// Writes changes with a journal around them, then runs the notified handlers. A failed write
    /// puts back what was already written, so nothing is left half-done. Before the journal, the
    /// new contents are stored in history (synced) and space is reserved for the commit.
    private func perform(_ work: Work, history: HistoryStore, reserve: inout SpaceReserve?) throws -> Outcome {
        let runner = HandlerRunner(root: root, enabled: runHandlers, onEvent: onEvent)
        guard !work.changes.isEmpty else {
            for directory in work.removeDirectories.sorted(by: { $0.count > $1.count }) { writer.removeDirectoryIfEmpty(directory) }
            return Outcome(handlers: runner.run(work.handlers, changed: [], retry: work.retry), created: [], recorded: [])
        }
        var created: [String] = []
        for change in work.changes where change.after.exists {
            for directory in root.missingParents(of: change.path) where !created.contains(directory) { created.append(directory) }
        }
        guard let baseCommit = work.base.commit else { throw ProvisionError(.history, "pre-state was not recorded; refusing to write") }
        // Synced with the run's commit object, before the branch names them.
        try history.repo.deferringObjectSyncs {
            for change in work.changes {
                if let data = change.after.content { _ = try history.repo.writeBlob(data) }
            }
        }
        reserve = try SpaceReserve(
            writer: writer, historyPath: history.repo.path, changes: work.changes, commitBytes: commitEstimate(work))
        if !work.journalOnDisk {
            let journal = Journal(
                run: work.run, action: work.action, base: baseCommit.description, paths: work.changes.map(\.path),
                createdDirectories: created, handlers: work.handlers)
            do {
                try journal.write(history.journalPath)
            } catch {
                reserve?.release()
                throw error
            }
        }
        var written: [FileChange] = []
        var staged: [Int: RootWriter.Staged] = [:]
        onEvent?(.writing(work.changes.count))
        do {
            // Every new content first, in a temporary file beside its target, all made durable by
            // one syncfs per file system; then each renamed into place (removals and owner/mode
            // changes in the same order), made durable with the run's commit (`performAndRecord`).
            // A crash in between is what the journal is for; a failure while staging changes nothing.
            for (index, change) in work.changes.enumerated() {
                if case .file(let data, let meta) = change.after, !change.isMetadataOnly {
                    staged[index] = try writer.stage(change.path, content: data, meta: meta)
                }
            }
            try writer.syncFileSystems(staged.values.map(\.directory))
            for (index, change) in work.changes.enumerated() {
                if let file = staged.removeValue(forKey: index) {
                    try writer.publish(file)
                } else {
                    try write(change, sync: false)
                }
                written.append(change)
                FaultInjection.didWrite()
            }
        } catch {
            for file in staged.values { writer.discard(file) }
            // The reserve gives back the room the files already written need to be put back.
            reserve?.release()
            var restoreFailure: Error?
            for change in written.reversed() {
                do {
                    try write(FileChange(path: change.path, before: change.after, after: change.before))
                } catch {
                    restoreFailure = restoreFailure ?? error
                }
            }
            for directory in created.reversed() { writer.removeDirectoryIfEmpty(directory) }
            let message = (error as? ProvisionError)?.message ?? "\(error)"
            if let restoreFailure {
                throw ProvisionError(
                    .io,
                    "\(message); putting back the files already written failed too (\(restoreFailure)). The journal is kept: "
                        + "the next provision apply or rollback restores them from history")
            }
            if !work.journalOnDisk { Journal.remove(history.journalPath) }
            guard !written.isEmpty else { throw error }
            throw ProvisionError(
                (error as? ProvisionError)?.kind ?? .io, "\(message); the \(written.count) file(s) already written were put back, nothing changed")
        }
        for directory in work.removeDirectories.sorted(by: { $0.count > $1.count }) { writer.removeDirectoryIfEmpty(directory) }
        let entries = runner.run(work.handlers, changed: Set(work.changes.map(\.path)), retry: work.retry)
        // A file its handler re-writes (libvirt writes NAME.xml on `virsh define`) is recorded as
        // the handler left it, so the next run or rollback does not take libvirt's form for a hand edit.
        let rewritten = Set(entries.filter { $0.status == .ran }.flatMap { $0.rewrites ?? [] })
        let recorded = try work.changes.map { change in
            rewritten.contains(change.path) ? FileChange(path: change.path, before: change.before, after: try root.readState(change.path)) : change
        }
        return Outcome(handlers: entries, created: created, recorded: recorded)
    }

    /// What the run commit will write, generously: one block per tree along the changed paths,
    /// the metadata and the run record (estimated before handlers add their output), the commit,
    /// and the branch's lock file.
    private func commitEstimate(_ work: Work) -> Int {
        var directories: Set<String> = ["/", "/.provision"]
        for change in work.changes { directories.formUnion(HostRoot.ancestors(of: change.path)) }
        let meta = (work.base.meta.count + work.changes.count) * 256
        let objects = directories.count + 4
        let record = max(work.recordEstimate, 4096 + work.changes.count * 256 + work.handlers.count * 4096)
        return objects * 4096 + SpaceReserve.blocks(meta) + SpaceReserve.blocks(record) + 16 * 1024
    }

    /// One change on its own; without `sync` its durability is the caller's (a batch's syncfs).
    private func write(_ change: FileChange, sync: Bool = true) throws {
        switch change.after {
        case .absent:
            try writer.remove(change.path, sync: sync)
        case .file(let data, let meta):
            if change.isMetadataOnly {
                try writer.setMeta(change.path, meta, sync: sync)
            } else {
                try writer.writeAtomically(change.path, content: data, meta: meta)
            }
        }
    }

    /// Undoes an interrupted run from its journal: every path it meant to touch goes back to the
    /// pre-state history holds, directories it created go, handlers of what changed run again, and
    /// a `recover` commit says so. The journal stays until that commit is durable, so a crash here
    /// is recovered again by the next start, as often as it happens.
    private func recover(_ history: HistoryStore) throws -> RunRecord? {
        guard let journal = try Journal.read(history.journalPath) else { return nil }
        let started = Date()
        let tip = try history.tip()
        if let record = tip.record,
            (record.run == journal.run && record.action == journal.action)
                || (record.action == .recover && record.undid == [journal.run])
        {
            // The run (or its recovery) was recorded; only the journal's removal was lost.
            Journal.remove(history.journalPath)
            return nil
        }
        let source = "the run journal \(history.journalPath)"
        let paths = try journal.paths.map { try root.recorded($0, in: source) }
        let createdDirectories = try journal.createdDirectories.map { try root.recorded($0, in: source) }
        guard let baseID = ObjectID(hex: journal.base) else {
            throw ProvisionError(.history, "\(source) names no valid commit (\"\(journal.base)\"); inspect it, then remove it")
        }
        let base = try history.point(at: baseID)
        var changes: [FileChange] = []
        for path in paths {
            guard let desired = try history.state(base, path) else { continue }
            let current = try root.readState(path)
            if current != desired { changes.append(FileChange(path: path, before: current, after: desired)) }
        }
        let run = (tip.record?.run ?? 0) + 1
        let pending = Self.pendingHandlers(after: tip.record)
        var record = newRecord(run: run, action: .recover, started: started)
        record.files = changes.map { .init(path: $0.path, change: $0.kind) }
        record.undid = [journal.run]
        record.undoneAction = journal.action
        record.summary = "recover: undid interrupted \(journal.action.rawValue) run \(journal.run), \(changes.count) file(s) restored"
        let work = Work(
            changes: changes, run: run, action: .recover, base: tip, handlers: journal.handlers,
            removeDirectories: createdDirectories, journalOnDisk: true)
        let (committed, _) = try performAndRecord(work, history: history, started: started, pending: pending) { outcome in
            record.handlers = outcome.handlers
            return record
        }
        return committed.record
    }

    private func recordDrift(
        _ drifted: [(path: String, state: FileState)], run: Int, history: HistoryStore, tip: HistoryPoint, pending: [HandlerAction]
    ) throws -> HistoryPoint {
        guard !drifted.isEmpty else { return tip }
        var record = auxiliaryRecord(
            run: run, action: .drift, files: drifted.map(\.path),
            summary: "drift: \(drifted.count) file(s) changed outside provision, recorded before run \(run)")
        record.pendingHandlers = pending
        return try history.commit(tip, files: drifted, record: record, names: names())
    }

    private func auxiliaryRecord(run: Int, action: RunRecord.Action, files: [String], summary: String) -> RunRecord {
        var record = newRecord(run: run, action: action, started: Date())
        record.files = files.map { .init(path: $0, change: .modified) }
        record.summary = summary
        return record
    }

    private func newRecord(run: Int, action: RunRecord.Action, started: Date) -> RunRecord {
        let who = invoker
        var record = RunRecord(
            run: run, action: action, summary: "", files: [], createdDirectories: [], handlers: [], notices: [],
            host: hostName, user: who.user, version: provisionVersion, startedAt: started)
        record.uid = who.uid
        record.userSource = who.source.rawValue
        record.effectiveUser = who.effectiveUser
        return record
    }

    /// Who runs this engine; found once.
    public lazy var invoker: Invoker = Invoker.current()

    private func names() -> HostView { HostView(root: root, facts: .map([:])) }

    private lazy var hostName: String = {
        if let data = try? root.readState(root.resolve("/etc/hostname")).content {
            let name = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !name.isEmpty, name != "localhost" { return name }
        }
        var buffer = [UInt8](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }()


    /// The history, nil when there is none yet. With `repairing` (only under the root lock), the
    /// leftovers of a killed run are removed first: libgit2 lock and temporary files, a journal
    /// temp file, the space reserve, a half-created history, and `.NAME.provision-XXXXXX` temp files
    /// in the directories of every tracked or journaled path.
    func openHistory(repairing: Bool = false) throws -> HistoryStore? {
        var leftovers: [String] = []
        if repairing {
            leftovers += GitRepository.removeStaleFiles(historyPath)
            for name in ["provision-journal.json.tmp", SpaceReserve.historyName] where unlink(historyPath + "/" + name) == 0 {
                leftovers.append(historyPath + "/" + name)
            }
            // A blame killed while saving its cache (the cache is derived data: a concurrent blame
            // that loses its temp file just does not save).
            let cache = historyPath + "/provision-cache"
            for name in (try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? [] where RootWriter.isTemporaryName(name) {
                if unlink(cache + "/" + name) == 0 { leftovers.append(cache + "/" + name) }
            }
            let parent = (historyPath as NSString).deletingLastPathComponent
            let prefix = "." + (historyPath as NSString).lastPathComponent + ".provision-"
            for name in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where name.hasPrefix(prefix) {
                if (try? FileManager.default.removeItem(atPath: parent + "/" + name)) != nil { leftovers.append(parent + "/" + name) }
            }
        }
        guard let repo = try GitRepository.open(historyPath, repairs: onRepair) else {
            report(leftovers)
            return nil
        }
        let history = HistoryStore(repo: repo)
        let tip = try history.verifyTip()
        if repairing {
            var directories: Set<String> = []
            var paths = tip.meta.keys.map { "/" + $0 }
            if let journal = try? Journal.read(history.journalPath) { paths += journal.paths }
            for path in paths {
                guard let normalized = try? HostRoot.normalize(path), normalized == path else { continue }
                directories.formUnion(HostRoot.ancestors(of: path))
            }
            leftovers += writer.removeOrphans(in: directories).map(root.real)
            // refs/tags/run is not walked (one tag per run): the tag a killed run was writing is
            // that of the tip's run, or of the run before a drift or pre-state commit.
            if let run = tip.record?.run {
                for number in [run, run - 1] where number > 0 {
                    let lock = historyPath + "/" + GitRepository.runTag(number) + ".lock"
                    if unlink(lock) == 0 { leftovers.append(lock) }
                }
            }
            // Histories from before run tags and attributes get them; a tag a killed run did not
            // write is written now.
            do {
                let tagged = try history.repairTags(tip)
                if tagged > 1 { onRepair("tagged \(tagged) earlier runs as run/N in \(historyPath)") }
            } catch {
                // The tags name what main already records; a full disk must not stop the run.
                onRepair("could not tag the runs of \(historyPath) (\((error as? ProvisionError)?.message ?? "\(error)")); the next run tries again")
            }
            _ = history.repo.ensureAttributes()
        }
        report(leftovers)
        return history
    }

    private func report(_ leftovers: [String]) {
        for path in leftovers { onRepair("removed \(path), left behind by an interrupted run") }
    }

    private func createHistory() throws -> HistoryStore {
        let parent = (historyPath as NSString).deletingLastPathComponent
        if historyPath == root.real(try root.resolve(Self.defaultHistory)) {
            try writer.createDirectories(try root.resolve((Self.defaultHistory as NSString).deletingLastPathComponent))
        } else {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        }
        return HistoryStore(repo: try GitRepository.create(historyPath))
    }

    // MARK: reading history

    public func history(path: String? = nil, limit: Int? = nil) throws -> [HistoryEntry] {
        try history(HistoryFilter(path: path, limit: limit))
    }

    /// The newest apply that no rollback or recovery has undone: what the host should now be. The
    /// tip's record names it (`appliesInEffect`), so this reads two commits, not the history.
    public func lastApplied() throws -> RunRecord? {
        guard let history = try openHistory() else { return nil }
        let tip = try history.tip()
        if let record = tip.record, let list = record.appliesInEffect, !list.isEmpty || record.appliesInEffectComplete == true {
            guard let run = list.first else { return nil }
            if let found = try history.runCommit(run), found.record.action == .apply { return found.record }
        }
        var undone: Set<Int> = []
        var found: RunRecord?
        try history.walk { point, _ in
            guard let record = point.record else { return true }
            undone.formUnion(record.undid ?? [])
            if record.action == .apply && !undone.contains(record.run) {
                found = record
                return false
            }
            return true
        }
        return found
    }

    public func show(run: Int) throws -> RunDetail {
        guard let history = try openHistory() else { throw ProvisionError(.notFound, "no history at \(historyPath)") }
        var found: (HistoryPoint, GitCommitInfo)?
        var related: [HistoryEntry] = []
        try history.walk { point, info in
            guard let record = point.record else { return true }
            if record.run < run { return false }
            guard record.run == run else { return true }
            if Self.isRun(record.action) {
                found = (point, info)
            } else {
                related.insert(HistoryEntry(record, info), at: 0)
            }
            return true
        }
        guard let (point, info) = found, let record = point.record else {
            throw ProvisionError(.notFound, "history has no run \(run) (see provision history)")
        }
        let before = try info.parent.map { try history.point(at: $0) } ?? .empty
        let changes = try record.changedFiles.map { path in
            FileChange(path: path, before: try history.state(before, path) ?? .absent, after: try history.state(point, path) ?? .absent)
        }
        return RunDetail(record: record, commit: info.id.description, related: related, changes: changes)
    }
}
