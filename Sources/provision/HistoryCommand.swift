import ArgumentParser
import Foundation
import ProvisionCore

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "List runs (provision history [PATH] [filters]), or pack the history (provision history gc).",
        subcommands: [HistoryListCommand.self, HistoryGCCommand.self, HistoryBundleCommand.self],
        defaultSubcommand: HistoryListCommand.self)
}
