import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// GRUB: the command-line variable in /etc/default/grub, or in /etc/default/grub.d/*.cfg where that
/// is where it is last set (grub-mkconfig sources them after the main file). Values that only a
/// shell could evaluate are refused, not mangled. Regenerates grub.cfg with whatever the root has.
struct Grub: BootLoaderAdapter {
    static let main = "/etc/default/grub"

    let name = "grub"
    let title = "GRUB"

    func detect(_ host: HostView) -> String? { BootLoader.grubConfig(host).map { "GRUB (found \($0))" } }

    func plan(_ change: CommandLineChange, step: StepContext) throws -> CommandLinePlan {
        try plan(change, variable: try step.options.string("variable", default: "GRUB_CMDLINE_LINUX_DEFAULT"), host: step.host)
    }

    static func files(_ host: HostView) -> [String] {
        [main] + host.list("/etc/default/grub.d").filter { $0.hasSuffix(".cfg") }.map { "/etc/default/grub.d/\($0)" }
    }

    func plan(_ change: CommandLineChange, variable: String, host: HostView) throws -> CommandLinePlan {
        var located: (path: String, text: String, assignment: ShellAssignment)?
        for path in Self.files(host) {
            guard let text = try host.text(path) else { continue }
            if let assignment = try ShellAssignment.last(variable, in: text, file: path) { located = (path, text, assignment) }
        }
        var plan = CommandLinePlan()
        let path: String
        let newText: String
        if let (foundPath, text, assignment) = located {
            let current = try KernelCommandLine(parsing: assignment.value)
            let edited = CommandLineEdit.apply(add: change.add, remove: change.remove, to: [current])[0]
            guard edited != current else { return plan }
            path = foundPath
            newText = assignment.replacing(in: text, with: edited.description)
        } else {
            guard let text = try host.text(Self.main) else {
                throw ProvisionError.missing(Self.main)
            }
            let edited = CommandLineEdit.apply(add: change.add, remove: [], to: [])[0]
            guard !edited.tokens.isEmpty else { return plan }
            path = Self.main
            newText = text + (text.hasSuffix("\n") || text.isEmpty ? "" : "\n") + "\(variable)=\"\(edited)\"\n"
            plan.notices.append(Notice(.info, "\(variable) was not set; added it to \(Self.main)"))
        }
        plan.files = [DesiredFile(path: path, state: .present(Data(newText.utf8)))]
        plan.handlers = [HandlerAction(argv: Self.regenerate(host), notifiedBy: [path], needsMounts: ["/dev", "/proc", "/sys"])]
        return plan
    }

    /// update-grub (Debian, Ubuntu), grub2-mkconfig (Fedora and friends) or grub-mkconfig.
    static func regenerate(_ host: HostView) -> [String] {
        if ["/usr/sbin/update-grub", "/usr/bin/update-grub"].contains(where: host.exists) { return ["update-grub"] }
        if ["/usr/sbin/grub2-mkconfig", "/usr/bin/grub2-mkconfig"].contains(where: host.exists) || host.isDirectory("/boot/grub2") {
            return ["grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"]
        }
        return ["grub-mkconfig", "-o", "/boot/grub/grub.cfg"]
    }
}
