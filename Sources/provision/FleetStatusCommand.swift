import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionFleet

struct FleetStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Per host: reachable or not, its last run, drift (tracked files edited since), a pending recovery.",
        discussion: "Exit 0 when every host is reachable and clean, 3 when some host has drift or a pending recovery, 1 when one is unreachable.")

    @OptionGroup var fleet: FleetOptions
    @OptionGroup var connection: FleetConnectionOptions

    func run() throws {
        try runReporting(json: fleet.json) {
            let (_, hosts) = try fleet.hosts()
            let targets = try hosts.map { try FleetTarget($0, declared: [], overrides: [:]) }
            let state = try FleetState(directory: fleet.stateDirectory())
            let store = try FleetStore(path: state.fleetRepository)
            var options = ProvisionFleet.FleetOptions(action: .status, binary: try connection.binary())
            connection.apply(to: &options)
            var (reports, _) = try runFleet(options, targets: targets, state: state, store: store, json: fleet.json)
            // An unreachable host: what fleet.git last saw of it.
            for index in reports.indices where reports[index].outcome.status == .unreachable {
                if let last = try store.runs(host: reports[index].outcome.host, limit: 1).first {
                    reports[index].outcome.run = last.run
                    reports[index].outcome.commit = last.commit
                    reports[index].outcome.error = (reports[index].outcome.error ?? "") + "; last seen in fleet.git: run \(last.run) (\(last.action))"
                }
            }
            if fleet.json {
                FleetOutput.printJSON(
                    FleetDocument(action: "status", fleetRun: nil, recipe: nil, stoppedEarly: false, hosts: reports, recap: FleetOutput.recapMap(reports)))
            }
            if reports.contains(where: { [.failed, .unreachable].contains($0.outcome.status) }) { throw ExitCode(1) }
            if reports.contains(where: { $0.outcome.status == .changed }) { throw ExitCode(3) }
        }
    }
}
