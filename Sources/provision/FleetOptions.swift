import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionFleet

/// Options every `provision fleet` command takes: which hosts, where the controller keeps its state.
struct FleetOptions: ParsableArguments {
    @Option(name: [.customShort("i"), .long], help: "Ansible inventory (YAML or INI; group_vars/ and host_vars/ beside it are read).")
    var inventory: String

    @Option(help: ArgumentHelp("Only hosts matching Ansible's pattern (a:b, a:!b, a:&b, ~regex, @file).", valueName: "pattern"))
    var limit: String?

    @Option(help: "The controller's state: fleet.git, known_hosts (default: .provision-fleet/ beside the inventory).")
    var state: String?

    @Flag(name: .long, help: "Print one JSON document on stdout.")
    var json = false

    /// The inventory as fleet-run records name it.
    var inventoryPath: String { URL(fileURLWithPath: inventory).standardizedFileURL.path }

    func stateDirectory() -> String { state ?? FleetState.defaultDirectory(inventory: inventory) }

    /// The inventory's hosts matching --limit, in inventory order; none is an error.
    func hosts() throws -> (Inventory, [FleetHost]) {
        let loaded = try Inventory.load(path: inventory)
        let names = try loaded.hosts(limit: limit)
        guard !names.isEmpty else {
            throw ProvisionError(.invalidInput, "no host of \(inventory) matches \(limit.map { "--limit \($0)" } ?? "the inventory")")
        }
        return (loaded, try names.map { try loaded.fleetHost($0) })
    }
}

/// How hosts are run: parallelism and time limits.
struct FleetConnectionOptions: ParsableArguments {
    @Option(help: "Hosts worked on at once.") var forks = 5
    @Option(name: .customLong("connect-timeout"), help: "Seconds to wait for each SSH connection.") var connectTimeout = 10
    @Option(help: "Seconds a host's command may take before it is stopped.") var timeout: Double = 3600
    @Option(
        name: .customLong("push-binary"),
        help: "The provision build copied to hosts that lack it (default: this executable; use scripts/dist.sh's self-contained one).")
    var pushBinary: String?

    func validate() throws {
        guard forks >= 1 else { throw ValidationError("--forks must be at least 1") }
        guard connectTimeout >= 1 else { throw ValidationError("--connect-timeout must be at least 1") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func apply(to options: inout ProvisionFleet.FleetOptions) {
        options.forks = forks
        options.connectTimeout = connectTimeout
        options.runTimeout = timeout
    }

    func binary() throws -> String {
        if let pushBinary { return pushBinary }
        let own = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        return own
    }
}
