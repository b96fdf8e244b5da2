import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// Kernel parameters for steps of other modules (hugepages at boot): the same detection and
/// adapters as `kernel.cmdline`, so there is one command-line editor for every boot loader.
public enum KernelParameters {
    /// `bootloader` and `variable`, as kernel.cmdline offers them.
    public static var options: [OptionSpec] { loaderOptions }

    /// Adds `add` (key=value replaces the key) and removes `remove` where the root's boot loader
    /// keeps its command line. The exported `facts.cmdline.add` keeps what earlier steps added, so
    /// `verify` checks every parameter of the run; the reboot warning compares with the booted
    /// ROOT/proc/cmdline itself, which an earlier command-line step's export hides from the facts.
    public static func plan(add: [String], remove: [String] = [], step: StepContext) throws -> StepPlan {
        var plan = try planCommandLine(CommandLineChange(add: add, remove: remove), step: step)
        let earlier = step.host.facts.lookup(["cmdline", "add"])?.strings ?? []
        if !earlier.isEmpty, case .map(var cmdline)? = plan.exports["cmdline"] {
            let added = cmdline["add"]?.strings ?? []
            let kept = earlier.filter { token in !added.contains { KernelCommandLine.key($0) == KernelCommandLine.key(token) } }
            cmdline["add"] = .list((kept + added).map { .string($0) })
            plan.exports["cmdline"] = .map(cmdline)
        }
        if case .map? = step.host.facts.lookup(["cmdline"]), let booted = try step.host.text("/proc/cmdline"),
            let running = try? KernelCommandLine(parsing: booted.trimmingCharacters(in: .whitespacesAndNewlines)), !running.tokens.isEmpty
        {
            let missing = add.filter { !running.contains($0) }
            if !missing.isEmpty {
                plan.notices.append(Notice(.warning, "reboot required: the running kernel was booted without \(missing.joined(separator: " "))"))
                plan.exports["reboot_required"] = .bool(true)
            }
        }
        return plan
    }
}
