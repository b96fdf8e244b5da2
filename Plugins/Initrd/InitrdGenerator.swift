import Foundation
import ProvisionPluginAPI

/// An initramfs generator: how to tell a root uses it, how to get the vfio modules into its
/// images, how to rebuild and list them. One file per generator; the table below lists them, so
/// the `generator:` choices, detection, `provision verify`'s image names and listing tools, and
/// the help text all come from one place.
public protocol InitrdGenerator: Sendable {
    /// The word recipes use (`generator: dracut`).
    var name: String { get }
    /// Its own programs: what counts first, since package data directories outlive a generator
    /// (Debian keeps /usr/share/initramfs-tools from initramfs-tools-core after dracut replaced it).
    var programs: [String] { get }
    /// Its package's data directories: the evidence in host snapshots, which carry no programs.
    var dataDirectories: [String] { get }
    /// Rebuilds the images of every installed kernel.
    var rebuild: [String] { get }
    /// Kernel command-line tokens its images need for vfio-pci to load first.
    var commandLine: [String] { get }
    /// Its own tool listing what an image holds.
    var listingTool: String { get }
    /// The images the boot loader loads for a kernel, by this family's naming.
    func imageNames(release: String, host: HostView) -> [String]
    /// The configuration edits that load `modules` early (or remove them when not `present`).
    func plan(modules: [String], present: Bool, inventory: KernelInventory, step: StepContext) throws -> InitrdPlan
    /// The files it reads which modules go into its images from: a module named there is in them.
    func configFiles(_ host: HostView) -> [String]
    /// The edits that load `module` ahead of the vfio modules (see `EarlyModules`).
    func planEarly(_ module: String, host: HostView) throws -> InitrdPlan
}

/// What a generator's adapter decided.
public struct InitrdPlan: Sendable {
    public var files: [DesiredFile] = []
    public var notices: [Notice] = []
    /// Files besides `files` whose edit (by another step) needs the same rebuild.
    public var watched: [String] = []

    public init(files: [DesiredFile] = [], notices: [Notice] = [], watched: [String] = []) {
        self.files = files
        self.notices = notices
        self.watched = watched
    }
}

/// Every generator provision knows, in the order they are listed to people.
public let initrdGenerators: [any InitrdGenerator] = [Mkinitcpio(), Dracut(), InitramfsTools()]

extension InitrdGenerator {
    func program(_ host: HostView) -> String? { programs.first { host.exists($0) } }

    func installed(_ host: HostView) -> String? {
        program(host) ?? dataDirectories.first { host.isDirectory($0) }
    }

    var evidence: [String] { programs + dataDirectories }
}

public enum InitrdGenerators {
    /// "mkinitcpio, dracut, initramfs-tools": for summaries and help.
    public static var names: [String] { initrdGenerators.map(\.name) }

    public static func named(_ name: String) -> (any InitrdGenerator)? { initrdGenerators.first { $0.name == name } }

    /// Which generator the root uses, and why; `requested` other than "auto" is checked, not trusted.
    public static func resolve(_ requested: String, host: HostView, at location: SourceLocation) throws -> (any InitrdGenerator, String) {
        if requested != "auto" {
            guard let generator = named(requested) else {
                throw ProvisionError(.invalidInput, "unknown generator \"\(requested)\"", at: location)
            }
            guard let evidence = generator.installed(host) else {
                throw ProvisionError(
                    .invalidInput,
                    "generator \(requested) is not installed in the root (none of \(generator.evidence.joined(separator: ", ")) exists)",
                    at: location)
            }
            return (generator, "\(requested) as asked (found \(evidence))")
        }
        let withProgram = initrdGenerators.compactMap { generator in generator.program(host).map { (generator, $0) } }
        let found = !withProgram.isEmpty ? withProgram : initrdGenerators.compactMap { generator in generator.installed(host).map { (generator, $0) } }
        switch found.count {
        case 1: return (found[0].0, "\(found[0].0.name) detected (found \(found[0].1))")
        case 0:
            throw ProvisionError(
                .invalidInput, "no initramfs generator found in the root (looked for \(listed(names)))", at: location)
        default:
            let found = found.map { "\($0.0.name) (\($0.1))" }.joined(separator: ", ")
            throw ProvisionError(.invalidInput, "several initramfs generators are installed: \(found); choose one with generator:", at: location)
        }
    }

    /// "a, b and c".
    static func listed(_ words: [String]) -> String {
        words.count < 2 ? words.joined() : words.dropLast().joined(separator: ", ") + " and " + words.last!
    }

    /// The images kernel-install puts beside the loader's entries (ESP/MACHINE-ID/RELEASE/initrd),
    /// whichever generator made them.
    static func kernelInstallImages(release: String, host: HostView) -> [String] {
        guard let machineID = (try? host.text("/etc/machine-id"))??.trimmingCharacters(in: .whitespacesAndNewlines), !machineID.isEmpty else {
            return []
        }
        return ["/boot", "/boot/efi", "/efi"].map { "\($0)/\(machineID)/\(release)/initrd" }
    }
}
