import Foundation
import ProvisionPluginAPI

/// The kernel modules that would claim each function being passed through, on every installed
/// kernel: each function's modalias against that kernel's alias tables (`ModuleAliases`). These,
/// and only these, must wait for vfio-pci (`softdep MODULE pre: vfio-pci`): the GPU's driver, the
/// HDMI audio's snd_hda_intel, a USB-C controller's xhci_pci, whatever the card carries.
public struct FunctionDrivers: Sendable {
    public struct Function: Sendable {
        public var device: PCIDevice
        /// Loadable modules matching on at least one kernel, in alias-table order.
        public var modules: [String]
        /// Kernels where a matching module is built in (a softdep cannot order it there).
        public var builtin: [(module: String, kernel: String)]
    }

    public var functions: [Function]
    /// Kernels without alias tables: nothing could be resolved for them.
    public var kernelsWithoutAliases: [String]

    /// Every loadable module, once, in function order; vfio-pci itself left out.
    public var modules: [String] {
        var result: [String] = []
        for module in functions.flatMap(\.modules) where !result.contains(module) { result.append(module) }
        return result
    }

    public static func resolve(_ devices: [PCIDevice], host: HostView) throws -> FunctionDrivers {
        let kernels = host.facts.lookup(["kernels"])?.strings ?? []
        var tables: [ModuleAliases] = []
        var missing: [String] = []
        for kernel in kernels {
            let table = try ModuleAliases.read(host, kernel: kernel)
            if table.isEmpty { missing.append(kernel) } else { tables.append(table) }
        }
        let functions = devices.map { device -> Function in
            var modules: [String] = []
            var builtin: [(String, String)] = []
            guard let modalias = device.modalias else { return Function(device: device, modules: [], builtin: []) }
            for table in tables {
                for match in table.modules(for: modalias) where match.module != "vfio_pci" {
                    if match.builtin {
                        builtin.append((match.module, table.kernel))
                    } else if !modules.contains(match.module) {
                        modules.append(match.module)
                    }
                }
            }
            return Function(device: device, modules: modules, builtin: builtin)
        }
        return FunctionDrivers(functions: functions, kernelsWithoutAliases: missing)
    }

    /// What was found, for the plan's notices.
    public var notices: [Notice] {
        var notices: [Notice] = []
        for function in functions {
            let who = "\(function.device.address) (\(function.device.id))"
            if function.modules.isEmpty && function.builtin.isEmpty {
                notices.append(Notice(.info, "\(who): no kernel module claims it"))
            } else if !function.modules.isEmpty {
                notices.append(Notice(.info, "\(who) would be claimed by \(function.modules.joined(separator: ", ")): held back until vfio-pci is loaded"))
            }
            for (module, kernel) in function.builtin {
                notices.append(
                    Notice(
                        .warning,
                        "\(who): \(module) is built into kernel \(kernel), so no softdep can hold it back there; "
                            + "vfio-pci.ids= on the kernel command line (or binding by address) must win the race"))
            }
        }
        if !kernelsWithoutAliases.isEmpty {
            notices.append(
                Notice(
                    .warning,
                    "no modules.alias for kernel \(kernelsWithoutAliases.joined(separator: ", ")) (run depmod): "
                        + "the drivers that would claim the card there are unknown"))
        }
        return notices
    }
}
