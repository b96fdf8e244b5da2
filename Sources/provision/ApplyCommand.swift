import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionPlugins
import ProvisionVerify

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Change the host to what the recipe says, recording every touched file in history.",
        discussion: """
            Each step is printed as it is planned, the diffs before anything is written, and each handler as it starts, \
            with its output indented and how long it took. --check is plan (as Ansible's check mode); --diff is \
            accepted for Ansible users (apply always shows its diffs). Exit 0, 1 when a step or handler failed (the \
            files are recorded and the next apply runs a failed handler again).
            """)

    @Argument(help: "Recipe file (YAML).", completion: .file(extensions: ["yaml", "yml"])) var recipe: String
    @OptionGroup var global: GlobalOptions
    @OptionGroup var variables: VariableOptions
    @OptionGroup var selection: StepSelection
    @OptionGroup var plugins: PluginOptions
    @Flag(name: .customLong("no-handlers"), help: "Write files but skip (and report) every handler.")
    var noHandlers = false
    @Flag(name: .long, help: "Change nothing: show what apply would do (the same as plan; exit 2 when there are changes).")
    var check = false
    @Flag(name: .long, help: "Show the diffs (apply always does; accepted as Ansible's --diff).")
    var diff = false

    func run() throws {
        if check {
            try PlanCommand.plan(
                recipe: recipe, global: global, variables: variables, selection: selection, plugins: plugins, detailedExitcode: true)
            return
        }
        var loaded: Recipe?
        let console = global.console
        try runReporting(console, recipe: { loaded }) {
            let registry = plugins.catalog().registry
            let engine = try global.engine(registry: registry)
            engine.runHandlers = !noHandlers
            let recipe = try Recipe.load(path: self.recipe, registry: registry)
            loaded = recipe
            let vars = try variables.parsed()
            let printer = RunPrinter(console: console, recipe: recipe)
            if !console.json && !console.quiet { console.out("apply \(recipe.name) (\(recipe.path)) on \(engine.root.path)\n") }
            engine.onEvent = printer.handle
            let report = try engine.apply(recipe, vars: vars, only: selection.only)
            let plan = report.plan!
            let handlers = report.record.handlers.map {
                HandlerDocument(
                    argv: $0.argv, notifiedBy: $0.notifiedBy, status: $0.status.rawValue, detail: $0.detail, seconds: printer.durations[$0.argv])
            }
            let failure = report.failedHandlers.first.map { failed in
                ProvisionError(
                    .handler,
                    "handler \(failed.argv.joined(separator: " ")) failed; the files are written and recorded in run \(report.record.run), "
                        + "and the next apply runs it again",
                    detail: failed.detail.map { $0 + "\n" })
            }
            if console.json {
                Output.printJSON(
                    RunDocument(
                        run: report.record.run, commit: report.commit, recipe: recipe.path, root: engine.root.path,
                        changed: plan.changedStepCount, steps: plan.steps.map(StepDocument.init), files: report.changes.map(FileDocument.init),
                        handlers: handlers, notices: plan.notices, rebootRequired: plan.rebootRequired,
                        rebootMissing: plan.rebootRequired ? Verifier.pendingRebootTokens(engine.root, plan) : [], drift: report.drift,
                        recovered: report.recovered?.undid?.first, packed: report.packed, error: failure.map(ErrorDocument.Body.init)))
                // One document: it holds the failure; the message goes to stderr as well.
                if let failure {
                    console.err("provision: " + console.paint("error:", .red, stderr: true) + " \(failure.description)\n" + (failure.detail ?? ""))
                    throw ExitCode(failure.exitCode)
                }
            } else {
                var out = printer.notices(plan.notices)
                out += RunPrinter.rebootLine(plan, root: engine.root, applied: true, console: console) ?? ""
                out += "\(plan.changedStepCount) changed, \(plan.unchangedSummary); "
                out += "run \(report.record.run) recorded as \(String(report.commit.prefix(10)))\n"
                if let packed = report.packed { out += "history \(Output.describe(packed))\n" }
                console.out(out)
            }
            if let failure { throw failure }
        }
    }
}
