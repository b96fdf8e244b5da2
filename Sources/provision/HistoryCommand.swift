import ArgumentParser
import Foundation
import ProvisionCore

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "List runs, newest first (optionally only those that touched PATH).")

    @Argument(help: "Host path, e.g. /etc/default/grub.") var path: String?
    @Option(name: .short, help: "Show at most N entries.") var n: Int?
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try runReporting(json: global.json) {
            let entries = try global.engine().history(path: path, limit: n)
            if global.json {
                Output.printJSON(entries)
                return
            }
            if entries.isEmpty { print("no runs recorded") }
            let formatter = ISO8601DateFormatter()
            for entry in entries {
                let marker = entry.action == .drift || entry.action == .preState ? "  ·" : "run"
                print("\(marker) \(String(entry.run).padding(toLength: 4, withPad: " ", startingAt: 0)) \(entry.commit)  "
                    + "\(formatter.string(from: entry.date))  \(entry.user)  \(entry.summary)")
            }
        }
    }
}
