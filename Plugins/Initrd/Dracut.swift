import Foundation
import ProvisionPluginAPI

/// dracut: a drop-in in /etc/dracut.conf.d (the `.conf` ending matters: dracut ignores anything
/// else) that force-loads the vfio drivers. dracut copies /etc/modprobe.d into the image only in
/// hostonly mode (Debian's default is not), so the drop-in also names the modprobe.d files that
/// configure vfio, or the ids would never reach the image. The command line also needs
/// `rd.driver.pre=vfio-pci`, which this step exports for the kernel command-line step.
struct Dracut: InitrdGenerator {
    static let directory = "/etc/dracut.conf.d"

    let name = "dracut"
    let programs = ["/usr/bin/dracut", "/usr/sbin/dracut"]
    let dataDirectories = ["/usr/lib/dracut"]
    let rebuild = ["dracut", "--regenerate-all", "--force"]
    let commandLine = ["rd.driver.pre=vfio-pci"]
    let listingTool = "lsinitrd"

    func imageNames(release: String, host: HostView) -> [String] {
        ["/boot/initramfs-\(release).img"] + InitrdGenerators.kernelInstallImages(release: release, host: host)
    }

    /// dracut.conf, then its drop-ins (only `.conf` files are read).
    func configFiles(_ host: HostView) -> [String] {
        ["/etc/dracut.conf"] + host.list(Self.directory).filter { $0.hasSuffix(".conf") }.map { "\(Self.directory)/\($0)" }
    }

    func plan(modules: [String], present: Bool, inventory: KernelInventory, step: StepContext) throws -> InitrdPlan {
        let options = step.options
        let dropin = try Self.dropinPath(try options.string("dropin", default: "vfio"), at: options.location(of: "dropin"))
        return InitrdPlan(files: plan(modules: modules, present: present, dropin: dropin, host: step.host))
    }

    static func dropinPath(_ name: String, at location: SourceLocation) throws -> String {
        let base = name.hasSuffix(".conf") ? String(name.dropLast(5)) : name
        guard !base.isEmpty, !base.contains("/"), !base.hasPrefix(".") else {
            throw ProvisionError(.invalidInput, "dropin must be a plain file name, got \"\(name)\"", at: location)
        }
        return "\(directory)/\(base).conf"
    }

    /// modprobe.d files (as the earlier steps leave them) that configure vfio.
    static func vfioModprobeFiles(_ host: HostView) -> [String] {
        host.list("/etc/modprobe.d").filter { $0.hasSuffix(".conf") }.map { "/etc/modprobe.d/\($0)" }.filter { path in
            ((try? host.text(path)) ?? nil)?.replacingOccurrences(of: "-", with: "_").contains("vfio_pci") ?? false
        }
    }

    func plan(modules: [String], present: Bool, dropin: String, host: HostView) -> [DesiredFile] {
        guard present else { return [DesiredFile(path: dropin, state: .absent)] }
        guard !modules.isEmpty else { return [] }
        // Spaces inside the quotes: dracut concatenates += values as they are.
        var text = """
            # Written by provision (initrd.modules): bind the passthrough GPU to vfio-pci before any GPU driver.
            force_drivers+=" \(modules.joined(separator: " ")) "

            """
        let modprobe = Self.vfioModprobeFiles(host)
        if !modprobe.isEmpty {
            text += """
                # The vfio-pci ids and softdeps, even when dracut is not in hostonly mode.
                install_items+=" \(modprobe.joined(separator: " ")) "

                """
        }
        return [DesiredFile(path: dropin, state: .present(Data(text.utf8), mode: 0o644))]
    }
}
