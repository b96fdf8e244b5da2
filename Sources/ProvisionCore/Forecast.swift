import Foundation

/// What a run is doing, as it does it (`Engine.onEvent`): the CLI prints each as it comes, so a
/// slow handler is seen running rather than as a silent terminal.
public enum RunEvent: Sendable {
    /// An interrupted earlier run was undone first.
    case recovered(RunRecord)
    /// One step planned (or skipped).
    case step(StepResult)
    /// Every step planned; nothing written yet.
    case planned(Plan)
    /// A rollback is about to restore these files (each from what it is now to what it restores).
    case restoring([FileChange])
    /// Files edited by hand were recorded as a drift commit before run `run` overwrites them.
    case driftRecorded([String], run: Int)
    /// The run starts writing this many files.
    case writing(Int)
    /// A handler starts, as this command line (`chroot ROOT …` in another root).
    case handlerStarted(HandlerAction, command: [String])
    /// One line a running handler printed.
    case handlerOutput(HandlerAction, String)
    /// A handler ran, failed, or was skipped (with why), after `seconds`.
    case handlerFinished(RunRecord.HandlerEntry, seconds: Double)
}

/// What `apply` would do beyond the plan's diffs, predicted without changing anything: which
/// handlers would run or be skipped (and why), which files it would overwrite although they were
/// edited by hand since provision recorded them, and an interrupted run it would undo first.
public struct Forecast: Sendable {
    public struct Handler: Sendable {
        public var argv: [String]
        public var notifiedBy: [String]
        /// "would run", "would run again" (failed before), "would be skipped", "not notified".
        public var status: String
        public var detail: String?
    }

    public struct HandEdit: Sendable {
        public var path: String
        /// The last run that recorded the file (nil when history only has a drift or pre-state entry).
        public var since: Int?
    }

    public var handlers: [Handler]
    public var handEdits: [HandEdit]
    public var recovery: PendingRecovery?
}

/// What `rollback --dry-run` shows.
public struct RollbackPreview: Sendable {
    public var label: String
    public var runs: [Int]
    /// Each file from what it is now to what the rollback restores.
    public var changes: [FileChange]
    /// Files changed since the run: the rollback refuses them unless forced.
    public var conflicts: [String]
    public var conflictDiff: String
    public var handlers: [HandlerAction]
    public var recovery: PendingRecovery? = nil

    /// The error `rollback` gives for the conflicts (exit 3).
    public var refusal: ProvisionError {
        ProvisionError(
            .drift,
            "\(conflicts.count) file(s) changed since \(label): \(conflicts.joined(separator: ", ")); "
                + "rollback refused, nothing changed (--force overwrites them; the edits are kept in history)",
            detail: conflictDiff)
    }
}

extension Engine {
    /// What applying `plan` would do beyond writing its files, read from the root and its history
    /// without the lock and without writing.
    public func forecast(_ plan: Plan) throws -> Forecast {
        let history = try openHistory()
        let tip = try history?.tip()
        let pending = Self.pendingHandlers(after: tip?.record)
        let runner = HandlerRunner(root: root, enabled: runHandlers)
        let changed = Set(plan.changes.map(\.path))
        var handlers: [Forecast.Handler] = []
        for handler in plan.handlers + pending.filter({ failed in !plan.handlers.contains { $0.argv == failed.argv } }) {
            let notified = handler.notifiedBy.contains(where: changed.contains)
            let retried = pending.contains { $0.argv == handler.argv }
            guard notified || retried else {
                handlers.append(.init(argv: handler.argv, notifiedBy: handler.notifiedBy, status: "not notified", detail: nil))
                continue
            }
            if let reason = runner.prepare(handler).skipped {
                handlers.append(.init(argv: handler.argv, notifiedBy: handler.notifiedBy, status: "would be skipped", detail: reason))
            } else {
                handlers.append(
                    .init(
                        argv: handler.argv, notifiedBy: handler.notifiedBy, status: notified ? "would run" : "would run again",
                        detail: retried ? "it failed in an earlier run and has not run since" : nil))
            }
        }
        var edits: [Forecast.HandEdit] = []
        if let history, let tip {
            for change in plan.changes where try history.compare(tip, change.path, current: change.before) == .differs {
                let last = try self.history(HistoryFilter(path: change.path)).first { Self.isRun($0.action) }
                edits.append(.init(path: change.path, since: last?.run))
            }
        }
        return Forecast(handlers: handlers, handEdits: edits, recovery: try history.flatMap { try pendingRecovery($0) })
    }

    /// The interrupted run whose journal the next apply or rollback will act on, if any.
    func pendingRecovery(_ history: HistoryStore) throws -> PendingRecovery? {
        guard let journal = try Journal.read(history.journalPath) else { return nil }
        if let record = try history.tip().record,
            (record.run == journal.run && record.action == journal.action) || (record.action == .recover && record.undid == [journal.run])
        {
            return nil
        }
        return PendingRecovery(run: journal.run, action: journal.action, paths: journal.paths)
    }

    /// The interrupted run `status` and `plan` report, read without the lock.
    public func pendingRecovery() throws -> PendingRecovery? {
        guard let history = try openHistory() else { return nil }
        return try pendingRecovery(history)
    }
}
