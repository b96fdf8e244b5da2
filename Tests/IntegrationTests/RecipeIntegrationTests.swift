import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// The whole recipe, end to end, on a real Debian 12 system (debootstrapped: initramfs-tools,
/// GRUB, its own passwd/shadow) dressed with the Debian snapshot's hardware (sys/, proc/, input
/// devices) and libvirt files: apply, the rebuilt initramfs really holds the vfio modules
/// (lsinitramfs), `verify` judges the "booted" root, and rollback takes it all back.
@Suite(.serialized) struct RecipeIntegrationTests {
    @Test func debianEndToEnd() throws {
        guard let root = try debootstrappedRoot("bookworm-grub") else { return }
        let snapshot = Package.path("snapshots/debian")
        for path in ["/sys", "/proc", "/dev/input", "/etc/libvirt"] {
            try? FileManager.default.removeItem(atPath: root.real(path))
            let copy = try ProcessRunner.run(["cp", "-a", snapshot + path, root.real(path)])
            try #require(copy.status == 0, "\(copy.output)")
        }
        try root.write("/etc/default/grub", try String(contentsOfFile: snapshot + "/etc/default/grub", encoding: .utf8))
        try root.write("/boot/grub/grub.cfg", "# written by grub-mkconfig at install time\n")
        let release = try #require(try FileManager.default.contentsOfDirectory(atPath: root.real("/usr/lib/modules")).first)
        let image = "/boot/initrd.img-\(release)"
        func lsinitramfs() throws -> [Substring] {
            let result = try ProcessRunner.run(["chroot", root.path, "lsinitramfs", image], environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
            try #require(result.status == 0, "\(result.output)")
            return result.output.split(separator: "\n")
        }
        #expect(!(try lsinitramfs()).contains { $0.hasSuffix("/vfio-pci.ko") }, "the stock image has no vfio-pci")

        let recipe = Package.path("recipes/vfio-passthrough.yaml")
        // What the run will touch, as it was (a whole system is too big to fingerprint).
        let plan = try CLI.run(["plan", recipe, "--root", root.path, "--var", "allow_shared_group=true", "--json"])
        try #require(plan.status == 0, "\(plan.stderr)")
        let touched = try #require(try CLI.json(plan.stdout)["files"] as? [[String: Any]]).compactMap { $0["path"] as? String }
        #expect(touched.contains("/etc/shadow") && touched.contains("/etc/initramfs-tools/modules"), "\(touched)")
        func state(_ path: String) -> String {
            var info = stat()
            guard lstat(root.real(path), &info) == 0 else { return "absent" }
            return String(format: "%o %d:%d ", info.st_mode, info.st_uid, info.st_gid) + (root.read(path) ?? "")
        }
        let before = Dictionary(uniqueKeysWithValues: touched.map { ($0, state($0)) })

        let apply = try CLI.run(["apply", recipe, "--root", root.path, "--var", "allow_shared_group=true", "--json"])
        try #require(apply.status == 0, "\(apply.stderr)")
        let handlers = try #require(try CLI.json(apply.stdout)["handlers"] as? [[String: Any]])
        let byCommand = Dictionary(uniqueKeysWithValues: handlers.map { (($0["argv"] as? [String])?.first ?? "", $0["status"] as? String ?? "") })
        #expect(byCommand["update-initramfs"] == "ran", "\(handlers)")
        #expect(byCommand["grub-mkconfig"] == "skipped", "no /dev, /proc, /sys mounted in the root")

        let listing = try lsinitramfs()
        for module in ["vfio-pci.ko", "vfio.ko", "vfio_iommu_type1.ko"] {
            #expect(listing.contains { $0.hasSuffix("/\(module)") }, "\(module) in \(image)")
        }
        #expect(listing.contains("etc/modprobe.d/vfio.conf"))
        // The real system's own files were edited, and its tools agree.
        #expect(root.read("/etc/shadow")?.contains("\nvirtual-machine:!") == true || root.read("/etc/shadow")?.contains("\nvirtual-machine:*") == true)
        let id = try ProcessRunner.run(["chroot", root.path, "id", "virtual-machine"])
        #expect(id.output.contains("(input)"), "\(id.output)")

        // "Booted": the command line the recipe set, the card bound to vfio-pci.
        let cmdline = try #require(root.read("/proc/cmdline"))
        try root.write("/proc/cmdline", cmdline.trimmingCharacters(in: .newlines) + " intel_iommu=on iommu=pt\n")
        // The GTX 1050 Ti's functions, and the USB controller that shares its IOMMU group.
        #expect(root.read("/etc/driverctl.d/pci-0000:02:00.0") == "vfio-pci\n")
        for address in ["0000:01:00.0", "0000:01:00.1", "0000:02:00.0"] {
            let link = root.real("/sys/bus/pci/devices/\(address)/driver")
            try FileManager.default.removeItem(atPath: link)
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "../../../../bus/pci/drivers/vfio-pci")
        }
        let verify = try CLI.run(["verify", "--root", root.path, "--json"])
        #expect(verify.status == 0, "\(verify.stdout)")
        let checks = try #require(try CLI.json(verify.stdout)["checks"] as? [[String: Any]])
        #expect(checks.map { $0["status"] as? String } == ["pass", "pass", "pass", "pass"], "\(checks)")

        let rollback = try CLI.run(["rollback", "--root", root.path])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(rollback.stdout.contains("handler: update-initramfs -u -k all: ran"))
        #expect(!(try lsinitramfs()).contains { $0.hasSuffix("/vfio-pci.ko") }, "the rebuilt image no longer carries vfio-pci")
        let after = try CLI.run(["verify", "--root", root.path, "--json"])
        #expect(after.status == 4)

        // Everything provision wrote is back, byte for byte, with its mode and owner.
        for path in touched { #expect(state(path) == before[path], "\(path) restored") }
    }
}
