import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// A module that must load in the initramfs before the vfio modules (vendor-reset has to hook a
/// GPU's reset before vfio-pci claims the card), for steps of other modules: placed in the same
/// files, with the same editors, as `initrd.modules` places the vfio modules, which keeps it there
/// (it orders the vfio modules after vendor-reset).
public enum EarlyModules {
    /// dracut reads its drop-ins in name order and loads `force_drivers` in the order they add up
    /// to: this name sorts before initrd.modules' drop-in.
    static func dracutDropin(_ module: String) -> String { "\(Dracut.directory)/00-\(module).conf" }

    public static func plan(_ module: String, generator requested: String, host: HostView, at location: SourceLocation) throws
        -> (files: [DesiredFile], handlers: [HandlerAction], notices: [Notice])
    {
        let (generator, reason) = try InitrdGenerators.resolve(requested, host: host, at: location)
        let planned = try generator.planEarly(module, host: host)
        let watched = Array(Set(planned.files.map(\.path) + planned.watched)).sorted()
        let notices = [Notice(.info, "initramfs generator: \(reason)")] + planned.notices
        return (planned.files, [HandlerAction(argv: generator.rebuild, notifiedBy: watched)], notices)
    }

    /// Where `module` goes in a list of module names: before the first vfio module or GPU driver.
    static func anchor(_ names: [String]) -> Int? {
        names.firstIndex { KernelInventory.allVfio.contains(ModuleName.normalized($0)) || KernelInventory.isGPUDriver($0) }
    }

    /// Whether `module` is listed once, ahead of its anchor.
    static func placed(_ module: String, in names: [String]) -> Bool {
        let positions = names.indices.filter { ModuleName.same(names[$0], module) }
        return positions.count == 1 && positions[0] < (anchor(names) ?? names.count)
    }
}

extension Mkinitcpio {
    /// The rebuild follows every file mkinitcpio reads its configuration from.
    func planEarly(_ module: String, host: HostView) throws -> InitrdPlan {
        InitrdPlan(files: try EarlyModules.mkinitcpio(module, host: host), watched: Self.configFiles(host))
    }
}

extension Dracut {
    func planEarly(_ module: String, host: HostView) throws -> InitrdPlan {
        InitrdPlan(files: EarlyModules.dracut(module, host: host))
    }
}

extension InitramfsTools {
    func planEarly(_ module: String, host: HostView) throws -> InitrdPlan {
        InitrdPlan(files: try EarlyModules.initramfsTools(module, host: host))
    }
}

/// The edits, one per generator.
extension EarlyModules {
    static func mkinitcpio(_ module: String, host: HostView) throws -> [DesiredFile] {
        guard let main = try host.text(Mkinitcpio.mainConfig) else {
            throw ProvisionError.missing(Mkinitcpio.mainConfig)
        }
        guard let located = try Mkinitcpio.locate("MODULES", host), let array = located.array else {
            let text = main + (main.hasSuffix("\n") || main.isEmpty ? "" : "\n") + "MODULES=(\(module))\n"
            return [DesiredFile(path: Mkinitcpio.mainConfig, state: .present(Data(text.utf8)))]
        }
        guard !placed(module, in: array.values) else { return [] }
        let stale = Set(array.values.indices.filter { ModuleName.same(array.values[$0], module) })
        var text = stale.isEmpty ? located.text : array.removing(stale)
        if let reparsed = try ShellArray.find("MODULES", in: text, file: located.path) {
            text = reparsed.inserting([module], before: anchor(reparsed.values))
        }
        return [DesiredFile(path: located.path, state: .present(Data(text.utf8)))]
    }

    static func dracut(_ module: String, host: HostView) -> [DesiredFile] {
        let text = """
            # Written by provision: \(module) loads before the vfio drivers (which \(Dracut.directory)'s later drop-ins force).
            force_drivers+=" \(module) "

            """
        return [DesiredFile(path: dracutDropin(module), state: .present(Data(text.utf8), mode: 0o644))]
    }

    static func initramfsTools(_ module: String, host: HostView) throws -> [DesiredFile] {
        let path = InitramfsTools.modulesFile
        let original = try host.text(path) ?? ""
        var lines = original.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        /// A line naming a module (comments and blank lines name none).
        func name(_ line: String) -> String {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return trimmed.hasPrefix("#") ? "" : trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init) ?? ""
        }
        guard !placed(module, in: lines.map(name)) else { return [] }
        lines.removeAll { ModuleName.same(name($0), module) }
        lines.insert(module, at: anchor(lines.map(name)) ?? lines.count)
        return [DesiredFile(path: path, state: .present(Data((lines.joined(separator: "\n") + "\n").utf8)))]
    }
}
