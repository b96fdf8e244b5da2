import Foundation
import ProvisionPluginAPI

/// Reads PCI functions, their drivers and IOMMU groups from ROOT/sys: the same code for a host
/// snapshot and for this machine's /sys.
public enum SysfsScanner {
    static let devices = "/sys/bus/pci/devices"

    public static func scan(_ host: HostView) -> [PCIDevice] {
        let database = PCIIDsDatabase.load(host)
        return host.list(devices).compactMap { address -> PCIDevice? in
            let base = "\(devices)/\(address)"
            func attribute(_ name: String) -> String? {
                ((try? host.text("\(base)/\(name)")) ?? nil)?.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            func hex(_ name: String) -> String? {
                attribute(name).map { $0.hasPrefix("0x") ? String($0.dropFirst(2)) : $0 }.map { $0.lowercased() }
            }
            guard let classText = hex("class"), let classCode = UInt32(classText, radix: 16), let vendor = hex("vendor"),
                let device = hex("device")
            else { return nil }
            var pci = PCIDevice(
                address: address, classCode: classCode, vendor: vendor, device: device, subsystemVendor: hex("subsystem_vendor"),
                subsystemDevice: hex("subsystem_device"), driver: host.linkName("\(base)/driver"), modules: nil,
                iommuGroup: host.linkName("\(base)/iommu_group").flatMap { Int($0) }, bootVGA: attribute("boot_vga") == "1",
                hasROM: host.entryExists("\(base)/rom"), name: nil, className: nil)
            pci.modalias = attribute("modalias")
                ?? ModuleAliases.pciModalias(
                    vendor: vendor, device: device, subsystemVendor: pci.subsystemVendor, subsystemDevice: pci.subsystemDevice,
                    classCode: classCode)
            pci.name = database.name(vendor: vendor, device: device)
            pci.className = database.className(classCode) ?? PCIDevice.genericClassName(classCode)
            return pci
        }.sorted { $0.address < $1.address }
    }

    /// Whether an IOMMU is active (the kernel lists it under /sys/class/iommu), and its names.
    public static func iommu(_ host: HostView) -> [String] { host.list("/sys/class/iommu") }
}

/// The pci.ids database of the root (hwdata or pciutils), for names; ids alone without it.
struct PCIIDsDatabase {
    var vendors: [String: String] = [:]
    var devices: [String: String] = [:]
    var classes: [String: String] = [:]

    static let locations = ["/usr/share/hwdata/pci.ids", "/usr/share/misc/pci.ids", "/usr/share/pci.ids"]

    static func load(_ host: HostView) -> PCIIDsDatabase {
        for path in locations {
            if let text = (try? host.text(path)) ?? nil { return parse(text) }
        }
        return PCIIDsDatabase()
    }

    static func parse(_ text: String) -> PCIIDsDatabase {
        var database = PCIIDsDatabase()
        var vendor: String?
        var classPrefix: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("#") { continue }
            if line.hasPrefix("C ") {
                let fields = line.dropFirst(2).split(separator: " ", maxSplits: 1)
                guard fields.count == 2 else { continue }
                classPrefix = String(fields[0])
                vendor = nil
                database.classes[String(fields[0])] = fields[1].trimmingCharacters(in: .whitespaces)
            } else if line.hasPrefix("\t\t") {
                continue
            } else if line.hasPrefix("\t") {
                let fields = line.dropFirst().split(separator: " ", maxSplits: 1)
                guard fields.count == 2 else { continue }
                let name = fields[1].trimmingCharacters(in: .whitespaces)
                if let vendor { database.devices["\(vendor):\(fields[0])"] = name }
                if let classPrefix { database.classes["\(classPrefix)\(fields[0])"] = name }
            } else {
                let fields = line.split(separator: " ", maxSplits: 1)
                guard fields.count == 2, fields[0].count == 4 else { continue }
                vendor = String(fields[0]).lowercased()
                classPrefix = nil
                database.vendors[vendor!] = fields[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return database
    }

    func name(vendor: String, device: String) -> String? {
        guard let vendorName = vendors[vendor] else { return nil }
        guard let deviceName = devices["\(vendor):\(device)"] else { return vendorName }
        return "\(vendorName) \(deviceName)"
    }

    func className(_ code: UInt32) -> String? {
        classes[String(format: "%04x", code >> 8)] ?? classes[String(format: "%02x", code >> 16)]
    }
}
