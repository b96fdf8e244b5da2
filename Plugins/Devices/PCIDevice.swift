import Foundation
import ProvisionPluginAPI

/// One PCI function as the kernel (sysfs) or `lspci -nnk` describes it.
public struct PCIDevice: Sendable, Codable, Hashable {
    /// Domain:bus:device.function, always with the domain ("0000:01:00.0").
    public var address: String
    /// Class, subclass and programming interface (0x030000 for a VGA controller).
    public var classCode: UInt32
    public var vendor: String
    public var device: String
    public var subsystemVendor: String?
    public var subsystemDevice: String?
    public var driver: String?
    /// Modules that could drive it (lspci's "Kernel modules"); sysfs does not say.
    public var modules: [String]?
    public var iommuGroup: Int?
    public var bootVGA: Bool
    public var hasROM: Bool
    public var name: String?
    public var className: String?
    /// What the kernel matches drivers against (sysfs `modalias`), e.g.
    /// `pci:v000010DEd00001B80sv00001462sd00003362bc03sc00i00`.
    public var modalias: String?

    /// "10de:1b80", as modprobe.d and vfio-pci.ids= want it.
    public var id: String { "\(vendor):\(device)" }

    /// The slot ("0000:01:00"): functions of one card share it.
    public var slot: String { String(address.dropLast(2)) }

    public var isDisplay: Bool { classCode >> 16 == 0x03 }
    public var isBridge: Bool { classCode >> 16 == 0x06 }

    /// The vendor by name, for countermeasures and driver choice.
    public var vendorName: String {
        switch vendor {
        case "10de": return "nvidia"
        case "1002", "1022": return "amd"
        case "8086": return "intel"
        default: return vendor
        }
    }

    /// The X.Org BusID of this function ("PCI:1:0:0": decimal bus, device, function).
    public var xorgBusID: String {
        let parts = address.split(separator: ":")
        let bus = Int(parts[1], radix: 16) ?? 0
        let deviceFunction = parts[2].split(separator: ".")
        return "PCI:\(bus):\(Int(deviceFunction[0], radix: 16) ?? 0):\(Int(deviceFunction[1]) ?? 0)"
    }

    /// Generic class names (PCI code and ID assignment specification) for when no pci.ids exists.
    static func genericClassName(_ code: UInt32) -> String {
        switch code >> 8 {
        case 0x0300: return "VGA compatible controller"
        case 0x0302: return "3D controller"
        case 0x0380: return "Display controller"
        case 0x0403: return "Audio device"
        case 0x0c03: return "USB controller"
        case 0x0c80: return "Serial bus controller"
        case 0x0600: return "Host bridge"
        case 0x0601: return "ISA bridge"
        case 0x0604: return "PCI bridge"
        case 0x0106: return "SATA controller"
        case 0x0108: return "Non-Volatile memory controller"
        case 0x0200: return "Ethernet controller"
        case 0x0280: return "Network controller"
        default:
            switch code >> 16 {
            case 0x01: return "Mass storage controller"
            case 0x02: return "Network controller"
            case 0x03: return "Display controller"
            case 0x04: return "Multimedia controller"
            case 0x06: return "Bridge"
            case 0x0c: return "Serial bus controller"
            default: return String(format: "Class %04x", code >> 8)
            }
        }
    }
}
