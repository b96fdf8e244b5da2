import Foundation
import ProvisionCore
import ProvisionDevices
import ProvisionEdit
import ProvisionInitrd

/// After the reboot: what only a booted host can show. The configuration can be right and the host
/// still wrong (the firmware's IOMMU switch, a boot entry that was not regenerated, a driver that
/// won the race), so each check reads the running state and says what to do when it fails.
public struct Verifier {
    public struct Check: Sendable, Codable {
        public enum Status: String, Sendable, Codable { case pass, fail, skip }
        public var name: String
        public var status: Status
        public var detail: String
        /// What to do next when it did not pass.
        public var next: String?
    }

    /// What the host should show: from the last apply's exports, or worked out from the root.
    public struct Expectations: Sendable {
        public var cmdline: [String]
        public var addresses: [String]
        public var modules: [String]
        /// Where these came from ("run 3" or "the root's devices").
        public var source: String
    }

    public let host: HostView
    let lister: ImageLister

    public init(root: HostRoot) throws {
        host = try HostView(root: root)
        lister = ImageLister(root: root)
    }

    public func expectations(from record: RunRecord?) throws -> Expectations {
        let exports = record?.exports
        func list(_ path: ArraySlice<Substring>) -> [String]? { exports?.lookup(path)?.strings }
        let report = try DeviceReport.read(host)
        // The card's functions and whatever shares its IOMMU group: all of it must be vfio-pci's.
        var addresses = list(["gpu", "addresses"]).map { $0 + (list(["gpu", "group_devices"]) ?? []) }
        if addresses == nil, let gpu = try? report.select("auto") { addresses = (gpu.functions + gpu.groupCompanions).map(\.address) }
        let cmdline = list(["cmdline", "add"]) ?? [report.iommuFlag].compactMap { $0 }
        let modules = list(["initrd", "modules"]) ?? KernelInventory.read(host).vfioModules().modules
        return Expectations(
            cmdline: cmdline, addresses: addresses ?? [], modules: modules,
            source: record.map { "run \($0.run)" } ?? "the root's devices (no apply in history)")
    }

    /// The kernel parameters the apply in effect put on the command line that the running kernel
    /// was booted without: a reboot is pending. Empty when there are none, or when the root has no
    /// /proc/cmdline to tell (a snapshot, a chroot).
    public static func pendingReboot(root: HostRoot, after record: RunRecord?) -> [String] {
        pendingReboot(root: root, exports: record?.exports)
    }

    /// The same for what a plan exports (before its apply is recorded).
    public static func pendingReboot(root: HostRoot, exports: Value?) -> [String] {
        guard let expected = exports?.lookup(["cmdline", "add"])?.strings, !expected.isEmpty,
            let host = try? HostView(root: root), let text = try? host.text("/proc/cmdline"),
            let running = try? KernelCommandLine(parsing: text.trimmingCharacters(in: .whitespacesAndNewlines))
        else { return [] }
        return expected.filter { !running.contains($0) }
    }

    public func run(_ expected: Expectations) -> [Check] {
        [iommu(), commandLine(expected), binding(expected), initramfs(expected)]
    }

    // MARK: checks

    func iommu() -> Check {
        let groups = host.list("/sys/kernel/iommu_groups").count
        let units = SysfsScanner.iommu(host)
        if groups > 0 || !units.isEmpty {
            return Check(name: "iommu", status: .pass, detail: "IOMMU on: \(groups) groups (\(units.joined(separator: ", ")))")
        }
        let flag = (try? DeviceReport.read(host))?.iommuFlag
        return Check(
            name: "iommu", status: .fail, detail: "IOMMU off: no IOMMU groups under /sys/kernel/iommu_groups",
            next: "enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware setup (systemctl reboot --firmware-setup)"
                + (flag.map { ", and check that \($0) is on the kernel command line" } ?? ""))
    }

    func commandLine(_ expected: Expectations) -> Check {
        guard let text = try? host.text("/proc/cmdline") else {
            return Check(name: "cmdline", status: .skip, detail: "no /proc/cmdline in this root (not a booted system)")
        }
        guard let running = try? KernelCommandLine(parsing: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            return Check(name: "cmdline", status: .fail, detail: "/proc/cmdline could not be read as a kernel command line")
        }
        let missing = expected.cmdline.filter { !running.contains($0) }
        guard missing.isEmpty else {
            return Check(
                name: "cmdline", status: .fail, detail: "the running kernel was booted without \(missing.joined(separator: " "))",
                next: "reboot; if they are still missing, the boot entry was not regenerated: run `provision apply` again "
                    + "and check its handler (grub-mkconfig, kernel-install, kernelstub) ran")
        }
        let shown = expected.cmdline.isEmpty ? "nothing required" : expected.cmdline.joined(separator: " ")
        return Check(name: "cmdline", status: .pass, detail: "booted with \(shown)")
    }

    func binding(_ expected: Expectations) -> Check {
        guard !expected.addresses.isEmpty else {
            return Check(
                name: "vfio-pci", status: .fail, detail: "no guest GPU known (no apply in history, and no GPU to choose)",
                next: "run `provision devices`, then apply the recipe")
        }
        let devices = SysfsScanner.scan(host)
        var wrong: [String] = []
        for address in expected.addresses {
            guard let device = devices.first(where: { $0.address == address }) else {
                wrong.append("\(address) is not on the bus")
                continue
            }
            if device.driver != "vfio-pci" { wrong.append("\(address) is bound to \(device.driver ?? "no driver")") }
        }
        guard wrong.isEmpty else {
            return Check(
                name: "vfio-pci", status: .fail, detail: wrong.joined(separator: "; "),
                next: "another driver won the race: check that the initramfs holds the vfio modules and the softdeps "
                    + "(modprobe.d), that vfio-pci.ids= or the driverctl override names the card, then reboot")
        }
        return Check(name: "vfio-pci", status: .pass, detail: "\(expected.addresses.joined(separator: ", ")) bound to vfio-pci")
    }

    func initramfs(_ expected: Expectations) -> Check {
        let inventory = KernelInventory.read(host)
        guard !inventory.kernels.isEmpty else { return Check(name: "initramfs", status: .skip, detail: "no kernels in /lib/modules") }
        let generator = try? InitrdGenerators.resolve("auto", host: host, at: SourceLocation(file: "verify", line: 1, column: 1)).0
        var problems: [String] = []
        var checked: [String] = []
        var skipped: [String] = []
        for kernel in inventory.kernels {
            let release = kernel.version.release
            let wanted = expected.modules.filter { !kernel.builtin.contains(ModuleName.normalized($0)) }
            guard let image = imagePath(release, preferring: generator) else {
                problems.append("no initramfs image for \(release)")
                continue
            }
            guard !wanted.isEmpty else {
                checked.append("\(image) (vfio built in)")
                continue
            }
            switch lister.list(image, preferring: generator) {
            case .failure(let reason):
                skipped.append("\(image): \(reason)")
            case .success(let listing):
                let inside = Set(listing.compactMap(Self.moduleName))
                let absent = wanted.filter { !inside.contains(ModuleName.normalized($0)) }
                if absent.isEmpty { checked.append(image) } else { problems.append("\(image) lacks \(absent.joined(separator: ", "))") }
            }
        }
        if !problems.isEmpty {
            return Check(
                name: "initramfs", status: .fail, detail: problems.joined(separator: "; "),
                next: "rebuild the images (\((generator?.rebuild ?? ["update-initramfs", "-u", "-k", "all"]).joined(separator: " "))) and reboot")
        }
        if checked.isEmpty {
            return Check(name: "initramfs", status: .skip, detail: skipped.joined(separator: "; "), next: "install the generator's listing tool")
        }
        let wanted = expected.modules.joined(separator: ", ")
        return Check(
            name: "initramfs", status: .pass,
            detail: "\(wanted.isEmpty ? "nothing to load" : wanted) in \(checked.joined(separator: ", "))"
                + (skipped.isEmpty ? "" : "; not checked: \(skipped.joined(separator: "; "))"))
    }

    /// The image the boot loader loads for a kernel: by the naming of the root's generator first,
    /// then of every other generator (an image left by a previous one still boots).
    func imagePath(_ release: String, preferring generator: (any InitrdGenerator)?) -> String? {
        let ordered = (generator.map { [$0] } ?? []) + initrdGenerators.filter { $0.name != generator?.name }
        return ordered.flatMap { $0.imageNames(release: release, host: host) }.first { host.exists($0) }
    }

    /// "usr/lib/modules/6.1.0-18-amd64/kernel/drivers/vfio/pci/vfio-pci.ko.xz" -> vfio_pci. The
    /// last field, so `ls -l`-style listings (lsinitrd) read the same.
    static func moduleName(_ line: Substring) -> String? {
        guard let path = line.split(separator: " ").last, let file = path.split(separator: "/").last, file.contains(".ko"),
            let dot = file.firstIndex(of: ".")
        else { return nil }
        return ModuleName.normalized(String(file[..<dot]))
    }
}

/// Lists an initramfs image with the tool its generator ships: the host's own when it has one
/// (they all read any cpio image), otherwise the root's, through chroot.
struct ImageLister {
    let root: HostRoot

    func list(_ image: String, preferring generator: (any InitrdGenerator)?) -> Result<[Substring], ListingError> {
        var names = initrdGenerators.map(\.listingTool).sorted()
        if let preferred = generator?.listingTool { names = [preferred] + names.filter { $0 != preferred } }
        var argv: [String]?
        for name in names {
            if let tool = Tools.onHost(name) {
                argv = [tool, root.real(image)]
                break
            }
            if !root.isLiveHost, geteuid() == 0, let tool = root.tool(name) {
                argv = ["chroot", root.path, tool, image]
                break
            }
        }
        guard let argv else { return .failure(ListingError("none of \(names.joined(separator: ", ")) is installed")) }
        do {
            let result = try ProcessRunner.run(argv, environment: Tools.environment)
            guard result.status == 0 else { return .failure(ListingError("\(argv.joined(separator: " ")) failed: \(result.output.suffix(300))")) }
            return .success(result.output.split(separator: "\n"))
        } catch {
            return .failure(ListingError("\(error)"))
        }
    }

    struct ListingError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
