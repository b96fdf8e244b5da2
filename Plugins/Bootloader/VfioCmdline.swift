import Foundation
import ProvisionPluginAPI
import ProvisionDevices
import ProvisionEdit
import ProvisionInitrd

/// `vfio.cmdline`: the kernel parameters VFIO passthrough needs, decided from the root's facts:
/// `intel_iommu=on` on Intel (AMD's IOMMU is on by default), `iommu=pt`, `vfio-pci.ids=` when
/// vfio-pci is built into a kernel (modprobe.d cannot reach it then) or when asked, and
/// `rd.driver.pre=vfio-pci` when the initramfs is dracut's.
public struct VfioCmdline: StepPlugin {
    public init() {}
    public let kind = "vfio.cmdline"
    public let summary = "Kernel parameters for VFIO (IOMMU, passthrough mode, ids when vfio-pci is built in, dracut's pre-load)."
    public let options: [OptionSpec] = [
        OptionSpec("ids", .stringList, help: "vendor:device ids for vfio-pci.ids=; default: facts.gpu.ids"),
        OptionSpec(
            "ids_on_cmdline", .choice(["auto", "always", "never"]), default: "auto",
            help: "auto: only when vfio-pci is built into an installed kernel"),
        OptionSpec("iommu_pt", .bool, default: "true", help: "add iommu=pt (passthrough mode for host devices)"),
        OptionSpec("extra", .stringList, help: "more parameters, e.g. video=efifb:off for single-GPU setups"),
    ] + loaderOptions

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let host = step.host
        var add: [String] = []
        var notices: [Notice] = []
        switch host.facts.lookup(["cpu", "vendor"])?.scalarText {
        case "intel": add.append("intel_iommu=on")
        case "amd": notices.append(Notice(.info, "AMD CPU: the IOMMU is on by default, no flag needed"))
        case let vendor: notices.append(Notice(.warning, "unknown CPU vendor \(vendor ?? "?"): add the IOMMU flag yourself"))
        }
        if try options.bool("iommu_pt", default: true) { add.append("iommu=pt") }

        let initrd = try InitrdFacts.read(host)
        let gpu = try GPUFacts.read(host)
        let builtin = initrd?.vfioPCIBuiltin ?? KernelInventory.read(host).vfioPCIBuiltin
        let idsMode = try options.string("ids_on_cmdline", default: "auto")
        let byAddress = gpu?.bindsByAddress == true && !options.has("ids")
        if byAddress && idsMode != "never" {
            notices.append(Notice(.info, "no vfio-pci.ids=: the guest GPU has a twin and is bound by address (vfio.bind-address)"))
        } else if idsMode == "always" || (idsMode == "auto" && !builtin.isEmpty) {
            guard let ids = try PCIIDs.from(options, option: "ids", fallback: gpu?.ids), !ids.isEmpty else {
                throw ProvisionError(
                    .invalidInput,
                    builtin.isEmpty
                        ? "ids_on_cmdline is always but no ids were given"
                        : "vfio-pci is built into \(builtin.joined(separator: ", ")), so vfio-pci.ids= is needed on the command line: give ids",
                    at: options.stepLocation)
            }
            add.append("vfio-pci.ids=\(ids.joined(separator: ","))")
            if !builtin.isEmpty { notices.append(Notice(.info, "vfio-pci.ids= on the command line: vfio-pci is built into \(builtin.joined(separator: ", "))")) }
        }

        if let initrd {
            add += initrd.cmdline
        } else if let (generator, _) = try? InitrdGenerators.resolve("auto", host: host, at: options.stepLocation) {
            add += generator.commandLine
        }
        add += try options.stringList("extra") ?? []

        var plan = try planCommandLine(CommandLineChange(add: add, remove: []), step: step)
        plan.notices = notices + plan.notices
        return plan
    }
}
