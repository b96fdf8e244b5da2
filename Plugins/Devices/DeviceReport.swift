import Foundation
import ProvisionPluginAPI

/// What the guide's first steps look for, computed from the devices: every GPU with the other
/// functions of its card, its IOMMU group and whether that group can be passed through.
public struct DeviceReport: Sendable, Encodable {
    public enum Verdict: Sendable, Equatable {
        /// The group holds only the card's own functions.
        case alone
        /// Besides the card, only PCIe bridges (root ports), which stay with the host harmlessly.
        case onlyBridges
        /// Other endpoints share the group; they would have to go to the guest too.
        case shared([String])
        /// No IOMMU groups known (IOMMU off, or lspci input).
        case unknown

        public var text: String {
            switch self {
            case .alone: return "alone (only the card's own functions)"
            case .onlyBridges: return "only with PCIe bridges (fine)"
            case .shared(let others): return "shared with \(others.joined(separator: ", "))"
            case .unknown: return "unknown (no IOMMU groups: IOMMU off, or lspci input)"
            }
        }
    }

    public struct GPU: Sendable, Encodable {
        public var device: PCIDevice
        /// Every function in the card's slot, the GPU first (audio, USB-C, serial bus…).
        public var functions: [PCIDevice]
        public var group: Int?
        public var groupMembers: [PCIDevice]
        public var verdict: Verdict

        /// Endpoints outside the card that share its group: they must leave the host with it.
        public var groupCompanions: [PCIDevice] { groupMembers.filter { $0.slot != device.slot && !$0.isBridge } }

        public var ids: [String] {
            var seen: [String] = []
            for function in functions where !seen.contains(function.id) { seen.append(function.id) }
            return seen
        }

        enum CodingKeys: String, CodingKey {
            case device, functions, ids, group, groupMembers = "group_members", verdict, sharedWith = "shared_with", verdictText = "verdict_text"
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(device, forKey: .device)
            try container.encode(functions, forKey: .functions)
            try container.encode(ids, forKey: .ids)
            try container.encodeIfPresent(group, forKey: .group)
            try container.encode(groupMembers.map(\.address), forKey: .groupMembers)
            switch verdict {
            case .alone: try container.encode("alone", forKey: .verdict)
            case .onlyBridges: try container.encode("only-bridges", forKey: .verdict)
            case .shared(let others):
                try container.encode("shared", forKey: .verdict)
                try container.encode(others, forKey: .sharedWith)
            case .unknown: try container.encode("unknown", forKey: .verdict)
            }
            try container.encode(verdict.text, forKey: .verdictText)
        }
    }

    public var iommu: [String]
    public var cpuVendor: String
    public var gpus: [GPU]
    public var devices: [PCIDevice]

    public var iommuActive: Bool { !iommu.isEmpty }

    enum CodingKeys: String, CodingKey {
        case iommu, iommuActive = "iommu_active", iommuFlag = "iommu_flag", cpuVendor = "cpu_vendor", gpus, devices
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(iommu, forKey: .iommu)
        try container.encode(iommuActive, forKey: .iommuActive)
        try container.encodeIfPresent(iommuFlag, forKey: .iommuFlag)
        try container.encode(cpuVendor, forKey: .cpuVendor)
        try container.encode(gpus, forKey: .gpus)
        try container.encode(devices, forKey: .devices)
    }

    /// The kernel flag that turns the IOMMU on for this CPU, if one is needed.
    public var iommuFlag: String? { cpuVendor == "intel" ? "intel_iommu=on" : nil }

    public init(devices: [PCIDevice], iommu: [String], cpuVendor: String) {
        self.devices = devices
        self.iommu = iommu
        self.cpuVendor = cpuVendor
        gpus = devices.filter(\.isDisplay).map { gpu in
            let functions = [gpu] + devices.filter { $0.slot == gpu.slot && $0.address != gpu.address }
            let members = gpu.iommuGroup.map { group in devices.filter { $0.iommuGroup == group } } ?? []
            let outsiders = members.filter { $0.slot != gpu.slot }
            let verdict: Verdict
            if gpu.iommuGroup == nil {
                verdict = .unknown
            } else if outsiders.isEmpty {
                verdict = .alone
            } else if outsiders.allSatisfy(\.isBridge) {
                verdict = .onlyBridges
            } else {
                verdict = .shared(outsiders.filter { !$0.isBridge }.map { "\($0.address) \($0.name ?? $0.className ?? $0.id)" })
            }
            return GPU(device: gpu, functions: functions, group: gpu.iommuGroup, groupMembers: members, verdict: verdict)
        }
    }

    /// Scans ROOT/sys (or parses lspci text instead).
    public static func read(_ host: HostView, lspci: String? = nil, lspciFile: String = "lspci") throws -> DeviceReport {
        let devices = try lspci.map { try LspciParser.parse($0, file: lspciFile) } ?? SysfsScanner.scan(host)
        return DeviceReport(
            devices: devices, iommu: lspci == nil ? SysfsScanner.iommu(host) : [],
            cpuVendor: host.facts.lookup(["cpu", "vendor"])?.scalarText ?? "unknown")
    }

    /// `auto` (the one GPU that is not the boot VGA device), a PCI address, or a vendor:device id.
    public func select(_ choice: String) throws -> GPU {
        let candidates = gpus.map { "\($0.device.address) \($0.device.id) \($0.device.name ?? "")\($0.device.bootVGA ? " (boot VGA)" : "")" }
        let list = candidates.isEmpty ? "none" : candidates.joined(separator: "; ")
        let matches: [GPU]
        switch choice.lowercased() {
        case "auto":
            matches = gpus.filter { !$0.device.bootVGA }
            guard matches.count == 1 else {
                throw ProvisionError(
                    .invalidInput,
                    matches.isEmpty
                        ? "gpu: auto found no GPU besides the boot VGA device (GPUs: \(list))"
                        : "gpu: auto is ambiguous: \(matches.count) GPUs are not the boot VGA device; pick one by address (GPUs: \(list))")
            }
        case let address where address.split(separator: ":").count >= 2 && address.contains("."):
            let full = address.split(separator: ":").count == 2 ? "0000:" + address : address
            matches = gpus.filter { $0.device.address == full }
        case let id where id.split(separator: ":").count == 2:
            matches = gpus.filter { $0.device.id == id }
            if matches.count > 1 {
                throw ProvisionError(.invalidInput, "gpu: \(choice) matches \(matches.count) cards; pick one by address (GPUs: \(list))")
            }
        default:
            throw ProvisionError(.invalidInput, "gpu must be auto, a PCI address (0000:01:00.0) or a vendor:device id (10de:1b80), not \"\(choice)\"")
        }
        guard let gpu = matches.first else { throw ProvisionError(.invalidInput, "no GPU matches \(choice) (GPUs: \(list))") }
        return gpu
    }
}
