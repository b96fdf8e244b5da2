import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionPlugins

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Root of the host to act on (a host snapshot, a chroot, or / for this machine).")
    var root: String = "/"

    @Option(name: .long, help: "History repository (default: ROOT/var/lib/provision/history.git).")
    var history: String?

    @Flag(name: .long, help: "Print one JSON document on stdout.")
    var json = false

    @Option(name: .customLong("lock-timeout"), help: "Seconds to wait for another run on the same root.")
    var lockTimeout: Double = 300

    func engine(registry: PluginRegistry = builtinRegistry) throws -> Engine {
        let engine = try Engine(root: try HostRoot(root), historyPath: history, registry: registry)
        engine.lockTimeout = lockTimeout
        return engine
    }
}

/// `--plugin-dir DIR`, repeatable: where external plugins are looked for first.
struct PluginOptions: ParsableArguments {
    @Option(
        name: .customLong("plugin-dir"),
        help: ArgumentHelp(
            "Look for external plugins (provision-step-KIND) here first; then in $PROVISION_PLUGIN_PATH, /etc/provision/plugins, /usr/lib/provision/plugins.",
            valueName: "dir"))
    var directories: [String] = []

    /// The built-ins and the external plugins found on the path.
    func catalog() -> PluginCatalog {
        PluginCatalog.load(builtins: builtinRegistry, searchPath: PluginCatalog.searchPath(pluginDirs: directories))
    }
}

/// `--var K=V`, repeatable.
struct VariableOptions: ParsableArguments {
    @Option(name: .customLong("var"), help: ArgumentHelp("Set a recipe variable.", valueName: "name=value"))
    var assignments: [String] = []

    func parsed() throws -> [String: String] {
        var vars: [String: String] = [:]
        for assignment in assignments {
            guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else {
                throw ValidationError("--var takes name=value, got \"\(assignment)\"")
            }
            vars[String(assignment[..<equals])] = String(assignment[assignment.index(after: equals)...])
        }
        return vars
    }
}

/// Runs a command body, turning engine errors into a message (or JSON) and the contract's exit code.
/// `recipe` is the recipe the body loaded, if it got that far: its steps then appear in the JSON
/// error document, the failed one as `failed` and the others as `skipped` (nothing was applied).
func runReporting(json: Bool, recipe: () -> Recipe? = { nil }, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ProvisionError {
        if json {
            let steps = recipe()?.steps.map {
                ErrorDocument.Step(id: $0.id, uses: $0.uses, status: $0.id == error.step ? "failed" : "skipped")
            }
            Output.printJSON(ErrorDocument(error: .init(error), changed: steps == nil ? nil : 0, steps: steps))
        }
        var text = "provision: error: \(error.description)\n"
        if let detail = error.detail, !detail.isEmpty { text += detail }
        FileHandle.standardError.write(Data(text.utf8))
        throw ExitCode(error.exitCode)
    }
}
