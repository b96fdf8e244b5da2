import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// `kernel.cmdline`: add or remove kernel parameters wherever the root's boot loader keeps them.
public struct KernelCmdline: StepPlugin {
    public init() {}
    public let kind = "kernel.cmdline"
    public let summary = "Add or remove kernel parameters in the boot loader the root uses (\(BootLoader.titles))."
    public let options: [OptionSpec] = [
        OptionSpec("add", .stringList, help: "parameters to ensure; key=value replaces the key's value (console= may repeat)"),
        OptionSpec("remove", .stringList, help: "parameters (key=value) or keys to remove"),
    ] + loaderOptions

    public func plan(_ step: StepContext) throws -> StepPlan {
        let change = CommandLineChange(add: try step.options.stringList("add") ?? [], remove: try step.options.stringList("remove") ?? [])
        return try planCommandLine(change, step: step)
    }
}

let loaderOptions: [OptionSpec] = [
    OptionSpec(
        "bootloader", .choice(["auto"] + bootLoaders.map(\.name)), default: "auto",
        help: "which boot loader to edit; auto detects the one the root boots with and says how"),
    OptionSpec(
        "variable", .choice(["GRUB_CMDLINE_LINUX_DEFAULT", "GRUB_CMDLINE_LINUX"]), default: "GRUB_CMDLINE_LINUX_DEFAULT",
        help: "GRUB only: _DEFAULT reaches normal entries (recovery boots stay clean), GRUB_CMDLINE_LINUX every entry"),
]

/// Shared by kernel.cmdline and vfio.cmdline: validate, hand to the loader's adapter, and say
/// whether the running kernel already has the result (else a reboot is required).
func planCommandLine(_ change: CommandLineChange, step: StepContext) throws -> StepPlan {
    let options = step.options
    for token in change.add + change.remove {
        do {
            try KernelCommandLine.validate(token)
        } catch let error as ProvisionError {
            throw options.error(change.add.contains(token) ? "add" : "remove", error.message)
        }
    }
    let (loader, reason) = try BootLoader.resolve(
        try options.string("bootloader", default: "auto"), host: step.host, at: options.location(of: "bootloader"))
    var plan: CommandLinePlan
    do {
        plan = try loader.plan(change, step: step)
    } catch var error as ProvisionError where error.location == nil {
        error.location = options.stepLocation
        throw error
    }
    var notices = [Notice(.info, "boot loader: \(reason)")] + plan.notices
    var exports: [String: Value] = ["cmdline": .map(["bootloader": .string(loader.name), "add": .list(change.add.map { .string($0) })])]
    if case .string(let booted)? = step.host.facts.lookup(["cmdline"]), !booted.isEmpty, let running = try? KernelCommandLine(parsing: booted) {
        let missing = change.add.filter { !running.contains($0) }
        let lingering = change.remove.filter { item in item.contains("=") ? running.contains(item) : running.hasKey(item) }
        if !missing.isEmpty || !lingering.isEmpty {
            var parts: [String] = []
            if !missing.isEmpty { parts.append("booted without \(missing.joined(separator: " "))") }
            if !lingering.isEmpty { parts.append("booted with \(lingering.joined(separator: " "))") }
            notices.append(Notice(.warning, "reboot required: the running kernel was \(parts.joined(separator: " and "))"))
            exports["reboot_required"] = .bool(true)
        }
    }
    return StepPlan(files: plan.files, handlers: plan.handlers, notices: notices, exports: exports)
}

/// The boot-loader steps.
public let bootloaderSteps: [any StepPlugin] = [KernelCmdline(), VfioCmdline()]
