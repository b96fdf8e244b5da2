import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// The change a step wants on the kernel command line.
struct CommandLineChange {
    var add: [String]
    var remove: [String]
}

/// What an adapter decided: files, the command that makes the change take effect, and notes.
struct CommandLinePlan {
    var files: [DesiredFile] = []
    var handlers: [HandlerAction] = []
    var notices: [Notice] = []
}

/// The boot loaders provision edits, and how to tell which one a root actually boots with: by
/// what the loader itself reads (ESP contents, loader entries, grub.cfg, kernelstub's config), not
/// by which packages are installed.
public enum BootLoader: String, Sendable, CaseIterable {
    case grub
    case systemdBoot = "systemd-boot"
    case bls
    case kernelstub

    static let espCandidates = ["/efi", "/boot/efi", "/boot"]

    /// The ESP that systemd-boot reads entries from, if any.
    static func systemdBootESP(_ host: HostView) -> String? {
        espCandidates.first { esp in
            host.exists("\(esp)/loader/loader.conf") || host.isDirectory("\(esp)/EFI/systemd")
        }
    }

    static func entries(_ host: HostView, in directory: String) -> [String] {
        host.list(directory).filter { $0.hasSuffix(".conf") }.map { "\(directory)/\($0)" }
    }

    static func blsEnabled(_ host: HostView) -> Bool {
        guard let text = (try? host.text("/etc/default/grub")) ?? nil,
            let assignment = try? ShellAssignment.last("GRUB_ENABLE_BLSCFG", in: text, file: "/etc/default/grub")
        else { return false }
        return assignment.value == "true"
    }

    static func grubConfig(_ host: HostView) -> String? {
        ["/boot/grub/grub.cfg", "/boot/grub2/grub.cfg", "/boot/efi/EFI/fedora/grub.cfg"].first { host.exists($0) }
    }

    public static func resolve(_ requested: String, host: HostView, at location: SourceLocation) throws -> (BootLoader, String) {
        if requested != "auto" {
            guard let loader = BootLoader(rawValue: requested) else {
                throw ProvisionError(.invalidInput, "unknown boot loader \"\(requested)\"", at: location)
            }
            return (loader, "\(requested) as asked")
        }
        if host.exists(Kernelstub.configuration) {
            return (.kernelstub, "kernelstub (found \(Kernelstub.configuration); it rewrites the loader entries itself)")
        }
        let blsEntries = entries(host, in: "/boot/loader/entries")
        if let config = grubConfig(host), !blsEntries.isEmpty, blsEnabled(host) {
            return (.bls, "GRUB with BLS entries (found \(config), \(blsEntries.count) entries in /boot/loader/entries, GRUB_ENABLE_BLSCFG=true)")
        }
        if let esp = systemdBootESP(host) {
            return (.systemdBoot, "systemd-boot (found \(esp)/loader)")
        }
        if let config = grubConfig(host) {
            return (.grub, "GRUB (found \(config))")
        }
        throw ProvisionError(
            .invalidInput,
            "no boot loader detected in the root: no kernelstub configuration, no systemd-boot loader on /efi, /boot/efi or /boot, "
                + "and no grub.cfg; name one with bootloader:",
            at: location)
    }
}

/// Loader entries (Boot Loader Specification, type 1): every `options` line of every entry is
/// edited as one command line, since the loader concatenates them.
enum LoaderEntries {
    static func edit(_ paths: [String], change: CommandLineChange, host: HostView) throws -> [DesiredFile] {
        try paths.compactMap { path in
            guard let text = try host.text(path) else { return nil }
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            let optionIndices = lines.indices.filter { lines[$0].hasPrefix("options ") || lines[$0].hasPrefix("options\t") || lines[$0] == "options" }
            var commandLines: [KernelCommandLine] = []
            for index in optionIndices {
                let value = String(lines[index].dropFirst("options".count)).trimmingCharacters(in: .whitespaces)
                guard !value.contains("$") else {
                    throw ProvisionError(
                        .invalidInput, "the options line refers to a variable (\(value)); provision edits literal options only",
                        at: SourceLocation(file: path, line: index + 1, column: 1))
                }
                commandLines.append(try KernelCommandLine(parsing: value))
            }
            let edited = CommandLineEdit.apply(add: change.add, remove: change.remove, to: commandLines)
            guard edited != commandLines || (optionIndices.isEmpty && !change.add.isEmpty) else { return nil }
            if optionIndices.isEmpty {
                if lines.last == "" { lines.insert("options \(edited[0])", at: lines.count - 1) } else { lines.append("options \(edited[0])") }
            } else {
                for (offset, index) in optionIndices.enumerated() {
                    let separator = lines[index].dropFirst("options".count).prefix { $0 == " " || $0 == "\t" }
                    lines[index] = "options" + (separator.isEmpty ? " " : String(separator)) + edited[offset].description
                }
            }
            return DesiredFile(path: path, state: .present(Data(lines.joined(separator: "\n").utf8)))
        }
    }

    /// /etc/kernel/cmdline: the line kernel-install gives kernels installed from now on. Edited
    /// only when it exists: its presence changes kernel-install's fallback, so it is never created.
    static func editKernelCmdline(_ change: CommandLineChange, host: HostView) throws -> [DesiredFile] {
        let path = "/etc/kernel/cmdline"
        guard let text = try host.text(path) else { return [] }
        let current = try KernelCommandLine(parsing: text)
        let edited = CommandLineEdit.apply(add: change.add, remove: change.remove, to: [current])[0]
        guard edited != current else { return [] }
        return [DesiredFile(path: path, state: .present(Data((edited.description + "\n").utf8)))]
    }
}
