import Foundation
import ProvisionPluginAPI
import ProvisionDevices
import ProvisionEdit
import ProvisionInitrd

/// `modprobe.vfio`: /etc/modprobe.d/vfio.conf claims the card's functions for vfio-pci by id and
/// makes every kernel module that would claim one of them (found from the functions' modaliases,
/// `FunctionDrivers`) wait for vfio-pci. Other lines in the file stay;
/// module names are compared with `-` and `_` as equal, so re-runs never add duplicates.
public struct ModprobeVfio: StepPlugin {
    public init() {}
    public let kind = "modprobe.vfio"
    public let summary = "Bind device ids to vfio-pci in modprobe.d and softdep the GPU drivers on it."
    public let options: [OptionSpec] = [
        OptionSpec("ids", .stringList, help: "vendor:device ids to bind, e.g. [10de:1b80, 10de:10f0]; default: facts.gpu.ids"),
        OptionSpec("path", .path, default: "/etc/modprobe.d/vfio.conf", help: "the modprobe.d file to manage"),
        OptionSpec("disable_vga", .bool, default: "false", help: "add disable_vga=1 (opt the card out of VGA arbitration)"),
        OptionSpec(
            "drivers", .stringList, default: "the modules whose aliases match the functions' modaliases",
            help: "kernel modules to softdep on vfio-pci"),
        OptionSpec(
            "generator", .choice(["auto"] + InitrdGenerators.names + ["none"]), default: "auto",
            help: "initramfs to rebuild when the file changes (it carries modprobe.d); none to skip"),
    ]

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let host = step.host
        let path = try options.path("path") ?? "/etc/modprobe.d/vfio.conf"
        let gpu = try GPUFacts.read(host)
        let byAddress = gpu?.bindsByAddress == true && !options.has("ids")
        let ids = byAddress ? [] : try Self.validatedIDs(options, gpu: gpu)
        let inventory = KernelInventory.read(host)
        var notices: [Notice] = []
        var drivers: [String]
        if let given = try options.stringList("drivers") {
            drivers = given
        } else if let gpu {
            drivers = gpu.drivers
        } else {
            // No gpu.select before: the functions with these ids that the root's sysfs shows.
            let functions = SysfsScanner.scan(host).filter { ids.contains($0.id) }
            let resolved = try FunctionDrivers.resolve(functions, host: host)
            drivers = resolved.modules
            notices += resolved.notices
            if functions.isEmpty {
                notices.append(
                    Notice(
                        .warning,
                        "no device with ids \(ids.joined(separator: ", ")) in the root's /sys: the modules that would claim them are "
                            + "unknown, so no softdeps (name them with the drivers option)"))
            }
        }
        if byAddress {
            notices.append(Notice(.info, "the guest GPU is bound by address (vfio.bind-address): no ids line, only the softdeps"))
        }
        if !inventory.vfioPCIBuiltin.isEmpty && !byAddress {
            notices.append(Notice(
                .warning, "vfio-pci is built into kernel \(inventory.vfioPCIBuiltin.joined(separator: ", ")): the options line is ignored there; "
                    + "vfio-pci.ids= on the kernel command line does the binding"))
        }
        let original = try host.text(path)
        let text = Self.edit(original ?? "", ids: ids, disableVGA: try options.bool("disable_vga", default: false), drivers: drivers)
        var plan = StepPlan(notices: notices)
        if text != original {
            plan.files = [DesiredFile(path: path, state: .present(Data(text.utf8), mode: original == nil ? 0o644 : nil))]
        }
        let generator = try options.string("generator", default: "auto")
        if generator != "none" {
            do {
                let (found, _) = try InitrdGenerators.resolve(generator, host: host, at: options.location(of: "generator"))
                plan.handlers = [HandlerAction(argv: found.rebuild, notifiedBy: [path])]
            } catch let error as ProvisionError where generator == "auto" {
                plan.notices.append(Notice(.info, "no initramfs to rebuild: \(error.message)"))
            }
        }
        return plan
    }

    static func validatedIDs(_ options: StepOptions, gpu: GPUFacts?) throws -> [String] {
        guard let ids = try PCIIDs.from(options, option: "ids", fallback: gpu?.ids), !ids.isEmpty else {
            throw ProvisionError(.invalidInput, "modprobe.vfio needs ids (or a gpu selection step before it)", at: options.stepLocation)
        }
        return ids
    }

    /// The file with our options line and softdeps in place; every other line kept.
    static func edit(_ text: String, ids: [String], disableVGA: Bool, drivers: [String]) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        func words(_ line: String) -> [String] { line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init) }
        func isVfioOptions(_ line: String) -> Bool {
            let w = words(line)
            return w.count >= 2 && w[0] == "options" && ModuleName.same(w[1], "vfio_pci")
        }
        let managedParams = ["ids"] + (disableVGA ? ["disable_vga"] : [])
        let wantedParams = (ids.isEmpty ? [] : ["ids=\(ids.joined(separator: ","))"]) + (disableVGA ? ["disable_vga=1"] : [])
        if wantedParams.isEmpty {
            // Nothing to set: leave any options line as it is.
        } else if let first = lines.firstIndex(where: isVfioOptions) {
            var w = words(lines[first])
            let kept = w.dropFirst(2).filter { param in !managedParams.contains { ModuleName.same(param.split(separator: "=")[0].description, $0) } }
            let rebuilt = ([w[0], w[1]] + wantedParams + kept).joined(separator: " ")
            if rebuilt != w.joined(separator: " ") { lines[first] = rebuilt }
            // Later options lines may not set ids again: modprobe would merge them.
            for index in lines.indices.reversed() where index > first && isVfioOptions(lines[index]) {
                w = words(lines[index])
                let rest = w.dropFirst(2).filter { !ModuleName.same($0.split(separator: "=")[0].description, "ids") }
                if rest.isEmpty { lines.remove(at: index) } else { lines[index] = ([w[0], w[1]] + rest).joined(separator: " ") }
            }
        } else {
            lines.append((["options", "vfio-pci"] + wantedParams).joined(separator: " "))
        }
        for driver in drivers {
            let covered = lines.contains { line in
                let w = words(line)
                guard w.count >= 3, w[0] == "softdep", ModuleName.same(w[1], driver), let pre = w.firstIndex(of: "pre:") else { return false }
                return w[(pre + 1)...].prefix { !$0.hasSuffix(":") }.contains { ModuleName.same($0, "vfio_pci") }
            }
            if !covered { lines.append("softdep \(driver) pre: vfio-pci") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// The modprobe.d steps.
public let modprobeSteps: [any StepPlugin] = [ModprobeVfio(), ResetQuirk()]
