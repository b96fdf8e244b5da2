import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionFleet
import ProvisionPlugins

struct FleetPlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Show what apply would change on every host; nothing changes anywhere.")

    @Argument(help: "Recipe file (YAML).") var recipe: String
    @OptionGroup var fleet: FleetOptions
    @OptionGroup var connection: FleetConnectionOptions
    @OptionGroup var variables: VariableOptions
    @Flag(name: .customLong("detailed-exitcode"), help: "Exit 2 when some host has changes (0: none; 1: a host failed).")
    var detailedExitCode = false

    func run() throws {
        try runReporting(json: fleet.json) {
            let loaded = try Recipe.load(path: recipe, registry: builtinRegistry)
            let recipeData = try Fetch.localFile(recipe, maxBytes: 1 << 20)
            let (_, hosts) = try fleet.hosts()
            let targets = try hosts.map { try FleetTarget($0, declared: Set(loaded.vars.keys), overrides: try variables.parsed()) }
            let state = try FleetState(directory: fleet.stateDirectory())
            let store = try FleetStore(path: state.fleetRepository)
            var options = ProvisionFleet.FleetOptions(action: .plan, binary: try connection.binary())
            connection.apply(to: &options)
            options.recipe = (recipe, recipeData)
            let (reports, _) = try runFleet(options, targets: targets, state: state, store: store, json: fleet.json)
            if fleet.json {
                FleetOutput.printJSON(
                    FleetDocument(
                        action: "plan", fleetRun: nil, recipe: recipe, stoppedEarly: false, hosts: reports, recap: FleetOutput.recapMap(reports)))
            } else {
                emit(FleetOutput.recapText(reports, title: "FLEET RECAP (plan \(loaded.name); nothing changed)"), terminator: "")
            }
            if reports.contains(where: { [.failed, .unreachable].contains($0.outcome.status) }) { throw ExitCode(1) }
            if detailedExitCode, reports.contains(where: { $0.outcome.status == .changed }) { throw ExitCode(2) }
        }
    }
}
