import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// mkinitcpio: edits only the `MODULES=(…)` array (where it is last assigned: mkinitcpio.conf or a
/// drop-in in mkinitcpio.conf.d) and makes sure `modconf` is in HOOKS, or modprobe.d would be left
/// out of the image.
struct Mkinitcpio: InitrdGenerator {
    static let mainConfig = "/etc/mkinitcpio.conf"

    let name = "mkinitcpio"
    let programs = ["/usr/bin/mkinitcpio"]
    let dataDirectories = ["/usr/lib/initcpio"]
    let rebuild = ["mkinitcpio", "-P"]
    let commandLine: [String] = []
    let listingTool = "lsinitcpio"

    /// Arch names images after the kernel package (lib/modules/RELEASE/pkgbase), not the release.
    func imageNames(release: String, host: HostView) -> [String] {
        var names = ["/boot/initramfs-\(release).img"]
        if let base = (try? host.text("/lib/modules/\(release)/pkgbase"))??.trimmingCharacters(in: .whitespacesAndNewlines), !base.isEmpty {
            names.insert("/boot/initramfs-\(base).img", at: 0)
        }
        return names + InitrdGenerators.kernelInstallImages(release: release, host: host)
    }

    func plan(modules: [String], present: Bool, inventory: KernelInventory, step: StepContext) throws -> InitrdPlan {
        let planned = try plan(modules: modules, present: present, inventory: inventory, host: step.host)
        // The rebuild follows every file mkinitcpio reads its configuration from: an edit there by
        // another step needs the same rebuild.
        return InitrdPlan(files: planned.files, notices: planned.notices, watched: Self.configFiles(step.host))
    }

    func configFiles(_ host: HostView) -> [String] { Self.configFiles(host) }

    /// mkinitcpio sources the main file, then the drop-ins in order; the last assignment wins.
    static func configFiles(_ host: HostView) -> [String] {
        [mainConfig] + host.list("/etc/mkinitcpio.conf.d").filter { $0.hasSuffix(".conf") }.map { "/etc/mkinitcpio.conf.d/\($0)" }
    }

    /// The file holding the effective assignment of `name`, its text, and the array.
    static func locate(_ name: String, _ host: HostView) throws -> (path: String, text: String, array: ShellArray?)? {
        var result: (String, String, ShellArray?)?
        for path in configFiles(host) {
            guard let text = try host.text(path) else { continue }
            if let array = try ShellArray.find(name, in: text, file: path) { result = (path, text, array) }
        }
        return result
    }

    func plan(modules: [String], present: Bool, inventory: KernelInventory, host: HostView) throws -> (files: [DesiredFile], notices: [Notice]) {
        guard try host.text(Self.mainConfig) != nil else {
            throw ProvisionError.missing(Self.mainConfig)
        }
        var edited: [String: String] = [:]
        var notices: [Notice] = []
        func current(_ path: String, _ fallback: String) -> String { edited[path] ?? fallback }

        // MODULES
        let located = try Self.locate("MODULES", host)
        let modulesPath = located?.path ?? Self.mainConfig
        var text = current(modulesPath, try located?.text ?? host.text(Self.mainConfig) ?? "")
        if let array = try ShellArray.find("MODULES", in: text, file: modulesPath) {
            if let new = Self.reorder(array, modules: modules, present: present, inventory: inventory) {
                text = new.removing.isEmpty ? text : array.removing(new.removing)
                if !new.inserting.isEmpty, let reparsed = try ShellArray.find("MODULES", in: text, file: modulesPath) {
                    let anchor = reparsed.values.firstIndex(where: { KernelInventory.isGPUDriver($0) })
                    text = reparsed.inserting(new.inserting, before: anchor)
                }
            }
        } else if present {
            text += (text.hasSuffix("\n") || text.isEmpty ? "" : "\n") + "MODULES=(\(modules.joined(separator: " ")))\n"
        }
        edited[modulesPath] = text

        // HOOKS must carry modconf, or /etc/modprobe.d never reaches the image.
        if present {
            guard let hooksLocated = try Self.locate("HOOKS", host) else {
                throw ProvisionError(.invalidInput, "no HOOKS=(...) array in \(Self.configFiles(host).joined(separator: " or ")); cannot make sure modconf is there")
            }
            let hooksText = current(hooksLocated.path, hooksLocated.text)
            guard let hooks = try ShellArray.find("HOOKS", in: hooksText, file: hooksLocated.path) else {
                throw ProvisionError(.invalidInput, "HOOKS vanished from \(hooksLocated.path) while editing")
            }
            if !hooks.values.contains("modconf") {
                let anchors = ["base", "udev", "systemd", "autodetect", "microcode"]
                let after = hooks.values.lastIndex(where: anchors.contains)
                let before = after.map { $0 + 1 < hooks.values.count ? $0 + 1 : nil } ?? (hooks.values.isEmpty ? nil : 0)
                edited[hooksLocated.path] = hooks.inserting(["modconf"], before: before)
                notices.append(Notice(.info, "added modconf to HOOKS in \(hooksLocated.path) so /etc/modprobe.d is in the image"))
            }
        }
        var files: [DesiredFile] = []
        for (path, newText) in edited.sorted(by: { $0.key < $1.key }) where try host.text(path) != newText {
            files.append(DesiredFile(path: path, state: .present(Data(newText.utf8))))
        }
        return (files, notices)
    }

    /// What to remove and insert so the vfio modules come first (after vendor-reset) and before any
    /// GPU driver; nil when the array is already right.
    static func reorder(_ array: ShellArray, modules: [String], present: Bool, inventory: KernelInventory)
        -> (removing: Set<Int>, inserting: [String])?
    {
        let values = array.values.map(ModuleName.normalized)
        let stale = Set(values.indices.filter { values[$0] == KernelInventory.virqfd && inventory.missingEverywhere(KernelInventory.virqfd) })
        if !present {
            let removing = Set(values.indices.filter { KernelInventory.allVfio.contains(values[$0]) })
            return removing.isEmpty ? nil : (removing, [])
        }
        let wanted = modules.map(ModuleName.normalized)
        let firstGPU = values.firstIndex(where: KernelInventory.isGPUDriver) ?? values.count
        let vendorReset = values.firstIndex(of: "vendor_reset")
        let positions = wanted.map { name in values.indices.filter { values[$0] == name } }
        let inOrder = positions.allSatisfy { found in
            found.count == 1 && found[0] < firstGPU && (vendorReset.map { found[0] > $0 } ?? true)
        }
        if inOrder && stale.isEmpty { return nil }
        if inOrder { return (stale, []) }
        var removing = stale.union(values.indices.filter { wanted.contains(values[$0]) })
        var inserting = modules
        if let vendorReset, vendorReset > (values.firstIndex(where: { wanted.contains($0) }) ?? values.count) || vendorReset > firstGPU {
            removing.insert(vendorReset)
            inserting.insert(array.values[vendorReset], at: 0)
        }
        return (removing, inserting)
    }
}
