import Foundation
import ProvisionDevices
import ProvisionPluginAPI
import ProvisionEdit
import ProvisionInitrd

/// `vfio.reset-quirk`: AMD cards of the Polaris, Vega and Navi 1x generations cannot be reset by
/// the kernel's own methods, so a guest that is stopped cannot start again until the host reboots.
/// The out-of-tree vendor-reset module supplies a device-specific reset; it must load before
/// vfio-pci claims the card (the initramfs, ahead of the vfio modules), and since Linux 5.15 the
/// card's `reset_method` must name it (a udev rule). Cards it does not know are left alone.
public struct ResetQuirk: StepPlugin {
    public init() {}
    public let kind = "vfio.reset-quirk"
    public let summary = "vendor-reset for AMD Polaris/Vega/Navi 1x guest GPUs: early in the initramfs, reset_method set by udev."
    public let options: [OptionSpec] = [
        OptionSpec("ids", .stringList, help: "vendor:device ids of the guest GPU; default: the GPU function gpu.select chose"),
        OptionSpec(
            "generator", .choice(["auto"] + InitrdGenerators.names), default: "auto",
            help: "initramfs generator to configure; auto detects the one the root uses"),
        OptionSpec("rule", .path, default: rulePath, help: "the udev rule file (its name overrides vendor-reset's own rule)"),
    ]

    static let rulePath = "/etc/udev/rules.d/99-vendor-reset.rules"
    static let module = "vendor-reset"

    /// The cards vendor-reset handles (its src/device-db.h), by generation.
    static let supported: [(family: String, devices: [String])] = [
        ("Polaris 10", ["67c0", "67c1", "67c2", "67c4", "67c7", "67d0", "67df", "67c8", "67c9", "67ca", "67cc", "67cf", "6fdf"]),
        ("Polaris 11", ["67e0", "67e3", "67e8", "67eb", "67ef", "67ff", "67e1", "67e7", "67e9"]),
        ("Polaris 12", ["6980", "6981", "6985", "6986", "6987", "6995", "6997", "699f"]),
        ("Vega 10", ["6860", "6861", "6862", "6863", "6864", "6867", "6868", "6869", "686a", "686b", "686c", "686d", "686e", "686f", "687f"]),
        ("Vega 20", ["66a0", "66a1", "66a2", "66a3", "66a4", "66a7", "66af"]),
        ("Navi 10", ["7310", "7312", "7318", "7319", "731a", "731b", "731e", "731f", "1681"]),
        ("Navi 14", ["7340", "7341", "7347", "734f"]),
        ("Navi 12", ["7360", "7362"]),
        ("Arcturus", ["738c"]),
    ]

    /// The generation vendor-reset knows an id ("1002:67df") as, or nil.
    public static func family(of id: String) -> String? {
        let parts = id.lowercased().split(separator: ":")
        guard parts.count == 2, parts[0] == "1002" else { return nil }
        return supported.first { $0.devices.contains(String(parts[1])) }?.family
    }

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let host = step.host
        let ids = try gpuIDs(options, host: host)
        let cards = ids.compactMap { id in Self.family(of: id).map { (id: id, family: $0) } }
        guard !cards.isEmpty else {
            return StepPlan(notices: [
                Notice(.info, "no reset quirk needed: \(ids.joined(separator: ", ")) is not a card vendor-reset handles (AMD Polaris, Vega, Navi 1x)")
            ])
        }
        var notices = cards.map { Notice(.info, "\($0.id) is an AMD \($0.family) card: vendor-reset gives it a reset the guest can be restarted with") }
        let inventory = KernelInventory.read(host)
        let lacking = inventory.kernels.filter { !$0.modules.contains("vendor_reset") && !$0.builtin.contains("vendor_reset") }
        if !inventory.kernels.isEmpty && lacking.count == inventory.kernels.count {
            notices.append(Notice(
                .warning,
                "vendor-reset is not installed for any kernel in the root: it is out of tree, install it with DKMS (the vendor-reset-dkms "
                    + "package, or https://github.com/gnif/vendor-reset) and run this again; nothing is added until then, since an "
                    + "initramfs that lists a missing module fails to build"))
            return StepPlan(notices: notices)
        }
        if !lacking.isEmpty {
            notices.append(Notice(
                .warning,
                "vendor-reset is not built for kernel \(lacking.map(\.version.release).joined(separator: ", ")) (it is out of tree: "
                    + "let DKMS build it there, or that kernel's initramfs lacks it)"))
        }
        let early = try EarlyModules.plan(
            Self.module, generator: try options.string("generator", default: "auto"), host: host, at: options.location(of: "generator"))
        notices += early.notices
        let rulePath = try options.path("rule") ?? Self.rulePath
        var rule = """
            # Written by provision (vfio.reset-quirk): the guest GPU resets through vendor-reset, which the initramfs loads
            # before vfio-pci (Linux 5.15 and newer only use a device-specific reset when reset_method names it).

            """
        for card in cards {
            let parts = card.id.lowercased().split(separator: ":")
            rule += "ACTION==\"add\", SUBSYSTEM==\"pci\", ATTR{vendor}==\"0x\(parts[0])\", ATTR{device}==\"0x\(parts[1])\", "
                + "ATTR{reset_method}=\"device_specific\"\n"
        }
        let files = early.files + [DesiredFile(path: rulePath, state: .present(Data(rule.utf8), mode: 0o644))]
        return StepPlan(files: files, handlers: early.handlers, notices: notices)
    }

    /// The GPU function's ids: the option, or what gpu.select exported (its function at
    /// facts.gpu.address, else every id it passes through).
    private func gpuIDs(_ options: StepOptions, host: HostView) throws -> [String] {
        if options.has("ids") {
            guard let ids = try PCIIDs.from(options, option: "ids", fallback: nil), !ids.isEmpty else {
                throw options.error("ids", "ids must name the guest GPU as vendor:device")
            }
            return ids
        }
        let gpu = try GPUFacts.read(host)
        if let gpu, let function = gpu.functions.first(where: { $0.address == gpu.address }) {
            return [function.id]
        }
        guard let ids = gpu?.ids, !ids.isEmpty else {
            throw ProvisionError(.invalidInput, "vfio.reset-quirk needs ids (or a gpu.select step before it)", at: options.stepLocation)
        }
        return ids
    }
}
