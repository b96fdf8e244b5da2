import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// initramfs-tools: /etc/initramfs-tools/modules, one module per line; vfio lines go before any
/// GPU driver line, comments and other lines stay as they are.
struct InitramfsTools: InitrdGenerator {
    static let modulesFile = "/etc/initramfs-tools/modules"

    let name = "initramfs-tools"
    let programs = ["/usr/sbin/update-initramfs"]
    let dataDirectories = ["/usr/share/initramfs-tools"]
    let rebuild = ["update-initramfs", "-u", "-k", "all"]
    let commandLine: [String] = []
    let listingTool = "lsinitramfs"

    func imageNames(release: String, host: HostView) -> [String] {
        ["/boot/initrd.img-\(release)"] + InitrdGenerators.kernelInstallImages(release: release, host: host)
    }

    func configFiles(_ host: HostView) -> [String] { [Self.modulesFile] }

    func plan(modules: [String], present: Bool, inventory: KernelInventory, step: StepContext) throws -> InitrdPlan {
        InitrdPlan(files: try plan(modules: modules, present: present, inventory: inventory, host: step.host))
    }

    func plan(modules: [String], present: Bool, inventory: KernelInventory, host: HostView) throws -> [DesiredFile] {
        let original = try host.text(Self.modulesFile)
        guard original != nil || present else { return [] }
        var lines = (original ?? "").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let terminated = original.map { $0.hasSuffix("\n") || $0.isEmpty } ?? true
        if lines.last == "" { lines.removeLast() }

        func moduleName(_ line: String) -> String? {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { return nil }
            return String(trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })[0])
        }
        /// Lines this step owns: a vfio module name alone (with arguments, the line is the user's).
        func isOwned(_ line: String, _ names: Set<String>) -> Bool {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return names.contains(ModuleName.normalized(trimmed))
        }
        let wanted = modules.map(ModuleName.normalized)
        let stale = inventory.missingEverywhere(KernelInventory.virqfd) ? Set([KernelInventory.virqfd]) : []
        var result = lines
        if present {
            let names = lines.map(moduleName)
            let firstGPU = names.firstIndex { $0.map(KernelInventory.isGPUDriver) ?? false } ?? lines.count
            let positions = wanted.map { name in names.indices.filter { names[$0].map(ModuleName.normalized) == name } }
            let inOrder = positions.allSatisfy { $0.count == 1 && $0[0] < firstGPU }
            if !inOrder || lines.contains(where: { isOwned($0, stale) }) {
                result = lines.filter { !isOwned($0, Set(wanted).union(stale)) }
                let anchor = result.firstIndex { moduleName($0).map(KernelInventory.isGPUDriver) ?? false } ?? result.count
                result.insert(contentsOf: modules, at: anchor)
            }
        } else {
            result = lines.filter { !isOwned($0, KernelInventory.allVfio) }
        }
        guard result != lines || original == nil else { return [] }
        let text = result.joined(separator: "\n") + (result.isEmpty ? "" : (terminated || result.count > lines.count ? "\n" : ""))
        return [DesiredFile(path: Self.modulesFile, state: .present(Data(text.utf8)))]
    }
}
