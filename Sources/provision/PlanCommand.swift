import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionPlugins
import ProvisionVerify

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what apply would change, as diffs, without touching anything.",
        discussion: """
            Besides the diffs, plan says what apply would do around them: which handlers would run or be skipped (and \
            why), which files it would overwrite although they were changed by hand since a run recorded them, and an \
            interrupted run it would undo first. Exit 0, or with --detailed-exitcode 2 when there are changes to apply.
            """)

    @Argument(help: "Recipe file (YAML).", completion: .file(extensions: ["yaml", "yml"])) var recipe: String
    @OptionGroup var global: GlobalOptions
    @OptionGroup var variables: VariableOptions
    @OptionGroup var selection: StepSelection
    @OptionGroup var plugins: PluginOptions
    @Flag(name: .customLong("detailed-exitcode"), help: "Exit 2 when there are changes to apply.")
    var detailedExitcode = false

    func run() throws {
        try Self.plan(
            recipe: recipe, global: global, variables: variables, selection: selection, plugins: plugins, detailedExitcode: detailedExitcode)
    }

    /// `plan`, and `apply --check`.
    static func plan(
        recipe path: String, global: GlobalOptions, variables: VariableOptions, selection: StepSelection, plugins: PluginOptions,
        detailedExitcode: Bool
    ) throws {
        var pending = false
        var loaded: Recipe?
        let console = global.console
        try runReporting(console, recipe: { loaded }) {
            let registry = plugins.catalog().registry
            let engine = try global.engine(registry: registry)
            let recipe = try Recipe.load(path: path, registry: registry)
            loaded = recipe
            let vars = try variables.parsed()
            let printer = RunPrinter(console: console, recipe: recipe)
            if !console.json {
                if !console.quiet { console.out("plan \(recipe.name) (\(recipe.path)) on \(engine.root.path)\n") }
                engine.onEvent = printer.handle
            }
            let plan = try engine.plan(recipe, vars: vars, only: selection.only)
            let forecast = try engine.forecast(plan)
            let handlers = forecast.handlers.map {
                HandlerDocument(argv: $0.argv, notifiedBy: $0.notifiedBy, status: $0.status, detail: $0.detail)
            }
            pending = !plan.changes.isEmpty
            if console.json {
                Output.printJSON(
                    RunDocument(
                        recipe: recipe.path, root: engine.root.path, changed: plan.changedStepCount, steps: plan.steps.map(StepDocument.init),
                        files: plan.changes.map(FileDocument.init), handlers: handlers, notices: plan.notices,
                        rebootRequired: plan.rebootRequired,
                        rebootMissing: plan.rebootRequired ? Verifier.pendingRebootTokens(engine.root, plan) : [],
                        handEdits: forecast.handEdits.map { HandEditDocument(path: $0.path, since: $0.since) }, recovery: forecast.recovery))
                return
            }
            var out = plan.changes.isEmpty || console.quiet ? "" : "\n" + printer.diffs(plan.changes)
            if let recovery = forecast.recovery {
                out += console.paint("interrupted:", .yellow) + " \(recovery.action.rawValue) run \(recovery.run) did not finish; apply first puts "
                    + "back its \(recovery.paths.count) file(s) from history (this plan reads the files as they are now)\n"
            }
            for edit in forecast.handEdits {
                out += console.paint("changed by hand", .yellow) + (edit.since.map { " since run \($0)" } ?? "")
                    + ": \(edit.path) (apply records the edit in history first, then overwrites it)\n"
            }
            for handler in forecast.handlers where !console.quiet || handler.status == "would be skipped" {
                out += printer.handlerLine(handler.argv, status: handler.status, detail: handler.detail, seconds: nil)
            }
            out += printer.notices(plan.notices)
            out += RunPrinter.rebootLine(plan, root: engine.root, applied: false, console: console) ?? ""
            out += "\(plan.changedStepCount) step(s) to change, \(plan.unchangedSummary), \(plan.changes.count) file(s)\n"
            console.out(out)
        }
        if detailedExitcode && pending { throw ExitCode(2) }
    }
}

/// `--step ID`, repeatable: only those steps run, with the earlier steps whose facts they read.
struct StepSelection: ParsableArguments {
    @Option(
        name: .customLong("step"),
        help: ArgumentHelp("Run only this step (repeatable), with the earlier steps whose facts it reads.", valueName: "id"),
        completion: .custom(Completion.steps))
    var steps: [String] = []

    var only: [String]? { steps.isEmpty ? nil : steps }
}
