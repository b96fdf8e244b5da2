import Foundation
import ProvisionPluginAPI

/// `facts.gpu`, exported by `gpu.select` and read by modprobe.vfio, vfio.cmdline, firmware.hint,
/// vfio.bind-address, rom.fetch and libvirt.domain.
public struct GPUFacts: StepFact, Equatable {
    public static let key = "gpu"

    /// How vfio-pci takes the card: by vendor:device ids, or by PCI address when a twin card
    /// shares its ids.
    public enum Bind: String, Codable, Sendable { case ids, address }

    /// One function that leaves the host with the card.
    public struct Function: Codable, Sendable, Equatable {
        public var address: String
        public var id: String
        public var modalias: String
        /// The modules that would claim it (from its modalias).
        public var drivers: [String]
    }

    public var address: String
    /// The card's functions.
    public var addresses: [String]
    /// The rest of the IOMMU group, when allow_shared_group let it through.
    public var groupDevices: [String]
    public var ids: [String]
    public var vendor: String
    /// The modules that would claim any function that leaves the host.
    public var drivers: [String]
    public var functions: [Function]
    public var bootVGA: Bool
    /// nil when the IOMMU group is unknown (written as "" so `${facts.gpu.group}` stays text).
    public var group: Int?
    public var bind: Bind
    public var name: String

    enum CodingKeys: String, CodingKey {
        case address, addresses, ids, vendor, drivers, functions, group, bind, name
        case groupDevices = "group_devices", bootVGA = "boot_vga"
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        address = try container.decode(String.self, forKey: .address)
        addresses = try container.decode([String].self, forKey: .addresses)
        groupDevices = try container.decode([String].self, forKey: .groupDevices)
        ids = try container.decode([String].self, forKey: .ids)
        vendor = try container.decode(String.self, forKey: .vendor)
        drivers = try container.decode([String].self, forKey: .drivers)
        functions = try container.decode([Function].self, forKey: .functions)
        bootVGA = try container.decode(Bool.self, forKey: .bootVGA)
        if (try? container.decode(String.self, forKey: .group)) == "" {
            group = nil
        } else {
            group = try container.decode(Int.self, forKey: .group)
        }
        bind = try container.decode(Bind.self, forKey: .bind)
        name = try container.decode(String.self, forKey: .name)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(address, forKey: .address)
        try container.encode(addresses, forKey: .addresses)
        try container.encode(groupDevices, forKey: .groupDevices)
        try container.encode(ids, forKey: .ids)
        try container.encode(vendor, forKey: .vendor)
        try container.encode(drivers, forKey: .drivers)
        try container.encode(functions, forKey: .functions)
        try container.encode(bootVGA, forKey: .bootVGA)
        if let group { try container.encode(group, forKey: .group) } else { try container.encode("", forKey: .group) }
        try container.encode(bind, forKey: .bind)
        try container.encode(name, forKey: .name)
    }

    init(
        address: String, addresses: [String], groupDevices: [String], ids: [String], vendor: String, drivers: [String],
        functions: [Function], bootVGA: Bool, group: Int?, bind: Bind, name: String
    ) {
        self.address = address
        self.addresses = addresses
        self.groupDevices = groupDevices
        self.ids = ids
        self.vendor = vendor
        self.drivers = drivers
        self.functions = functions
        self.bootVGA = bootVGA
        self.group = group
        self.bind = bind
        self.name = name
    }

    /// What an earlier gpu.select exported, nil when none ran.
    public static func read(_ host: HostView) throws -> GPUFacts? { try host.fact(GPUFacts.self) }

    /// Bound by address (a twin card), so no ids go to vfio-pci.
    public var bindsByAddress: Bool { bind == .address }
}
