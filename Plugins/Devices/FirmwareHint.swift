import Foundation
import ProvisionPluginAPI

/// `firmware.hint`: what the guide asks people to check by hand, as notices recorded in the run:
/// the card initialised by the firmware (boot VGA), the IOMMU off, the group verdict, and Xorg
/// configs that still name the card. Changes no file unless asked to comment those Xorg lines out.
public struct FirmwareHint: StepPlugin {
    public init() {}
    public let kind = "firmware.hint"
    public let summary = "Check what only the firmware and Xorg can spoil: boot VGA, IOMMU, IOMMU group, Xorg BusID lines."
    public let options: [OptionSpec] = [
        OptionSpec("comment_xorg", .bool, default: "false", help: "comment out Xorg BusID lines that name the guest GPU"),
        OptionSpec("gpu", .string, default: "facts.gpu, else auto", help: "the GPU to check, when no gpu.select step ran before"),
    ]

    public func plan(_ step: StepContext) throws -> StepPlan {
        let host = step.host
        let report = try DeviceReport.read(host)
        let choice = try step.options.string("gpu") ?? GPUFacts.read(host)?.address ?? "auto"
        let gpu = try report.select(choice)
        var notices: [Notice] = []
        if gpu.device.bootVGA {
            notices.append(Notice(
                .warning,
                "\(gpu.device.address) is the boot VGA device: the firmware initialises it before Linux starts, which taints it for the guest. "
                    + "Disable its slot in the firmware's PCIe settings or move the card to another slot; on UEFI systems with systemd, "
                    + "`systemctl reboot --firmware-setup` gets you into the firmware setup"))
        }
        if report.iommuActive {
            notices.append(Notice(.info, "IOMMU on (\(report.iommu.joined(separator: ", ")))"))
        } else if let flag = report.iommuFlag {
            notices.append(Notice(.warning, "IOMMU off: enable VT-d in the firmware and add \(flag) to the kernel command line (vfio.cmdline does)"))
        } else {
            notices.append(Notice(.warning, "IOMMU off: enable AMD-Vi/IOMMU in the firmware (the kernel turns it on by itself on AMD)"))
        }
        notices.append(Notice(gpu.verdict == .alone || gpu.verdict == .onlyBridges ? .info : .warning, "IOMMU group: \(gpu.verdict.text)"))

        let busIDs = Set(gpu.functions.map(\.xorgBusID))
        let comment = try step.options.bool("comment_xorg", default: false)
        var files: [DesiredFile] = []
        let configs = ["/etc/X11/xorg.conf"] + host.list("/etc/X11/xorg.conf.d").filter { $0.hasSuffix(".conf") }.map { "/etc/X11/xorg.conf.d/\($0)" }
        for path in configs {
            guard let text = try host.text(path) else { continue }
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            var hits: [Int] = []
            for (index, line) in lines.enumerated() where Self.busID(in: line).map(busIDs.contains) == true { hits.append(index) }
            guard !hits.isEmpty else { continue }
            let where_ = hits.map { "\(path):\($0 + 1)" }.joined(separator: ", ")
            if comment {
                for index in hits { lines[index] = "# provision (firmware.hint): the guest GPU goes to vfio-pci\n#" + lines[index] }
                files.append(DesiredFile(path: path, state: .present(Data(lines.joined(separator: "\n").utf8))))
                notices.append(Notice(.info, "commented out the Xorg BusID naming the guest GPU at \(where_)"))
            } else {
                notices.append(Notice(.warning, "Xorg config names the guest GPU at \(where_): remove it, or set comment_xorg: true"))
            }
        }
        return StepPlan(files: files, notices: notices)
    }

    /// The decimal "PCI:bus:device:function" of an uncommented BusID line, normalised.
    static func busID(in line: String) -> String? {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        guard trimmed.lowercased().hasPrefix("busid"), let open = trimmed.firstIndex(of: "\""),
            let close = trimmed[trimmed.index(after: open)...].firstIndex(of: "\"")
        else { return nil }
        let value = trimmed[trimmed.index(after: open)..<close]
        let parts = value.split(separator: ":")
        guard parts.count == 4, parts[0].uppercased() == "PCI" else { return nil }
        let bus = parts[1].split(separator: "@")[0]
        guard let b = Int(bus), let d = Int(parts[2]), let f = Int(parts[3]) else { return nil }
        return "PCI:\(b):\(d):\(f)"
    }
}
