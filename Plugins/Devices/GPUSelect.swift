import Foundation
import ProvisionPluginAPI

/// `gpu.select`: picks the guest GPU (`auto`: the one that is not the boot VGA device), checks that
/// it can be passed through, and exports `facts.gpu` for the later steps: its functions' ids and
/// addresses, vendor, the kernel modules that would claim any of them (from their modaliases), and
/// how to bind it.
public struct GPUSelect: StepPlugin {
    public init() {}
    public let kind = "gpu.select"
    public let summary = "Choose the guest GPU (auto, address or id), check its IOMMU group, export facts.gpu."
    public let options: [OptionSpec] = [
        OptionSpec("gpu", .string, default: "auto", help: "auto, a PCI address (0000:01:00.0) or a vendor:device id (10de:1b80)"),
        OptionSpec(
            "allow_shared_group", .bool, default: "false",
            help: "go on although other devices share the GPU's IOMMU group (they must then go to the guest too)"),
        OptionSpec(
            "identical_ids", .choice(["refuse", "bind-by-address"]), default: "refuse",
            help: "when the host GPU has the same ids: refuse, or bind by PCI address (vfio.bind-address) instead of ids"),
    ]

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let report = try DeviceReport.read(step.host)
        let gpu: DeviceReport.GPU
        do {
            gpu = try report.select(try options.string("gpu", default: "auto"))
        } catch var error as ProvisionError {
            error.location = options.location(of: "gpu")
            throw error
        }
        var notices: [Notice] = []
        let functions = gpu.functions.map { "\($0.address) \($0.id)" }.joined(separator: ", ")
        notices.append(Notice(.info, "guest GPU: \(gpu.device.address) \(gpu.device.name ?? gpu.device.id); functions \(functions)"))
        switch gpu.verdict {
        case .shared(let others):
            guard try options.bool("allow_shared_group", default: false) else {
                var error = ProvisionError(
                    .invalidInput,
                    "GPU \(gpu.device.address) shares IOMMU group \(gpu.group ?? -1) with \(others.joined(separator: ", ")): "
                        + "everything in a group goes to the guest together. Move the card to another slot (one wired to the CPU), "
                        + "look for an ACS option in the firmware, or pass those devices to the guest too",
                    at: options.location(of: "allow_shared_group"))
                error.fix = ProvisionError.Fix(option: "allow_shared_group", value: "true")
                throw error
            }
            let companions = gpu.groupCompanions.map(\.address).joined(separator: ", ")
            notices.append(
                Notice(
                    .warning,
                    "IOMMU group \(gpu.group ?? -1) is \(gpu.verdict.text): \(companions) leave the host with the card "
                        + "(bound to vfio-pci by address by vfio.bind-address, passed to the guest by libvirt.domain)"))
        case .unknown:
            notices.append(Notice(.warning, "IOMMU group of \(gpu.device.address) unknown: \(gpu.verdict.text)"))
        default:
            notices.append(Notice(.info, "IOMMU group \(gpu.group ?? -1): \(gpu.verdict.text)"))
        }

        var bind = "ids"
        let twins = report.gpus.filter { $0.device.slot != gpu.device.slot && $0.device.id == gpu.device.id }
        if !twins.isEmpty {
            guard try options.string("identical_ids", default: "refuse") == "bind-by-address" else {
                var error = ProvisionError(
                    .invalidInput,
                    "the other GPU \(twins.map(\.device.address).joined(separator: ", ")) has the same ids (\(gpu.device.id)): "
                        + "vfio-pci.ids= would take both cards. Bind the guest's by address instead (driverctl overrides in /etc/driverctl.d)",
                    at: options.location(of: "identical_ids"))
                error.fix = ProvisionError.Fix(option: "identical_ids", value: "bind-by-address", needsStep: "vfio.bind-address")
                throw error
            }
            bind = "address"
            notices.append(Notice(.info, "\(gpu.device.address) has a twin at \(twins.map(\.device.address).joined(separator: ", ")): binding by address, not by ids"))
        }

        let vendor = gpu.device.vendorName
        // Every function that leaves the host, each with the modules that would claim it.
        let resolved = try FunctionDrivers.resolve(gpu.functions + gpu.groupCompanions, host: step.host)
        notices += resolved.notices
        let drivers = resolved.modules
        let facts = GPUFacts(
            address: gpu.device.address, addresses: gpu.functions.map(\.address),
            groupDevices: gpu.groupCompanions.map(\.address), ids: gpu.ids, vendor: vendor, drivers: drivers,
            functions: resolved.functions.map { function in
                GPUFacts.Function(
                    address: function.device.address, id: function.device.id, modalias: function.device.modalias ?? "",
                    drivers: function.modules)
            },
            bootVGA: gpu.device.bootVGA, group: gpu.group, bind: bind == "address" ? .address : .ids,
            name: gpu.device.name ?? gpu.device.id)
        return StepPlan(notices: notices, exports: try facts.export)
    }
}

/// The device steps.
public let deviceSteps: [any StepPlugin] = [GPUSelect(), FirmwareHint(), BindAddress()]
