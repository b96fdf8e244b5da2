import Foundation
import ProvisionCore
import ProvisionVerify

/// Prints a plan or a run as it happens: each step once planned, the diffs before anything is
/// written, each handler as it starts with its output indented, and how it ended with its duration.
final class RunPrinter {
    let console: Console
    let width: Int
    /// How long each handler took, by argv (for the JSON document too).
    private(set) var durations: [[String]: Double] = [:]

    convenience init(console: Console, recipe: Recipe) {
        self.init(console: console, widthOf: recipe.steps.map(\.id))
    }

    /// `widthOf`: the step ids the status lines align.
    init(console: Console, widthOf ids: [String]) {
        self.console = console
        width = ids.map(\.count).max() ?? 0
    }

    func handle(_ event: RunEvent) {
        if case .handlerFinished(let entry, let seconds) = event, entry.status != .skipped { durations[entry.argv] = seconds }
        guard !console.json else { return }
        switch event {
        case .recovered(let record):
            console.out(console.paint("recovered first:", .yellow) + " \(record.summary)\n")
        case .step(let step):
            if !console.quiet { console.out(stepLine(step)) }
        case .planned(let plan):
            if !console.quiet && !plan.changes.isEmpty { console.out("\n" + diffs(plan.changes)) }
        case .restoring(let changes):
            if !console.quiet { console.out(diffs(changes)) }
        case .driftRecorded(let paths, let run):
            if !console.quiet {
                console.out(console.paint("recorded hand edits (drift) first:", .yellow) + " \(paths.joined(separator: ", ")) (before run \(run))\n")
            }
        case .writing(let count):
            if console.verbose { console.out("writing \(count) file(s)\n") }
        case .handlerStarted(let handler, let command):
            if !console.quiet {
                let how = console.verbose ? " as \(command.joined(separator: " "))" : ""
                console.out("handler: \(handler.argv.joined(separator: " ")): running\(how)\n")
            }
        case .handlerOutput(_, let line):
            if !console.quiet { console.out(console.paint("    | \(line)", .dim) + "\n") }
        case .handlerFinished(let entry, let seconds):
            if !console.quiet || entry.status == .failed {
                console.out(handlerLine(entry.argv, status: entry.status.rawValue, detail: entry.detail, seconds: entry.status == .skipped ? nil : seconds))
            }
        }
    }

    func stepLine(_ step: StepResult) -> String {
        let files = step.changes.map { "\($0.path) (\($0.kind.rawValue))" }.joined(separator: ", ")
        var line = "  \(console.status(step.status.rawValue)) \(step.id.padding(toLength: width, withPad: " ", startingAt: 0))  \(step.uses)"
        line += files.isEmpty ? "" : "  \(files)"
        return line + "\n"
    }

    func diffs(_ changes: [FileChange]) -> String { changes.map { console.diff($0.diff) }.joined() }

    /// "handler: update-grub: ran (4.2 s)", or skipped with why, or failed with the first line of its output.
    func handlerLine(_ argv: [String], status: String, detail: String?, seconds: Double?) -> String {
        let word: String
        switch status {
        case "ran", "would run", "would run again": word = console.paint(status, .green)
        case "failed": word = console.paint(status, .red)
        case "skipped", "would be skipped": word = console.paint(status, .yellow)
        default: word = status
        }
        var parts: [String] = []
        if let detail, let first = detail.split(separator: "\n").first { parts.append(String(first)) }
        if let seconds { parts.append(String(format: "%.1f s", seconds)) }
        return "handler: \(argv.joined(separator: " ")): \(word)" + (parts.isEmpty ? "" : " (\(parts.joined(separator: ", ")))") + "\n"
    }

    func notices(_ notices: [Notice]) -> String {
        var out = ""
        for notice in notices where !console.quiet || notice.level == .warning {
            out += console.notice(notice.level.rawValue, "\(notice.step.map { "[\($0)] " } ?? "")\(notice.message)") + "\n"
        }
        return out
    }

    /// What a reboot is due for, said as it is: the command line changed now, or it was set before
    /// and the running kernel still lacks it.
    static func rebootLine(_ plan: Plan, root: HostRoot, applied: Bool, console: Console) -> String? {
        guard plan.rebootRequired else { return nil }
        let missing = Verifier.pendingRebootTokens(root, plan)
        let lacks = missing.isEmpty ? "" : "the running kernel lacks \(missing.joined(separator: " "))"
        let changed = plan.steps.contains { $0.status == .changed && $0.exported.contains("cmdline") }
        let label = console.paint("reboot required", .yellow)
        if !applied { return "\(label) after apply" + (lacks.isEmpty ? "" : ": \(lacks)") + "\n" }
        if changed { return "\(label): the kernel command line changed" + (lacks.isEmpty ? "" : "; \(lacks)") + "\n" }
        let still = missing.isEmpty ? "the running kernel was booted without what" : "the running kernel still lacks \(missing.joined(separator: " ")), which"
        return "\(label): \(still) the boot configuration already has; reboot\n"
    }
}

extension Verifier {
    /// The kernel parameters the plan puts on the command line that the running kernel lacks.
    static func pendingRebootTokens(_ root: HostRoot, _ plan: Plan) -> [String] { pendingReboot(root: root, exports: .map(plan.exports)) }
}
