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

    /// `--var K=V` values applied over the recipe's defaults; unknown names are an error.
    public static func resolveVars(_ recipe: Recipe, overrides: [String: String]) throws -> [String: Value] {
        var vars = recipe.vars
        for (key, value) in overrides {
            guard vars[key] != nil else {
                let known = recipe.varOrder.joined(separator: ", ")
                throw ProvisionError(.invalidInput, "recipe \(recipe.path) declares no variable \"\(key)\" (it has: \(known.isEmpty ? "none" : known))")
            }
            vars[key] = .string(value)
        }
        return vars
    }

    public func plan(_ recipe: Recipe, overrides: [String: String] = [:]) throws -> Plan {
        let vars = try Self.resolveVars(recipe, overrides: overrides)
        let facts = try Facts.gather(root)
        let view = HostView(root: root, facts: facts)
        var results: [StepResult] = []
        var firstSeen: [String] = []
        var originals: [String: FileState] = [:]
        var handlers: [HandlerAction] = []
        var notices: [Notice] = []
        var exports: [String: Value] = [:]

        for step in recipe.steps {
            guard let plugin = registry.plugin(step.uses) else {
                throw ProvisionError(.invalidInput, "unknown step kind \"\(step.uses)\"", at: step.location)
            }
            let context = InterpolationContext(vars: vars, facts: view.facts)
            if let when = step.when, case .scalar(let text) = when.kind {
                let value = try context.render(text, at: when.location)
                let word = (value.scalarText ?? "x").trimmingCharacters(in: .whitespaces).lowercased()
                if ["", "false", "no", "0"].contains(word) {
                    var notice = Notice(.info, "skipped: when \(text) is \(word.isEmpty ? "empty" : word)")
                    notice.step = step.id
                    notices.append(notice)
                    results.append(StepResult(id: step.id, uses: step.uses, status: .skipped, changes: [], notices: [notice]))
                    continue
                }
            }
            let options = StepOptions(
                values: step.options, specs: plugin.options, context: context, stepLocation: step.location)
            let stepPlan: StepPlan
            do {
                var fetched: [DeclaredInput: Data] = [:]
                for input in try plugin.inputs(StepContext(id: step.id, options: options, host: view)) where fetched[input] == nil {
                    do {
                        fetched[input] = try inputs.fetch(input, root: root)
                    } catch var error as ProvisionError where error.location == nil {
                        error.location = options.location(of: input.option)
                        throw error
                    }
                }
                stepPlan = try plugin.plan(StepContext(id: step.id, options: options, host: view, inputs: fetched, timeout: step.timeout))
            } catch var error as ProvisionError {
                error.step = step.id
                if error.location == nil || error.location == step.location {
                    error.location = step.location
                    error.message = "step \(step.id) (\(step.uses)): \(error.message)"
                } else if error.location?.file != recipe.path {
                    error.message += " (step \(step.id), \(step.uses))"
                }
                throw error
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
            let stepNotices = stepPlan.notices.map { notice -> Notice in
                var tagged = notice
                tagged.step = step.id
                return tagged
            }
            notices += stepNotices
            view.export(stepPlan.exports, by: "\(step.id) (\(step.uses))")
            exports.merge(stepPlan.exports) { _, new in new }
            results.append(
                StepResult(id: step.id, uses: step.uses, status: changes.isEmpty ? .ok : .changed, changes: changes, notices: stepNotices))
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
