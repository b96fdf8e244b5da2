import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Which kernel modules would claim a device, the way modprobe decides it: the device's modalias
/// (`pci:v000010DEd00001B80sv…bc03sc00i00`, from sysfs) matched against the glob patterns of
/// `modules.alias` (loadable modules) and `modules.builtin.modinfo` (built into the kernel) of one
/// installed kernel. `modprobe -R MODALIAS` prints the same set; the tests hold it to that.
public struct ModuleAliases: Sendable {
    public struct Match: Sendable, Hashable {
        /// Normalized module name (`snd_hda_intel`; `-` and `_` are the same to the kernel).
        public var module: String
        public var builtin: Bool
    }

    public var kernel: String
    public var isEmpty: Bool { entries.isEmpty }
    private var entries: [(pattern: String, module: String, builtin: Bool)]

    /// The alias tables of kernel `release` in the root: `modules.alias` (depmod's text form) for
    /// loadable modules, and the `alias=` entries of `modules.builtin.modinfo` (NUL-separated
    /// `module.key=value`, from the kernel build) for built-in ones. Missing files give no entries.
    public static func read(_ host: HostView, kernel release: String) throws -> ModuleAliases {
        var entries: [(String, String, Bool)] = []
        if let text = try host.text("/lib/modules/\(release)/modules.alias") {
            for line in text.split(separator: "\n") where line.hasPrefix("alias ") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count == 3 else { continue }
                entries.append((String(fields[1]), normalized(fields[2]), false))
            }
        }
        if let data = try host.file("/lib/modules/\(release)/modules.builtin.modinfo").content {
            for record in data.split(separator: 0) {
                let text = String(decoding: record, as: UTF8.self)
                guard let dot = text.firstIndex(of: "."), text[dot...].hasPrefix(".alias=") else { continue }
                let pattern = text[text.index(dot, offsetBy: 7)...]
                entries.append((String(pattern), normalized(text[..<dot]), true))
            }
        }
        return ModuleAliases(kernel: release, entries: entries)
    }

    /// Every module whose alias pattern matches, in the order the tables list them, once each.
    public func modules(for modalias: String) -> [Match] {
        guard let colon = modalias.firstIndex(of: ":") else { return [] }
        let prefix = modalias[...colon]
        var seen: Set<Match> = []
        var result: [Match] = []
        for entry in entries where entry.pattern.hasPrefix(prefix) && fnmatch(entry.pattern, modalias, 0) == 0 {
            let match = Match(module: entry.module, builtin: entry.builtin)
            if seen.insert(match).inserted { result.append(match) }
        }
        return result
    }

    static func normalized<S: StringProtocol>(_ name: S) -> String { name.replacingOccurrences(of: "-", with: "_") }

    /// The modalias the kernel gives a PCI function (drivers/pci/pci-driver.c), for a device known
    /// only by its ids and class (no sysfs `modalias` file to read).
    public static func pciModalias(vendor: String, device: String, subsystemVendor: String?, subsystemDevice: String?, classCode: UInt32) -> String {
        func hex8(_ text: String?) -> String {
            let value = UInt32(text ?? "", radix: 16) ?? 0
            return String(format: "%08X", value)
        }
        return "pci:v\(hex8(vendor))d\(hex8(device))sv\(hex8(subsystemVendor))sd\(hex8(subsystemDevice))"
            + String(format: "bc%02Xsc%02Xi%02X", (classCode >> 16) & 0xff, (classCode >> 8) & 0xff, classCode & 0xff)
    }
}
