import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionPlugins

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan", abstract: "Show what apply would change, as diffs, without touching anything.")

    @Argument(help: "Recipe file (YAML).") var recipe: String
    @OptionGroup var global: GlobalOptions
    @OptionGroup var variables: VariableOptions
    @OptionGroup var plugins: PluginOptions
    @Flag(name: .customLong("detailed-exitcode"), help: "Exit 2 when there are changes to apply.")
    var detailedExitcode = false

    func run() throws {
        var pending = false
        var loaded: Recipe?
        try runReporting(json: global.json, recipe: { loaded }) {
            let registry = plugins.catalog().registry
            let engine = try global.engine(registry: registry)
            let recipe = try Recipe.load(path: self.recipe, registry: registry)
            loaded = recipe
            let plan = try engine.plan(recipe, vars: try variables.parsed())
            let handlers = plan.handlers.map { handler in
                let notified = plan.notifiedHandlers.contains(handler)
                return HandlerDocument(
                    argv: handler.argv, notifiedBy: handler.notifiedBy, status: notified ? "would run" : "not notified", detail: nil)
            }
            pending = !plan.changes.isEmpty
            if global.json {
                Output.printJSON(
                    RunDocument(
                        recipe: recipe.path, root: engine.root.path, changed: plan.changedStepCount, steps: plan.steps.map(StepDocument.init),
                        files: plan.changes.map(FileDocument.init), handlers: handlers, notices: plan.notices,
                        rebootRequired: plan.rebootRequired))
                return
            }
            var out = "plan \(recipe.name) (\(recipe.path)) on \(engine.root.path)\n"
            out += Output.render(steps: plan.steps, changes: plan.changes, handlers: handlers, notices: plan.notices)
            if plan.rebootRequired { out += "reboot required after apply\n" }
            out += "\(plan.changedStepCount) step(s) to change, \(plan.unchangedSummary), \(plan.changes.count) file(s)\n"
            print(out, terminator: "")
        }
        if detailedExitcode && pending { throw ExitCode(2) }
    }
}
