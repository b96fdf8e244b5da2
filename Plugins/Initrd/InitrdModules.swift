import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// `initrd.modules`: the vfio modules load before any GPU driver in the initramfs, whichever
/// generator the root uses. Exports `facts.initrd` (generator, modules, the command-line tokens the
/// generator needs, kernels with vfio-pci built in) for the kernel command-line step.
public struct InitrdModules: StepPlugin {
    public init() {}
    public let kind = "initrd.modules"
    public let summary = "Load the vfio modules before any GPU driver in the initramfs (\(InitrdGenerators.names.joined(separator: ", ")))."
    public let options: [OptionSpec] = [
        OptionSpec(
            "generator", .choice(["auto"] + InitrdGenerators.names), default: "auto",
            help: "which generator to configure; auto detects the one installed in the root and says how"),
        OptionSpec(
            "modules", .stringList, default: "vfio_pci vfio vfio_iommu_type1 (+ vfio_virqfd when every kernel is older than 6.2)",
            help: "modules to load early"),
        OptionSpec("state", .choice(["present", "absent"]), default: "present", help: "absent removes the vfio modules again"),
        OptionSpec("dropin", .string, default: "vfio", help: "dracut only: name of the drop-in in /etc/dracut.conf.d (.conf is added)"),
    ]

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let host = step.host
        let (generator, reason) = try InitrdGenerators.resolve(
            try options.string("generator", default: "auto"), host: host, at: options.location(of: "generator"))
        let present = try options.string("state", default: "present") == "present"
        let inventory = KernelInventory.read(host)
        var notices = [Notice(.info, "initramfs generator: \(reason)")]
        var modules: [String]
        if let given = try options.stringList("modules") {
            modules = given
            for module in given where !module.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) {
                throw options.error("modules", "\"\(module)\" is not a kernel module name")
            }
        } else {
            let decided = inventory.vfioModules()
            modules = decided.modules
            notices += decided.notices
        }
        let builtin = inventory.vfioPCIBuiltin
        if !builtin.isEmpty {
            notices.append(Notice(
                .warning,
                "vfio-pci is built into kernel \(builtin.joined(separator: ", ")): modprobe.d options are ignored there, "
                    + "so vfio-pci.ids= must be on the kernel command line (the kernel.cmdline step adds it)"))
        }

        let planned = try generator.plan(modules: modules, present: present, inventory: inventory, step: step)
        notices += planned.notices
        let exports = try InitrdFacts(
            generator: generator.name, modules: present ? modules : [], cmdline: present ? generator.commandLine : [],
            vfioPCIBuiltin: builtin
        ).export
        let watched = Set(planned.files.map(\.path) + planned.watched).sorted()
        return StepPlan(
            files: planned.files, handlers: [HandlerAction(argv: generator.rebuild, notifiedBy: watched)], notices: notices, exports: exports)
    }
}

/// The initrd steps.
public let initrdSteps: [any StepPlugin] = [InitrdModules()]
