import Foundation
import ProvisionCore

/// dracut: a drop-in in /etc/dracut.conf.d (the `.conf` ending matters: dracut ignores anything
/// else) that force-loads the vfio drivers. The command line also needs `rd.driver.pre=vfio-pci`,
/// which this step exports for the kernel command-line step.
struct Dracut {
    static let directory = "/etc/dracut.conf.d"

    static func dropinPath(_ name: String, at location: SourceLocation) throws -> String {
        let base = name.hasSuffix(".conf") ? String(name.dropLast(5)) : name
        guard !base.isEmpty, !base.contains("/"), !base.hasPrefix(".") else {
            throw ProvisionError(.invalidInput, "dropin must be a plain file name, got \"\(name)\"", at: location)
        }
        return "\(directory)/\(base).conf"
    }

    func plan(modules: [String], present: Bool, dropin: String) -> [DesiredFile] {
        guard present else { return [DesiredFile(path: dropin, state: .absent)] }
        // Spaces inside the quotes: dracut concatenates += values as they are.
        let text = """
            # Written by provision (initrd.modules): bind the passthrough GPU to vfio-pci before any GPU driver.
            force_drivers+=" \(modules.joined(separator: " ")) "

            """
        return [DesiredFile(path: dropin, state: .present(Data(text.utf8), mode: 0o644))]
    }
}
