import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionFleet
import ProvisionPlugins

struct FleetApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Apply a recipe on every host (each records the run in its own history); fetch the histories into fleet.git.")

    @Argument(help: "Recipe file (YAML).") var recipe: String
    @OptionGroup var fleet: FleetOptions
    @OptionGroup var connection: FleetConnectionOptions
    @OptionGroup var variables: VariableOptions
    @Option(help: ArgumentHelp("Hosts per batch: a number or a percentage; each batch ends before the next starts.", valueName: "N|N%"))
    var serial: String?
    @Option(name: .customLong("max-fail-percent"), help: "Stop later batches once a batch's failed hosts exceed this share.")
    var maxFailPercent: Int?
    @Flag(name: .customLong("no-handlers"), help: "Write files but skip (and report) every handler, on every host.")
    var noHandlers = false

    func validate() throws {
        if let serial, FleetSerial(serial) == nil { throw ValidationError("--serial takes a number of hosts or a percentage (2, 25%), got \(serial)") }
        if let maxFailPercent, !(0...100).contains(maxFailPercent) { throw ValidationError("--max-fail-percent takes 0 to 100") }
    }

    func run() throws {
        try runReporting(json: fleet.json) {
            let started = Date()
            let loaded = try Recipe.load(path: recipe, registry: builtinRegistry)
            let recipeData = try Fetch.localFile(recipe, maxBytes: 1 << 20)
            let overrides = try variables.parsed()
            let (_, hosts) = try fleet.hosts()
            let targets = try hosts.map { try FleetTarget($0, declared: Set(loaded.vars.keys), overrides: overrides) }
            let state = try FleetState(directory: fleet.stateDirectory())
            let store = try FleetStore(path: state.fleetRepository)
            var options = ProvisionFleet.FleetOptions(action: .apply(noHandlers: noHandlers), binary: try connection.binary())
            connection.apply(to: &options)
            options.recipe = (recipe, recipeData)
            options.serial = serial.flatMap(FleetSerial.init)
            options.maxFailPercent = maxFailPercent
            let (reports, stopped) = try runFleet(options, targets: targets, state: state, store: store, json: fleet.json)
            let record = try store.append(
                FleetRunRecord(
                    number: 0, action: "apply", recipe: URL(fileURLWithPath: recipe).standardizedFileURL.path, recipeSHA256: SHA256.hex(recipeData),
                    vars: overrides, inventory: fleet.inventoryPath, limit: fleet.limit, undid: nil,
                    started: started, hosts: reports.map(\.outcome)))
            if fleet.json {
                FleetOutput.printJSON(
                    FleetDocument(
                        action: "apply", fleetRun: record.number, recipe: record.recipe, stoppedEarly: stopped, hosts: reports,
                        recap: FleetOutput.recapMap(reports)))
            } else {
                emit(FleetOutput.recapText(reports, title: "FLEET RECAP (fleet run \(record.number): apply \(loaded.name))"), terminator: "")
                if stopped { emit("later batches were not run: a batch's failures passed --max-fail-percent \(maxFailPercent ?? 0)") }
                emit("recorded in \(store.path) as fleet run \(record.number)")
            }
            if reports.contains(where: { [.failed, .unreachable].contains($0.outcome.status) }) || stopped { throw ExitCode(1) }
        }
    }
}
