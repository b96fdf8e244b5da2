import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// systemd-boot: the `options` lines of every entry in the ESP's loader/entries, and
/// /etc/kernel/cmdline when it exists so kernels installed later get the same line. Entries are
/// read at boot: nothing to regenerate.
struct SystemdBoot: BootLoaderAdapter {
    let name = "systemd-boot"
    let title = "systemd-boot"

    func detect(_ host: HostView) -> String? { BootLoader.systemdBootESP(host).map { "systemd-boot (found \($0)/loader)" } }

    func plan(_ change: CommandLineChange, step: StepContext) throws -> CommandLinePlan {
        let host = step.host
        guard let esp = BootLoader.systemdBootESP(host) else {
            throw ProvisionError(.notFound, "no systemd-boot ESP (loader/loader.conf on /efi, /boot/efi or /boot) in the root")
        }
        let entries = BootLoader.entries(host, in: "\(esp)/loader/entries")
        var plan = CommandLinePlan()
        plan.files = try LoaderEntries.edit(entries, change: change, host: host) + LoaderEntries.editKernelCmdline(change, host: host)
        if entries.isEmpty {
            plan.notices.append(Notice(.warning, "\(esp)/loader/entries has no entries; only /etc/kernel/cmdline (if present) was edited"))
        }
        if !host.list("\(esp)/EFI/Linux").filter({ $0.hasSuffix(".efi") }).isEmpty {
            plan.notices.append(Notice(
                .warning, "\(esp)/EFI/Linux holds unified kernel images, which carry their own command line: rebuild them (kernel-install or your UKI tool) after this run"))
        }
        return plan
    }
}
