import ArgumentParser
import Foundation
import ProvisionCore

struct RollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Undo a run (default: the latest apply not yet undone), or every run after one.",
        discussion: """
            Refused (exit 3, nothing changed) when a file it would restore was changed since the run, unless --force. \
            --dry-run shows what it would restore and run, and whether it would be refused, without changing anything.
            """)

    @Argument(
        help: ArgumentHelp("Run to undo: a number, run/N or a commit id (see `provision history`).", valueName: "run"),
        completion: .custom(Completion.runs))
    var runNumber: String?
    @Option(name: .customLong("to"), help: "Undo every run after this one.", completion: .custom(Completion.runs)) var to: String?
    @Flag(name: .long, help: "Overwrite files changed since the run (their current content is recorded first).")
    var force = false
    @Flag(name: .customLong("no-handlers"), help: "Restore files but skip (and report) every handler.")
    var noHandlers = false
    @Flag(name: .customLong("dry-run"), help: "Change nothing: show what the rollback would restore and run.")
    var dryRun = false
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if runNumber != nil && to != nil { throw ValidationError("give a RUN to undo or --to RUN, not both") }
    }

    func run() throws {
        let console = global.console
        try runReporting(console) {
            let engine = try global.engine()
            engine.runHandlers = !noHandlers
            let run = try runNumber.map(engine.runNumber), to = try to.map(engine.runNumber)
            if dryRun {
                try preview(engine, run: run, to: to, console: console)
                return
            }
            let printer = RunPrinter(console: console, widthOf: [])
            engine.onEvent = printer.handle
            let report = try engine.rollback(run: run, to: to, force: force)
            let handlers = report.record.handlers.map {
                HandlerDocument(
                    argv: $0.argv, notifiedBy: $0.notifiedBy, status: $0.status.rawValue, detail: $0.detail, seconds: printer.durations[$0.argv])
            }
            if global.json {
                Output.printJSON(RollbackDocument(
                    run: report.record.run, commit: report.commit, undid: report.record.undid ?? [],
                    files: report.changes.map(FileDocument.init), handlers: handlers, drift: report.drift,
                    recovered: report.recovered.flatMap { $0.run == report.record.run ? nil : $0.undid?.first }, packed: report.packed))
                return
            }
            var out = ""
            if !report.drift.isEmpty {
                out += console.paint("overwrote hand edits", .yellow) + " (kept in history): \(report.drift.joined(separator: ", "))\n"
            }
            out += "\(report.record.summary); run \(report.record.run) recorded as \(String(report.commit.prefix(10)))\n"
            if let packed = report.packed { out += "history \(Output.describe(packed))\n" }
            console.out(out)
        }
    }

    /// `--dry-run`: the restores as diffs, the handlers, and the refusal a real run would give (exit 3).
    func preview(_ engine: Engine, run: Int?, to: Int?, console: Console) throws {
        let preview = try engine.previewRollback(run: run, to: to)
        let refused = !preview.conflicts.isEmpty && !force
        let changed = Set(preview.changes.map(\.path))
        let handlers = preview.handlers.map { handler in
            HandlerDocument(
                argv: handler.argv, notifiedBy: handler.notifiedBy,
                status: refused ? "not run" : handler.notifiedBy.contains(where: changed.contains) ? "would run" : "not notified", detail: nil)
        }
        if console.json {
            Output.printJSON(
                RollbackPreviewDocument(
                    dryRun: true, undo: preview.label, runs: preview.runs, files: preview.changes.map(FileDocument.init), handlers: handlers,
                    conflicts: preview.conflicts, refused: refused, refusal: refused ? preview.refusal.message : nil,
                    recovery: preview.recovery))
        } else {
            let printer = RunPrinter(console: console, widthOf: [])
            var out = "rollback \(preview.label) (dry run: nothing changes)\n"
            if let recovery = preview.recovery {
                out += console.paint("interrupted:", .yellow) + " \(recovery.action.rawValue) run \(recovery.run) did not finish; "
                    + "the rollback first puts back its \(recovery.paths.count) file(s) from history\n"
            }
            out += console.quiet ? "" : printer.diffs(preview.changes)
            for handler in handlers where !console.quiet {
                out += printer.handlerLine(handler.argv, status: handler.status, detail: nil, seconds: nil)
            }
            out += "would restore \(preview.changes.count) file(s)"
            out += force && !preview.conflicts.isEmpty ? ", overwriting hand edits in \(preview.conflicts.joined(separator: ", "))\n" : "\n"
            console.out(out)
        }
        guard refused else { return }
        // One JSON document: the preview says it is refused; the reason goes to stderr as well.
        if console.json {
            console.err("provision: " + console.paint("error:", .red, stderr: true) + " \(preview.refusal.description)\n" + preview.conflictDiff)
            throw ExitCode(preview.refusal.exitCode)
        }
        throw preview.refusal
    }
}

struct RollbackDocument: Encodable {
    var run: Int
    var commit: String
    var undid: [Int]
    var files: [FileDocument]
    var handlers: [HandlerDocument]
    var drift: [String]
    /// An interrupted run undone first.
    var recovered: Int?
    var packed: PackReport?
}

struct RollbackPreviewDocument: Encodable {
    var dryRun: Bool
    var undo: String
    var runs: [Int]
    var files: [FileDocument]
    var handlers: [HandlerDocument]
    var conflicts: [String]
    var refused: Bool
    /// Why a real rollback would refuse (exit 3 then, as now).
    var refusal: String?
    var recovery: PendingRecovery?
}
