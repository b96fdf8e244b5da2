import Foundation
import ProvisionPluginAPI

/// `vfio.bind-address`: binds the guest card's functions to vfio-pci by PCI address, through
/// driverctl's override files (/etc/driverctl.d/pci-ADDRESS, applied at boot by driverctl), for
/// when the host has a card with the same ids and `vfio-pci.ids=` would take both, and for the
/// devices sharing the card's IOMMU group (binding those by id could take their twins elsewhere).
public struct BindAddress: StepPlugin {
    public init() {}
    public let kind = "vfio.bind-address"
    public let summary = "Bind the guest GPU's functions to vfio-pci by address (driverctl overrides), for twin cards."
    public let options: [OptionSpec] = [
        OptionSpec(
            "addresses", .stringList,
            default: "facts.gpu.addresses when gpu.select chose bind-by-address, and facts.gpu.group_devices", help: "PCI addresses"),
        OptionSpec("driver", .string, default: "vfio-pci", help: "the driver to bind"),
    ]

    public func plan(_ step: StepContext) throws -> StepPlan {
        let host = step.host
        var addresses = try step.options.stringList("addresses")
        if addresses == nil {
            let gpu = try GPUFacts.read(host)
            addresses = (gpu?.bindsByAddress == true ? gpu?.addresses ?? [] : []) + (gpu?.groupDevices ?? [])
        }
        guard let addresses, !addresses.isEmpty else {
            return StepPlan(notices: [Notice(.info, "the guest GPU is bound by ids; no driverctl overrides needed")])
        }
        let driver = try step.options.string("driver", default: "vfio-pci")
        var files: [DesiredFile] = []
        for address in addresses {
            let parts = address.split(separator: ":")
            guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, address.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw step.options.error("addresses", "\"\(address)\" is not a full PCI address like 0000:01:00.0")
            }
            files.append(DesiredFile(path: "/etc/driverctl.d/pci-\(address)", state: .present(Data("\(driver)\n".utf8), mode: 0o644)))
        }
        var notices = [Notice(.info, "driverctl overrides bind \(addresses.joined(separator: ", ")) to \(driver) at boot")]
        if !host.exists("/usr/sbin/driverctl") && !host.exists("/usr/bin/driverctl") {
            notices.append(Notice(.warning, "driverctl is not installed in the root: install it, its service applies these overrides"))
        }
        return StepPlan(files: files, notices: notices)
    }
}
