import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionPlugins

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply", abstract: "Change the host to what the recipe says, recording every touched file in history.")

    @Argument(help: "Recipe file (YAML).") var recipe: String
    @OptionGroup var global: GlobalOptions
    @OptionGroup var variables: VariableOptions
    @OptionGroup var plugins: PluginOptions
    @Flag(name: .customLong("no-handlers"), help: "Write files but skip (and report) every handler.")
    var noHandlers = false

    func run() throws {
        var loaded: Recipe?
        try runReporting(json: global.json, recipe: { loaded }) {
            let registry = plugins.catalog().registry
            let engine = try global.engine(registry: registry)
            engine.runHandlers = !noHandlers
            let recipe = try Recipe.load(path: self.recipe, registry: registry)
            loaded = recipe
            let report = try engine.apply(recipe, vars: try variables.parsed())
            let plan = report.plan!
            let handlers = report.record.handlers.map {
                HandlerDocument(argv: $0.argv, notifiedBy: $0.notifiedBy, status: $0.status.rawValue, detail: $0.detail)
            }
            if global.json {
                Output.printJSON(
                    RunDocument(
                        run: report.record.run, commit: report.commit, recipe: recipe.path, root: engine.root.path,
                        changed: plan.changedStepCount, steps: plan.steps.map(StepDocument.init), files: report.changes.map(FileDocument.init),
                        handlers: handlers, notices: plan.notices, rebootRequired: plan.rebootRequired, drift: report.drift,
                        recovered: report.recovered?.undid?.first, packed: report.packed))
            } else {
                var out = ""
                if let recovered = report.recovered { out += "recovered first: \(recovered.summary)\n" }
                if !report.drift.isEmpty { out += "recorded hand edits (drift) first: \(report.drift.joined(separator: ", "))\n" }
                out += "apply \(recipe.name) on \(engine.root.path): run \(report.record.run)\n"
                out += Output.render(steps: plan.steps, changes: report.changes, handlers: handlers, notices: plan.notices)
                if plan.rebootRequired { out += "reboot required: the kernel command line changed\n" }
                out += "\(plan.changedStepCount) changed, \(plan.unchangedSummary); "
                out += "run \(report.record.run) recorded as \(String(report.commit.prefix(10)))\n"
                if let packed = report.packed { out += "history \(Output.describe(packed))\n" }
                print(out, terminator: "")
            }
            if let failed = report.failedHandlers.first {
                throw ProvisionError(
                    .handler,
                    "handler \(failed.argv.joined(separator: " ")) failed; the files are written and recorded in run \(report.record.run), "
                        + "and the next apply runs it again",
                    detail: failed.detail.map { $0 + "\n" })
            }
        }
    }
}
