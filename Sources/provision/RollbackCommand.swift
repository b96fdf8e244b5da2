import ArgumentParser
import Foundation
import ProvisionCore

struct RollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback", abstract: "Undo a run (default: the latest apply not yet undone), or every run after one.")

    @Argument(help: ArgumentHelp("Run to undo: a number, run/N or a commit id (see `provision history`).", valueName: "run")) var runNumber: String?
    @Option(name: .customLong("to"), help: "Undo every run after this one.") var to: String?
    @Flag(name: .long, help: "Overwrite files changed since the run (their current content is recorded first).")
    var force = false
    @Flag(name: .customLong("no-handlers"), help: "Restore files but skip (and report) every handler.")
    var noHandlers = false
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if runNumber != nil && to != nil { throw ValidationError("give a RUN to undo or --to RUN, not both") }
    }

    func run() throws {
        try runReporting(json: global.json) {
            let engine = try global.engine()
            engine.runHandlers = !noHandlers
            let report = try engine.rollback(
                run: try runNumber.map(engine.runNumber), to: try to.map(engine.runNumber), force: force)
            let handlers = report.record.handlers.map {
                HandlerDocument(argv: $0.argv, notifiedBy: $0.notifiedBy, status: $0.status.rawValue, detail: $0.detail)
            }
            if global.json {
                Output.printJSON(RollbackDocument(
                    run: report.record.run, commit: report.commit, undid: report.record.undid ?? [],
                    files: report.changes.map(FileDocument.init), handlers: handlers, drift: report.drift,
                    recovered: report.recovered.flatMap { $0.run == report.record.run ? nil : $0.undid?.first }, packed: report.packed))
                return
            }
            var out = ""
            if let recovered = report.recovered, recovered.run != report.record.run { out += "recovered first: \(recovered.summary)\n" }
            for change in report.changes { out += change.diff }
            for handler in handlers { out += "handler: \(handler.argv.joined(separator: " ")): \(handler.status)\n" }
            if !report.drift.isEmpty { out += "overwrote hand edits (kept in history): \(report.drift.joined(separator: ", "))\n" }
            out += "\(report.record.summary); run \(report.record.run) recorded as \(String(report.commit.prefix(10)))\n"
            if let packed = report.packed { out += "history \(Output.describe(packed))\n" }
            print(out, terminator: "")
        }
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
