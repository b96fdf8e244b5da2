import ArgumentParser
import Foundation
import CSystem
import ProvisionCore

@main
struct Provision: ParsableCommand {
    /// Parses the arguments the kernel passed (see provision_argv): the static build's runtime
    /// would otherwise read them from /proc, absent in a bare chroot.
    static func main() {
        let count = Int(provision_argc())
        guard count > 0, let argv = provision_argv() else { return main(nil) }
        main((1..<count).compactMap { argv[$0].map { String(cString: $0) } })
    }

    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Idempotent host configuration with a git history of every file it touches.",
        version: provisionVersion,
        subcommands: [
            PlanCommand.self, ApplyCommand.self, RollbackCommand.self, HistoryCommand.self, ShowCommand.self, DiffCommand.self,
            BlameCommand.self, StatusCommand.self, ExportCommand.self, DevicesCommand.self, VerifyCommand.self, RomCommand.self,
            PluginsCommand.self, FleetCommand.self,
        ])
}
