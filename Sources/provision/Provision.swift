import ArgumentParser
import Foundation
import CSystem
import ProvisionCore

#if canImport(Glibc)
import Glibc
#endif

struct Provision: ParsableCommand {
    /// The arguments the kernel passed (see provision_argv): the static build's runtime would
    /// otherwise read them from /proc, absent in a bare chroot.
    static var arguments: [String] {
        let count = Int(provision_argc())
        guard count > 0, let argv = provision_argv() else { return Array(CommandLine.arguments.dropFirst()) }
        return (1..<count).compactMap { argv[$0].map { String(cString: $0) } }
    }

    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Idempotent host configuration with a git history of every file it touches.",
        discussion: """
            Recipes (YAML) list steps; `plan` shows what `apply` would change, `apply` changes it and records every \
            touched file in a git history under ROOT/var/lib/provision/history.git, and `rollback` undoes a run. \
            With --json every command prints one JSON document on stdout, errors included, each with a "schema" field.

            EXIT STATUS
              0   success (plan: with --detailed-exitcode, nothing to change)
              1   error; nothing was half-written (a failed handler: files written and recorded, the next apply runs it again)
              2   plan --detailed-exitcode (and apply --check): there are changes to apply
              3   refused or found drift: rollback of a file changed since, status of a drifted host
              4   verify: a check failed
              64  usage error: unknown option, bad value (a --var a recipe refuses, --color=maybe)

            EXAMPLES
              provision plan recipes/vfio-passthrough.yaml --root /mnt/host
              provision apply recipes/vfio-passthrough.yaml --var allow_shared_group=true
              provision apply recipes/vfio-passthrough.yaml --var-file host.yaml --step kernel-cmdline
              provision history etc/default/grub
              provision rollback --dry-run
              provision status --json | jq .drift

            ENVIRONMENT
              NO_COLOR   when set and not empty, no colour (unless --color=always)
              PAGER      the pager for long output on a terminal (show, diff, blame, history); default less, with LESS=FRX
            """,
        version: provisionVersion,
        subcommands: [
            PlanCommand.self, ApplyCommand.self, RollbackCommand.self, HistoryCommand.self, ShowCommand.self, DiffCommand.self,
            BlameCommand.self, StatusCommand.self, ExportCommand.self, DevicesCommand.self, VerifyCommand.self, RomCommand.self,
            PluginsCommand.self, PluginCommand.self, FleetCommand.self,
        ])
}

/// Runs the command line; with --json, a command line the parser refuses is a JSON document too.
@main enum Main {
    static func main() {
        let arguments = Provision.arguments
        do {
            var command = try Provision.parseAsRoot(arguments)
            try command.run()
        } catch {
            let code = Provision.exitCode(for: error)
            let json = !arguments.contains("---completion") && arguments.prefix { $0 != "--" }.contains("--json")
            if json, !(error is ExitCode), code != .success {
                // A command that failed under runReporting has printed its document already.
                Output.printJSON(ErrorDocument(usage: Provision.message(for: error), exitCode: code.rawValue))
            }
            Provision.exit(withError: error)
        }
    }
}
