import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionPlugins

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long, help: "Root of the host to act on (a host snapshot, a chroot, or / for this machine).",
        completion: .directory)
    var root: String = "/"

    @Option(name: .long, help: "History repository (default: ROOT/var/lib/provision/history.git).", completion: .directory)
    var history: String?

    @Flag(name: .long, help: "Print one JSON document on stdout (errors too), with a \"schema\" version field.")
    var json = false

    @Option(name: .customLong("lock-timeout"), help: "Seconds to wait for another run on the same root.")
    var lockTimeout: Double = 300

    @OptionGroup var display: DisplayOptions

    var console: Console { Console(display, json: json) }

    func engine(registry: PluginRegistry = builtinRegistry) throws -> Engine {
        let engine = try Engine(root: try HostRoot(root), historyPath: history, registry: registry)
        engine.lockTimeout = lockTimeout
        let console = console
        engine.onWait = { console.err("provision: \($0)\n") }
        engine.onRepair = { console.err("provision: \($0)\n") }
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

/// `--var K=V` (repeatable) and `--var-file FILE`, a YAML mapping like Ansible's `-e @file`; a
/// `--var` wins over the file.
struct VariableOptions: ParsableArguments {
    @Option(
        name: .customLong("var"), help: ArgumentHelp("Set a recipe variable.", valueName: "name=value"),
        completion: .custom(Completion.variables))
    var assignments: [String] = []

    @Option(
        name: .customLong("var-file"), help: ArgumentHelp("Read variables from a YAML mapping (name: value).", valueName: "file"),
        completion: .file(extensions: ["yaml", "yml"]))
    var files: [String] = []

    func parsed() throws -> [String: String] {
        var vars: [String: String] = [:]
        for file in files { vars.merge(try Self.read(file)) { _, new in new } }
        for assignment in assignments {
            guard let equals = assignment.firstIndex(of: "="), equals != assignment.startIndex else {
                throw ValidationError("--var takes name=value, got \"\(assignment)\"")
            }
            vars[String(assignment[..<equals])] = String(assignment[assignment.index(after: equals)...])
        }
        return vars
    }
    static func read(_ file: String) throws -> [String: String] { try Recipe.variableFile(file) }
}

/// `runReporting` for commands that take no DisplayOptions (`fleet …`): colour as --color=auto.
func runReporting(json: Bool, recipe: () -> Recipe? = { nil }, _ body: () throws -> Void) throws {
    try runReporting(Console(json: json), recipe: recipe, body)
}

/// Runs a command body, turning engine errors into a message (or JSON) and the contract's exit code.
/// `recipe` is the recipe the body loaded, if it got that far: its steps then appear in the JSON
/// error document, the failed one as `failed` and the others as `skipped` (nothing was applied).
/// Every error found in the same pass (a recipe's) is reported, each on its own line.
func runReporting(_ console: Console, recipe: () -> Recipe? = { nil }, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ProvisionError {
        if console.json {
            let steps = recipe()?.steps.map {
                ErrorDocument.Step(id: $0.id, uses: $0.uses, status: $0.id == error.step ? "failed" : "skipped")
            }
            Output.printJSON(ErrorDocument(error, changed: steps == nil ? nil : 0, steps: steps))
        }
        var text = ""
        for each in error.all {
            text += "provision: " + console.paint("error:", .red, stderr: true) + " \(each.description)\n"
        }
        if error.others.count > 0 { text += "provision: \(error.all.count) errors\n" }
        if let detail = error.detail, !detail.isEmpty { text += detail.hasSuffix("\n") ? detail : detail + "\n" }
        console.err(text)
        throw ExitCode(error.exitCode)
    }
}
