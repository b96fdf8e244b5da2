import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionFleet

struct FleetRollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Roll back, on each host, the run a fleet run made there (default: the newest fleet apply not yet rolled back).")

    @Argument(help: "The fleet run (see provision fleet history).") var fleetRun: Int?
    @OptionGroup var fleet: FleetOptions
    @OptionGroup var connection: FleetConnectionOptions
    @Flag(help: "Roll back files edited by hand since (the edits are recorded as drift first).") var force = false

    func run() throws {
        try runReporting(json: fleet.json) {
            let started = Date()
            let (_, hosts) = try fleet.hosts()
            let state = try FleetState(directory: fleet.stateDirectory())
            let store = try FleetStore(path: state.fleetRepository)
            let target = try chooseRun(store)
            guard target.action == "apply" else {
                throw ProvisionError(.invalidInput, "fleet run \(target.number) was a \(target.action), not an apply: nothing of it to roll back")
            }
            var runs: [String: Int] = [:]
            for outcome in target.hosts {
                if let run = outcome.run, outcome.status != .skipped, outcome.status != .unreachable { runs[outcome.host] = run }
            }
            let targets = try hosts.map { try FleetTarget($0, declared: [], overrides: [:]) }
            var options = ProvisionFleet.FleetOptions(action: .rollback(runs: runs, force: force), binary: try connection.binary())
            connection.apply(to: &options)
            let (reports, _) = try runFleet(options, targets: targets, state: state, store: store, json: fleet.json)
            let record = try store.append(
                FleetRunRecord(
                    number: 0, action: "rollback", recipe: target.recipe, recipeSHA256: target.recipeSHA256, vars: [:],
                    inventory: fleet.inventoryPath, limit: fleet.limit, undid: target.number,
                    started: started, hosts: reports.map(\.outcome)))
            if fleet.json {
                FleetOutput.printJSON(
                    FleetDocument(
                        action: "rollback", fleetRun: record.number, recipe: target.recipe, stoppedEarly: false, hosts: reports,
                        recap: FleetOutput.recapMap(reports)))
            } else {
                emit(
                    FleetOutput.recapText(reports, title: "FLEET RECAP (fleet run \(record.number): rollback of fleet run \(target.number))"),
                    terminator: "")
                emit("recorded in \(store.path) as fleet run \(record.number)")
            }
            if reports.contains(where: { [.failed, .unreachable].contains($0.outcome.status) }) { throw ExitCode(1) }
        }
    }

    /// The fleet run named, or the newest apply that no rollback undid.
    private func chooseRun(_ store: FleetStore) throws -> FleetRunRecord {
        if let fleetRun { return try store.record(fleetRun) }
        let records = try store.records()
        let undone = Set(records.compactMap(\.undid))
        guard let newest = records.first(where: { $0.action == "apply" && !undone.contains($0.number) }) else {
            throw ProvisionError(.notFound, "fleet.git records no fleet apply that is not rolled back (see provision fleet history)")
        }
        return newest
    }
}
