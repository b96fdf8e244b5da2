import ArgumentParser
import Foundation
import ProvisionCore

struct HistoryListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List runs, newest first: all, or those matching a path, step, action, date range or user (the default).",
        discussion: """
            Dates are ISO 8601 (2026-11-27T14:05:00Z, with an offset, or none for UTC) or a day (2026-11-27, UTC; \
            --until takes the whole day).
            """)

    @Argument(
        help: "Host path (absolute, or relative to the root as git pathspecs are); a directory matches what is under it.",
        completion: .file())
    var path: String?
    @Option(help: "Only runs in which this step (its id) changed something.") var step: String?
    @Option(help: "Only entries of this action: apply, rollback, drift, recover or pre-state.") var action: String?
    @Option(help: "Only entries recorded at or after DATE.") var since: String?
    @Option(help: "Only entries recorded at or before DATE.") var until: String?
    @Option(help: "Only runs by this user (the invoking user, as recorded).") var user: String?
    @Option(name: .short, help: "Show at most N entries.") var n: Int?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let action, RunRecord.Action(rawValue: action) == nil {
            throw ValidationError("--action takes apply, rollback, drift, recover or pre-state, not \"\(action)\"")
        }
        for (name, value) in [("--since", since), ("--until", until)] {
            if let value, AuditDate.parse(value) == nil {
                throw ValidationError("\(name) takes an ISO 8601 date and time or YYYY-MM-DD, not \"\(value)\"")
            }
        }
    }

    func run() throws {
        let console = global.console
        try runReporting(console) {
            let filter = HistoryFilter(
                path: path, step: step, action: action.flatMap(RunRecord.Action.init(rawValue:)), since: since.flatMap { AuditDate.parse($0) },
                until: until.flatMap { AuditDate.parse($0, endOfDay: true) }, user: user, limit: n)
            let entries = try global.engine().history(filter)
            if global.json {
                Output.printJSON(entries, key: "entries")
                return
            }
            var out = entries.isEmpty ? "no runs recorded\n" : ""
            let formatter = ISO8601DateFormatter()
            for entry in entries {
                let marker = entry.action == .drift || entry.action == .preState ? "  ·" : "run"
                let label = "\(marker) \(String(entry.run).padding(toLength: 4, withPad: " ", startingAt: 0))"
                out += console.paint(label, marker == "run" ? .yellow : .dim) + " \(entry.commit)  "
                    + "\(formatter.string(from: entry.date))  \(entry.user)  \(entry.summary)\n"
            }
            console.page(out)
        }
    }
}
