import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// What the root's installed kernels (ROOT/lib/modules/*) offer: which modules exist, which are
/// built in. The vfio module set is decided from this, per kernel, never assumed.
public struct KernelInventory: Sendable {
    public struct Kernel: Sendable {
        public var version: KernelVersion
        /// Normalized names of loadable modules (from modules.dep).
        public var modules: Set<String>
        /// Normalized names of built-in modules (from modules.builtin).
        public var builtin: Set<String>
    }

    public var kernels: [Kernel]

    public static let vfioBase = ["vfio_pci", "vfio", "vfio_iommu_type1"]
    /// Merged into vfio in Linux 6.2; listing it for a newer kernel makes dracut fail hard.
    public static let virqfd = "vfio_virqfd"
    public static let allVfio: Set<String> = Set(vfioBase + [virqfd])

    public static func read(_ host: HostView) -> KernelInventory {
        let releases = host.list("/lib/modules").filter { host.isDirectory("/lib/modules/\($0)") }
        let kernels = releases.map { release -> Kernel in
            Kernel(
                version: KernelVersion(release),
                modules: names(in: (try? host.text("/lib/modules/\(release)/modules.dep")) ?? nil, keysOnly: true),
                builtin: names(in: (try? host.text("/lib/modules/\(release)/modules.builtin")) ?? nil, keysOnly: false))
        }
        return KernelInventory(kernels: kernels.sorted { $0.version < $1.version })
    }

    /// Module names from module paths ("kernel/drivers/vfio/pci/vfio-pci.ko.zst: deps…" -> vfio_pci).
    static func names(in text: String?, keysOnly: Bool) -> Set<String> {
        guard let text else { return [] }
        var result: Set<String> = []
        for line in text.split(separator: "\n") {
            let path = keysOnly ? line.split(separator: ":", maxSplits: 1).first ?? line : line
            guard let file = path.split(separator: "/").last, let dot = file.firstIndex(of: ".") else { continue }
            result.insert(ModuleName.normalized(String(file[..<dot])))
        }
        return result
    }

    /// The vfio modules to load early on every installed kernel, with the reasoning as notices.
    /// Modules built into every kernel are left out: there is nothing to load.
    public func vfioModules() -> (modules: [String], notices: [Notice]) {
        let decided = vfioModuleSet()
        let everywhere = decided.modules.filter { module in !kernels.isEmpty && kernels.allSatisfy { $0.builtin.contains(module) } }
        guard !everywhere.isEmpty else { return decided }
        return (
            decided.modules.filter { !everywhere.contains($0) },
            decided.notices + [Notice(.info, "\(everywhere.joined(separator: ", ")) built into every installed kernel: nothing to load for them")]
        )
    }

    private func vfioModuleSet() -> (modules: [String], notices: [Notice]) {
        guard !kernels.isEmpty else {
            return (Self.vfioBase, [Notice(.warning, "no kernels under /lib/modules; assuming 6.2 or newer (no vfio_virqfd)")])
        }
        let old = kernels.filter { $0.version < KernelVersion("6.2") }
        if old.count == kernels.count {
            return (Self.vfioBase + [Self.virqfd], [Notice(.info, "vfio_virqfd included: every installed kernel is older than 6.2")])
        }
        if old.isEmpty { return (Self.vfioBase, []) }
        let names = kernels.map(\.version.release).joined(separator: ", ")
        return (Self.vfioBase, [
            Notice(
                .info,
                "vfio_virqfd left out: kernels \(names) are mixed; 6.2 and newer have no such module (it merged into vfio), "
                    + "and on the older ones vfio_pci pulls it in as a dependency")
        ])
    }

    /// Kernels with vfio-pci built in: modprobe.d options are ignored there, so `vfio-pci.ids=`
    /// must go on the kernel command line.
    public var vfioPCIBuiltin: [String] { kernels.filter { $0.builtin.contains("vfio_pci") }.map(\.version.release) }

    /// True when no installed kernel has the module (so listing it would break image builds).
    public func missingEverywhere(_ module: String) -> Bool {
        !kernels.isEmpty && !kernels.contains { $0.modules.contains(module) || $0.builtin.contains(module) }
    }

    /// The one list of GPU drivers, for one purpose: where vfio goes in a hand-written module list
    /// (before the first of these). Which driver claims a given card is never looked up here but
    /// from its modalias (`FunctionDrivers`); "nvidia" covers nvidia_drm, nvidia_modeset, nvidia_uvm.
    static let gpuDrivers = ["nvidia", "nouveau", "amdgpu", "radeon", "i915", "xe"]

    static func isGPUDriver(_ name: String) -> Bool {
        let normalized = ModuleName.normalized(name)
        return normalized.hasPrefix("nvidia") || gpuDrivers.contains(normalized)
    }
}
