import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// GRUB with BLS entries (Fedora, RHEL): three places kept in sync: the `options` of every entry in
/// /boot/loader/entries (what boots now), /etc/kernel/cmdline if it exists (what kernel-install
/// gives new kernels), and GRUB_CMDLINE_LINUX in /etc/default/grub (what grub2-mkconfig and
/// grubby fall back to).
struct BLS: BootLoaderAdapter {
    let name = "bls"
    let title = "BLS"

    func detect(_ host: HostView) -> String? {
        let entries = BootLoader.entries(host, in: "/boot/loader/entries")
        guard let config = BootLoader.grubConfig(host), !entries.isEmpty, BootLoader.blsEnabled(host) else { return nil }
        return "GRUB with BLS entries (found \(config), \(entries.count) entries in /boot/loader/entries, GRUB_ENABLE_BLSCFG=true)"
    }

    func plan(_ change: CommandLineChange, step: StepContext) throws -> CommandLinePlan {
        let host = step.host
        let entries = BootLoader.entries(host, in: "/boot/loader/entries")
        var plan = CommandLinePlan()
        plan.files = try LoaderEntries.edit(entries, change: change, host: host) + LoaderEntries.editKernelCmdline(change, host: host)
        if host.exists(Grub.main) {
            let grub = try Grub().plan(change, variable: "GRUB_CMDLINE_LINUX", host: host)
            plan.files += grub.files
            plan.notices += grub.notices
        }
        return plan
    }
}
