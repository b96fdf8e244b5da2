import Foundation
import ProvisionEdit
import ProvisionPluginAPI

/// Limine: the `cmdline:` (or `kernel_cmdline:`) line of every entry in limine.conf (Limine 8 and
/// later), or in limine.cfg of older releases (where `CMDLINE=` / `KERNEL_CMDLINE=` too), in the file Limine
/// finds first on the boot partition. Limine reads it at boot: nothing to regenerate.
struct Limine: BootLoaderAdapter {
    let name = "limine"
    let title = "Limine"

    /// Where Limine looks on its partition (/, /limine, /boot, /boot/limine, /EFI/BOOT), for the
    /// places that partition is mounted (/boot, /boot/efi, /efi, or the root file system itself).
    static let candidates: [String] = ["/boot", "/boot/limine", "/boot/EFI/BOOT", "/boot/efi", "/boot/efi/limine", "/boot/efi/EFI/BOOT",
        "/efi", "/efi/limine", "/efi/EFI/BOOT"].flatMap { ["\($0)/limine.conf", "\($0)/limine.cfg"] }

    static func configuration(_ host: HostView) -> String? { candidates.first { host.exists($0) } }

    func detect(_ host: HostView) -> String? { Self.configuration(host).map { "Limine (found \($0))" } }

    func plan(_ change: CommandLineChange, step: StepContext) throws -> CommandLinePlan {
        guard let path = Self.configuration(step.host), let text = try step.host.text(path) else {
            throw ProvisionError(.notFound, "no limine.conf or limine.cfg on /boot, /boot/efi or /efi in the root")
        }
        let legacy = path.hasSuffix(".cfg")
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var found: [(index: Int, prefix: String, line: KernelCommandLine)] = []
        for (index, line) in lines.enumerated() {
            let indent = line.prefix { $0 == " " || $0 == "\t" }
            let rest = line.dropFirst(indent.count)
            // limine.cfg of Limine 7 and older says KEY=value; some carry the new key: value lines.
            guard let separator = rest.firstIndex(where: { $0 == ":" || (legacy && $0 == "=") }),
                ["cmdline", "kernel_cmdline"].contains(rest[..<separator].trimmingCharacters(in: .whitespaces).lowercased())
            else { continue }
            let afterSeparator = rest[rest.index(after: separator)...]
            let spacing = afterSeparator.prefix { $0 == " " || $0 == "\t" }
            let value = String(afterSeparator.dropFirst(spacing.count))
            guard !value.contains("$") else {
                throw ProvisionError(
                    .invalidInput, "the command line refers to a macro (\(value)); provision edits literal command lines only",
                    at: SourceLocation(file: path, line: index + 1, column: indent.count + 1))
            }
            let prefix = String(indent) + String(rest[...separator]) + String(spacing)
            found.append((index, prefix, try KernelCommandLine(parsing: value)))
        }
        var plan = CommandLinePlan()
        guard !found.isEmpty else {
            plan.notices.append(Notice(.warning, "\(path) has no \(legacy ? "CMDLINE=" : "cmdline:") line: add one to each Linux entry, then re-run"))
            return plan
        }
        // Each entry boots with its own line (unlike loader entries, whose options lines add up).
        let edited = found.map { CommandLineEdit.apply(add: change.add, remove: change.remove, to: [$0.line])[0] }
        guard edited != found.map(\.line) else { return plan }
        for (offset, entry) in found.enumerated() { lines[entry.index] = entry.prefix + edited[offset].description }
        plan.files = [DesiredFile(path: path, state: .present(Data(lines.joined(separator: "\n").utf8)))]
        return plan
    }
}
