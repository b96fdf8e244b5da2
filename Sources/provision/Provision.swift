import ArgumentParser
import Foundation
import ProvisionCore

@main
struct Provision: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Idempotent host configuration with a git history of every file it touches.",
        version: provisionVersion,
        subcommands: [
            PlanCommand.self, ApplyCommand.self, RollbackCommand.self, HistoryCommand.self, ShowCommand.self, DiffCommand.self,
            BlameCommand.self, StatusCommand.self, ExportCommand.self, DevicesCommand.self, VerifyCommand.self, RomCommand.self,
            PluginsCommand.self, PluginCommand.self,
        ])
}
