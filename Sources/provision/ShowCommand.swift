import ArgumentParser
import Foundation
import ProvisionCore

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one run: its record and its diffs.")

    @Argument(help: ArgumentHelp("Run: a number, run/N or a commit id.", valueName: "run"), completion: .custom(Completion.runs))
    var runNumber: String
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let console = global.console
        try runReporting(console) {
            let engine = try global.engine()
            let detail = try engine.show(run: try engine.runNumber(runNumber))
            if global.json {
                Output.printJSON(ShowDocument(record: detail.record, commit: detail.commit, related: detail.related, files: detail.changes.map(FileDocument.init)))
                return
            }
            let record = detail.record
            var out = "run \(record.run) (\(record.action.rawValue)) commit \(detail.commit)\n"
            out += "  \(record.summary)\n  by \(record.user) on \(record.host), provision \(record.version)\n"
            if let recipe = record.recipe { out += "  recipe \(record.recipeName ?? "") (\(recipe))\n" }
            for related in detail.related { out += "  before it: \(related.summary) [\(related.commit)]\n" }
            for step in record.steps ?? [] { out += "  \(console.status(step.status.rawValue)) \(step.id)  \(step.uses)\n" }
            for handler in record.handlers {
                out += "  handler \(handler.argv.joined(separator: " ")): \(console.status(handler.status.rawValue, width: 0))"
                    + "\(handler.detail.map { " (\($0))" } ?? "")\n"
            }
            for notice in record.notices { out += "  \(console.notice(notice.level.rawValue, notice.message))\n" }
            out += "\n"
            for change in detail.changes { out += console.diff(change.diff) }
            console.page(out)
        }
    }
}

struct ShowDocument: Encodable {
    var record: RunRecord
    var commit: String
    var related: [HistoryEntry]
    var files: [FileDocument]
}
