import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// The change a step wants on the kernel command line.
public struct CommandLineChange: Sendable {
    public var add: [String]
    public var remove: [String]

    public init(add: [String], remove: [String]) {
        self.add = add
        self.remove = remove
    }
}

/// What an adapter decided: files, the command that makes the change take effect, and notes.
public struct CommandLinePlan: Sendable {
    public var files: [DesiredFile] = []
    public var handlers: [HandlerAction] = []
    public var notices: [Notice] = []

    public init(files: [DesiredFile] = [], handlers: [HandlerAction] = [], notices: [Notice] = []) {
        self.files = files
        self.handlers = handlers
        self.notices = notices
    }
}

/// A boot loader provision edits the kernel command line of. One file per loader; the table
/// below lists them, so the `bootloader:` choices, the detection order and the help text all come
/// from one place.
public protocol BootLoaderAdapter: Sendable {
    /// The word recipes use (`bootloader: grub`).
    var name: String { get }
    /// How people call it in help text ("GRUB").
    var title: String { get }
    /// Whether the root boots with this loader, judged by what the loader itself reads (ESP
    /// contents, loader entries, its configuration), not by installed packages: the evidence, or nil.
    func detect(_ host: HostView) -> String?
    /// The files to edit and the command that makes the change take effect.
    func plan(_ change: CommandLineChange, step: StepContext) throws -> CommandLinePlan
}

/// Every boot loader, in detection order: the first whose evidence is found wins, so loaders that
/// sit on top of another (kernelstub writes systemd-boot entries, BLS is GRUB reading entries) come
/// before it.
public let bootLoaders: [any BootLoaderAdapter] = [Kernelstub(), BLS(), SystemdBoot(), Limine(), Grub()]

public enum BootLoader {
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

    /// "GRUB, systemd-boot, BLS, kernelstub, Limine": for summaries and help.
    public static var titles: String { bootLoaders.map(\.title).joined(separator: ", ") }

    public static func adapter(named name: String) -> (any BootLoaderAdapter)? { bootLoaders.first { $0.name == name } }

    public static func resolve(_ requested: String, host: HostView, at location: SourceLocation) throws -> (any BootLoaderAdapter, String) {
        if requested != "auto" {
            guard let loader = adapter(named: requested) else {
                throw ProvisionError(.invalidInput, "unknown boot loader \"\(requested)\"", at: location)
            }
            return (loader, "\(requested) as asked")
        }
        for loader in bootLoaders {
            if let evidence = loader.detect(host) { return (loader, evidence) }
        }
        throw ProvisionError(
            .invalidInput,
            "no boot loader detected in the root (looked for \(titles)); name one with bootloader:",
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
