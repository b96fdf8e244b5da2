import Foundation

/// One path going from `before` to `after`.
public struct FileChange: Sendable {
    public enum Kind: String, Sendable, Codable { case created, modified, deleted, metadata }

    /// Host path with symlinks resolved inside the root.
    public var path: String
    public var before: FileState
    public var after: FileState

    public var kind: Kind {
        switch (before, after) {
        case (.absent, _): return .created
        case (_, .absent): return .deleted
        case (.file(let old, _), .file(let new, _)): return old == new ? .metadata : .modified
        }
    }

    /// Only owner or mode change: the content is already right.
    public var isMetadataOnly: Bool { kind == .metadata }

    public init(path: String, before: FileState, after: FileState) {
        self.path = path
        self.before = before
        self.after = after
    }
}

public enum StepStatus: String, Sendable, Codable { case ok, changed, skipped, failed }

public struct StepResult: Sendable {
    public var id: String
    public var uses: String
    public var status: StepStatus
    public var changes: [FileChange]
    public var notices: [Notice]
    /// The facts the step exported (`gpu`, `initrd`, `cmdline`, `reboot_required`, …).
    public var exported: [String] = []
    /// Why a skipped step did not run (its `when:` was false, or `--step` left it out).
    public var reason: String? = nil
}

/// Everything a run would do, computed without touching the host.
public struct Plan: Sendable {
    public var recipe: Recipe
    public var vars: [String: Value]
    public var facts: Value
    public var steps: [StepResult]
    /// Net change per path across all steps, in the order paths were first touched.
    public var changes: [FileChange]
    /// Handlers, merged by argv; only those notified by a net change will run.
    public var handlers: [HandlerAction]
    public var notices: [Notice]
    /// Everything the steps exported, merged in order (`reboot_required`, `initrd`, …).
    public var exports: [String: Value]

    /// A step said the running kernel does not match what the run sets up.
    public var rebootRequired: Bool { exports["reboot_required"] == .bool(true) }

    public var changedStepCount: Int { steps.filter { $0.status == .changed }.count }

    /// "2 ok" or "2 ok, 1 skipped" (steps whose `when:` was false).
    public var unchangedSummary: String {
        let skipped = steps.filter { $0.status == .skipped }.count
        return "\(steps.count - changedStepCount - skipped) ok" + (skipped > 0 ? ", \(skipped) skipped" : "")
    }

    public var notifiedHandlers: [HandlerAction] {
        let changed = Set(changes.map(\.path))
        return handlers.filter { $0.notifiedBy.contains(where: changed.contains) }
    }
}

public struct Planner: Sendable {
    public let root: HostRoot
    public let registry: PluginRegistry
    /// Where declared inputs come from (the core passes its fetcher; tests pass data).
    public let inputs: any InputProvider

    public init(root: HostRoot, registry: PluginRegistry, inputs: any InputProvider = NoInputs()) {
        self.root = root
        self.registry = registry
        self.inputs = inputs
    }

    /// `--var K=V` values applied over the recipe's defaults. Unknown names are an error, and so
    /// is a value the option a variable fills whole would refuse (`identical_ids=whatever` for a
    /// choice of refuse|bind-by-address): all of them at once, before anything is planned.
    public static func resolveVars(_ recipe: Recipe, overrides: [String: String]) throws -> [String: Value] {
        var vars = recipe.vars
        var problems = Recipe.Problems()
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
            guard vars[key] != nil else {
                let known = recipe.varOrder.joined(separator: ", ")
                problems.add(
                    ProvisionError(
                        .invalidInput, "recipe \(recipe.path) declares no variable \"\(key)\" (it has: \(known.isEmpty ? "none" : known))"))
                continue
            }
            vars[key] = .string(value)
            for use in recipe.variableUses where use.variable == key {
                do {
                    try use.type.checkScalar(value, option: use.option, at: use.location)
                } catch var error as ProvisionError {
                    error.message = "--var \(key)=\(value): \(key) fills option \"\(use.option)\" of step \(use.step), which must be "
                        + Self.expectation(use.type) + ", not \"\(value)\""
                    problems.add(error)
                    break
                }
            }
        }
        try problems.throwIfAny()
        return vars
    }

    static func expectation(_ type: OptionType) -> String {
        switch type {
        case .choice(let words): return "one of " + words.joined(separator: ", ")
        case .bool: return "true or false"
        case .int: return "an integer"
        case .mode: return "an octal mode like 0644"
        case .path: return "an absolute path"
        default: return "a \(type)"
        }
    }

    /// `only`: the ids of the steps to run (`--step`); the earlier steps whose facts they read run
    /// with them, every other step is skipped. `onStep` is told each step as soon as it is planned.
    public func plan(
        _ recipe: Recipe, overrides: [String: String] = [:], only: [String]? = nil, onStep: ((StepResult) -> Void)? = nil
    ) throws -> Plan {
        let vars = try Self.resolveVars(recipe, overrides: overrides)
        let facts = try Facts.gather(root)
        let fetched = FetchedInputs()
        var selected: Set<String>? = nil
        if let only {
            let known = recipe.steps.map(\.id)
            let unknown = only.filter { !known.contains($0) }
            guard unknown.isEmpty else {
                throw ProvisionError(
                    .invalidInput,
                    "recipe \(recipe.path) has no step \(unknown.map { "\"\($0)\"" }.joined(separator: ", ")) (its steps: \(known.joined(separator: ", ")))")
            }
            selected = try dependencies(of: Set(only), recipe: recipe, vars: vars, facts: facts, fetched: fetched)
        }
        return try plan(
            recipe, vars: vars, facts: facts, selected: selected, requested: Set(only ?? []), fetched: fetched, onStep: onStep)
    }

    /// The selected steps and, transitively, every earlier step whose exports change what one of
    /// them plans: each is planned again with those exports withheld, and differs (or fails).
    func dependencies(
        of requested: Set<String>, recipe: Recipe, vars: [String: Value], facts: Value, fetched: FetchedInputs
    ) throws -> Set<String> {
        var views: [HostView] = []
        var digests: [String?] = []
        var exported: [[String: Value]] = []
        let view = HostView(root: root, facts: facts)
        for step in recipe.steps {
            views.append(view.copy(facts: view.facts))
            let outcome = try? planStep(step, recipe: recipe, vars: vars, view: view, fetched: fetched)
            digests.append(outcome.map { Self.digest($0.plan) })
            exported.append(outcome?.plan.exports ?? [:])
            if let outcome, outcome.skipped == nil {
                try stage(outcome.plan, step: step, view: view)
            }
        }
        var needed = requested
        var queue = recipe.steps.indices.filter { requested.contains(recipe.steps[$0].id) }
        while let index = queue.popLast() {
            let step = recipe.steps[index]
            // A selected step that fails after an earlier step failed may fail for want of its
            // facts: that step runs too, so its own error (and its fix) is what the user sees.
            if digests[index] == nil {
                for earlier in recipe.steps.indices where earlier < index && digests[earlier] == nil {
                    if needed.insert(recipe.steps[earlier].id).inserted { queue.append(earlier) }
                }
            }
            for earlier in recipe.steps.indices where earlier < index && !exported[earlier].isEmpty {
                let candidate = recipe.steps[earlier].id
                guard !needed.contains(candidate), case .map(var entries) = views[index].facts else { continue }
                for key in exported[earlier].keys { entries[key] = facts.lookup([Substring(key)]) }
                let withheld = views[index].copy(facts: .map(entries))
                let again = try? planStep(step, recipe: recipe, vars: vars, view: withheld, fetched: fetched)
                if again.map({ Self.digest($0.plan) }) != digests[index] {
                    needed.insert(candidate)
                    queue.append(earlier)
                }
            }
        }
        return needed
    }

    /// A step's plan as text, to tell whether withholding a fact changed it.
    static func digest(_ plan: StepPlan) -> String {
        var text = ""
        for file in plan.files {
            switch file.state {
            case .absent: text += "\(file.path) absent\n"
            case .present(let data, let mode, let uid, let gid):
                text += "\(file.path) \(SHA256.hex(data)) \(mode.map(String.init) ?? "-") \(uid.map(String.init) ?? "-") \(gid.map(String.init) ?? "-")\n"
            }
        }
        for handler in plan.handlers { text += "handler \(handler.argv) \(handler.notifiedBy)\n" }
        for notice in plan.notices { text += "\(notice.level.rawValue) \(notice.message)\n" }
        text += Value.map(plan.exports).description
        return text
    }

    struct PlannedStep {
        var plan: StepPlan
        /// Why the step does not run (its condition is false), or nil.
        var skipped: String?
    }

    /// Declared inputs fetched during one `plan`, so planning a step again (`--step`'s
    /// dependencies) does not download or read them twice.
    final class FetchedInputs {
        var data: [DeclaredInput: Data] = [:]
    }

    /// One step against the view: its `when:`, then the inputs it declares (fetched by `inputs`),
    /// then the plugin. Errors name the step; a fix a plugin offers is put in the recipe's own terms.
    func planStep(_ step: RecipeStep, recipe: Recipe, vars: [String: Value], view: HostView, fetched: FetchedInputs) throws -> PlannedStep {
        guard let plugin = registry.plugin(step.uses) else {
            throw ProvisionError(.invalidInput, "unknown step kind \"\(step.uses)\"", at: step.location)
        }
        let context = InterpolationContext(vars: vars, facts: view.facts)
        if let condition = step.condition, let when = step.when, case .scalar(let text) = when.kind {
            var values: [String: String] = [:]
            if try !condition.evaluate(context, values: &values) {
                let shown = values.sorted { $0.key < $1.key }.map { "\($0.key) is \($0.value.isEmpty ? "empty" : "\"\($0.value)\"")" }
                if case .truthy = condition, shown.count == 1 { return PlannedStep(plan: StepPlan(), skipped: "when \(shown[0])") }
                return PlannedStep(plan: StepPlan(), skipped: "when \(text) is false" + (shown.isEmpty ? "" : " (\(shown.joined(separator: ", ")))"))
            }
        }
        let options = StepOptions(values: step.options, specs: plugin.options, context: context, stepLocation: step.location)
        do {
            var given: [DeclaredInput: Data] = [:]
            for input in try plugin.inputs(StepContext(id: step.id, options: options, host: view)) where given[input] == nil {
                if let data = fetched.data[input] {
                    given[input] = data
                    continue
                }
                do {
                    given[input] = try inputs.fetch(input, root: root)
                    fetched.data[input] = given[input]
                } catch var error as ProvisionError where error.location == nil {
                    error.location = options.location(of: input.option)
                    throw error
                }
            }
            let context = StepContext(id: step.id, options: options, host: view, inputs: given, timeout: step.timeout)
            return PlannedStep(plan: try plugin.plan(context), skipped: nil)
        } catch var error as ProvisionError {
            error.step = step.id
            if error.location == nil || error.location == step.location {
                error.location = step.location
                error.message = "step \(step.id) (\(step.uses)): \(error.message)"
            } else if error.location?.file != recipe.path {
                error.message += " (step \(step.id), \(step.uses))"
            }
            if var fix = error.fix {
                let text = Self.describe(fix, step: step, recipe: recipe, fix: &fix)
                fix.text = text
                error.fix = fix
                error.message += ". To go on: \(text)"
            }
            throw error
        }
    }

    /// A plugin's fix in the recipe's terms: the variable to pass when the option comes from one,
    /// else the option to set in the step; and the step kind to add when the recipe lacks it.
    static func describe(_ offered: ProvisionError.Fix, step: RecipeStep, recipe: Recipe, fix: inout ProvisionError.Fix) -> String {
        var text: String
        if let node = step.options[offered.option], let variable = node.variableReference {
            fix.variable = variable
            text = "--var \(variable)=\(offered.value)"
        } else if let node = step.options[offered.option] {
            text = "set \(offered.option): \(offered.value) in step \(step.id) (\(node.location))"
        } else {
            text = "add \(offered.option): \(offered.value) under with: of step \(step.id) (\(step.location))"
        }
        if let kind = offered.needsStep {
            let index = recipe.steps.firstIndex { $0.id == step.id } ?? 0
            if let existing = recipe.steps.dropFirst(index + 1).first(where: { $0.uses == kind }) {
                text += " (the recipe's step \(existing.id), \(kind), then does the rest)"
            } else {
                text += ", and add a \(kind) step after step \(step.id)"
            }
        }
        return text
    }

    func stage(_ plan: StepPlan, step: RecipeStep, view: HostView) throws {
        for desired in plan.files {
            let resolved = try root.resolve(try HostRoot.normalize(desired.path, at: step.location))
            view.stage(resolved, try Self.target(of: desired.state, current: try view.state(resolved: resolved)))
        }
        view.export(plan.exports, by: "\(step.id) (\(step.uses))")
    }

    func plan(
        _ recipe: Recipe, vars: [String: Value], facts: Value, selected: Set<String>?, requested: Set<String>,
        fetched: FetchedInputs, onStep: ((StepResult) -> Void)?
    ) throws -> Plan {
        let view = HostView(root: root, facts: facts)
        var results: [StepResult] = []
        var firstSeen: [String] = []
        var originals: [String: FileState] = [:]
        var handlers: [HandlerAction] = []
        var notices: [Notice] = []
        var exports: [String: Value] = [:]

        for step in recipe.steps {
            var skipReason: String?
            var stepPlan = StepPlan()
            if let selected, !selected.contains(step.id) {
                skipReason = "not selected (--step)"
            } else {
                let planned = try planStep(step, recipe: recipe, vars: vars, view: view, fetched: fetched)
                skipReason = planned.skipped
                stepPlan = planned.plan
            }
            if let skipReason {
                var notice = Notice(.info, "skipped: \(skipReason)")
                notice.step = step.id
                notices.append(notice)
                let result = StepResult(id: step.id, uses: step.uses, status: .skipped, changes: [], notices: [notice], reason: skipReason)
                results.append(result)
                onStep?(result)
                continue
            }
            var changes: [FileChange] = []
            for desired in stepPlan.files {
                let resolved = try root.resolve(try HostRoot.normalize(desired.path, at: step.location))
                let current = try view.state(resolved: resolved)
                let target = try Self.target(of: desired.state, current: current)
                if originals[resolved] == nil {
                    originals[resolved] = try view.original(resolved: resolved)
                    firstSeen.append(resolved)
                }
                if target != current {
                    changes.append(FileChange(path: resolved, before: current, after: target))
                    view.stage(resolved, target)
                }
            }
            for handler in stepPlan.handlers {
                let notifiedBy = try handler.notifiedBy.map { try root.resolve(try HostRoot.normalize($0, at: step.location)) }
                let rewrites = try handler.rewrites?.map { try root.resolve(try HostRoot.normalize($0, at: step.location)) }
                if let index = handlers.firstIndex(where: { $0.argv == handler.argv }) {
                    handlers[index].notifiedBy += notifiedBy.filter { !handlers[index].notifiedBy.contains($0) }
                } else {
                    handlers.append(
                        HandlerAction(
                            argv: handler.argv, notifiedBy: notifiedBy, needsMounts: handler.needsMounts, onHost: handler.onHost,
                            rewrites: rewrites))
                }
            }
            var stepNotices = stepPlan.notices.map { notice -> Notice in
                var tagged = notice
                tagged.step = step.id
                return tagged
            }
            notices += stepNotices
            view.export(stepPlan.exports, by: "\(step.id) (\(step.uses))")
            exports.merge(stepPlan.exports) { _, new in new }
            if let selected, selected.contains(step.id), !requested.contains(step.id) {
                var notice = Notice(.info, "runs with the selected steps: they read its facts (\(stepPlan.exports.keys.sorted().joined(separator: ", ")))")
                notice.step = step.id
                stepNotices.append(notice)
                notices.append(notice)
            }
            let result = StepResult(
                id: step.id, uses: step.uses, status: changes.isEmpty ? .ok : .changed, changes: changes, notices: stepNotices,
                exported: stepPlan.exports.keys.sorted())
            results.append(result)
            onStep?(result)
        }

        var net: [FileChange] = []
        for path in firstSeen {
            let before = originals[path]!
            let after = try view.state(resolved: path)
            if before != after { net.append(FileChange(path: path, before: before, after: after)) }
        }
        return Plan(
            recipe: recipe, vars: vars, facts: facts, steps: results, changes: net, handlers: handlers, notices: notices, exports: exports)
    }

    /// Fills in what a step left unsaid: metadata it did not ask for stays as it is, and new files
    /// default to 0644 root:root.
    static func target(of desired: DesiredFile.State, current: FileState) throws -> FileState {
        switch desired {
        case .absent:
            return .absent
        case .present(let content, let mode, let uid, let gid):
            let base = current.meta ?? FileMeta(mode: 0o644, uid: 0, gid: 0)
            return .file(content, FileMeta(mode: mode ?? base.mode, uid: uid ?? base.uid, gid: gid ?? base.gid))
        }
    }
}
