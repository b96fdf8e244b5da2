import Foundation
import ProvisionPluginAPI

/// The initramfs generators provision knows, how to tell which one a root uses, and how to
/// rebuild its images.
public enum InitrdGenerator: String, Sendable, CaseIterable {
    case mkinitcpio
    case dracut
    case initramfsTools = "initramfs-tools"

    /// The generator's own program. What counts first: package data directories outlive a
    /// generator (Debian keeps /usr/share/initramfs-tools from initramfs-tools-core after dracut
    /// replaced initramfs-tools).
    var programs: [String] {
        switch self {
        case .mkinitcpio: return ["/usr/bin/mkinitcpio"]
        case .dracut: return ["/usr/bin/dracut", "/usr/sbin/dracut"]
        case .initramfsTools: return ["/usr/sbin/update-initramfs"]
        }
    }

    /// Its package's data directory: the evidence in host snapshots, which carry no programs.
    var dataDirectories: [String] {
        switch self {
        case .mkinitcpio: return ["/usr/lib/initcpio"]
        case .dracut: return ["/usr/lib/dracut"]
        case .initramfsTools: return ["/usr/share/initramfs-tools"]
        }
    }

    var evidence: [String] { programs + dataDirectories }

    /// Rebuilds the images of every installed kernel.
    public var rebuild: [String] {
        switch self {
        case .mkinitcpio: return ["mkinitcpio", "-P"]
        case .dracut: return ["dracut", "--regenerate-all", "--force"]
        case .initramfsTools: return ["update-initramfs", "-u", "-k", "all"]
        }
    }

    func program(_ host: HostView) -> String? { programs.first { host.exists($0) } }

    func installed(_ host: HostView) -> String? {
        program(host) ?? dataDirectories.first { host.isDirectory($0) }
    }

    /// Which generator the root uses, and why; `requested` other than "auto" is checked, not trusted.
    public static func resolve(_ requested: String, host: HostView, at location: SourceLocation) throws -> (InitrdGenerator, String) {
        if requested != "auto" {
            guard let generator = InitrdGenerator(rawValue: requested) else {
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
        let withProgram = allCases.compactMap { generator in generator.program(host).map { (generator, $0) } }
        let found = !withProgram.isEmpty ? withProgram : allCases.compactMap { generator in generator.installed(host).map { (generator, $0) } }
        switch found.count {
        case 1: return (found[0].0, "\(found[0].0.rawValue) detected (found \(found[0].1))")
        case 0:
            throw ProvisionError(
                .invalidInput, "no initramfs generator found in the root (looked for mkinitcpio, dracut and initramfs-tools)", at: location)
        default:
            let names = found.map { "\($0.0.rawValue) (\($0.1))" }.joined(separator: ", ")
            throw ProvisionError(.invalidInput, "several initramfs generators are installed: \(names); choose one with generator:", at: location)
        }
    }
}
