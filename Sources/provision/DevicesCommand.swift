import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionDevices

struct DevicesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices", abstract: "List GPUs with their functions, driver, IOMMU group and whether they can be passed through.")

    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "Read `lspci -nnk` output from this file instead of ROOT/sys.") var lspci: String?

    func run() throws {
        let console = global.console
        try runReporting(console) {
            let host = try HostView(root: try HostRoot(global.root))
            var text: String?
            if let lspci {
                let data = try Fetch.localFile(lspci, maxBytes: HostRoot.maximumFileSize)
                text = String(decoding: data, as: UTF8.self)
            }
            let report = try DeviceReport.read(host, lspci: text, lspciFile: lspci ?? "lspci")
            if console.json {
                Output.printJSON(report)
                return
            }
            var out = report.iommuActive
                ? "IOMMU: on (\(report.iommu.joined(separator: ", ")))\n"
                : "IOMMU: off\(report.iommuFlag.map { ": enable it in the firmware and add \($0) to the kernel command line" } ?? ": enable AMD-Vi/IOMMU in the firmware")\n"
            if lspci != nil { out = "IOMMU: unknown (lspci input)\n" }
            if report.gpus.isEmpty { out += "no GPUs (display-class PCI functions) found\n" }
            for gpu in report.gpus {
                let device = gpu.device
                out += "\nGPU \(device.address)  [\(device.id)]  \(device.name ?? device.className ?? "")\n"
                out += "  driver: \(device.driver ?? "none")   boot VGA: \(device.bootVGA ? "yes (the firmware initialises it)" : "no")"
                out += "   ROM: \(device.hasROM ? "exposed" : "not exposed")\n"
                for function in gpu.functions.dropFirst() {
                    out += "  + \(function.address)  [\(function.id)]  \(function.name ?? function.className ?? "")  driver: \(function.driver ?? "none")\n"
                }
                out += "  ids to isolate: \(gpu.ids.joined(separator: ","))\n"
                out += "  IOMMU group \(gpu.group.map(String.init) ?? "-"): \(gpu.verdict.text)\n"
                for member in gpu.groupMembers where member.slot != device.slot {
                    out += "    with \(member.address)  [\(member.id)]  \(member.name ?? member.className ?? "")\n"
                }
            }
            console.out(out)
        }
    }
}
