import ArgumentParser
import Foundation
import ProvisionCore

struct HistoryGCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Pack the history: every object into one pack (libgit2's pack builder), run tags into packed-refs.",
        discussion: """
            The pack and its index are written and synced before any loose object or older pack is removed, and only \
            what the new pack holds is removed. Runs pack automatically once the loose objects pass git's gc.auto (6700; \
            set gc.auto in the history's git config to change it, 0 to turn it off).
            """)

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let console = global.console
        try runReporting(console) {
            let engine = try global.engine()
            let report = try engine.gc()
            if global.json {
                Output.printJSON(report)
                return
            }
            console.out("history \(engine.historyPath): \(Output.describe(report))\n")
        }
    }
}
