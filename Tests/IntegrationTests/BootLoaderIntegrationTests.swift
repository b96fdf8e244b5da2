import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// Boot-loader handlers judged by the real tools in debootstrapped Debian 12 roots: grub-mkconfig
/// is skipped with the reason until /dev, /proc and /sys are mounted inside the root, then runs
/// there (for kernel.cmdline and for hugepages at boot); kernel-install gives a newly added kernel the
/// line provision wrote to /etc/kernel/cmdline.
@Suite(.serialized) struct BootLoaderIntegrationTests {
    func root(_ name: String) throws -> TempRoot? { try debootstrappedRoot(name) }

    func recipe(_ root: TempRoot, _ tokens: [String]) throws -> String {
        try root.write("/tmp/cmdline.yaml", "name: cmdline\nsteps:\n  - {id: cmdline, uses: kernel.cmdline, with: {add: [\(tokens.joined(separator: ", "))]}}\n")
        return root.real("/tmp/cmdline.yaml")
    }

    func handler(_ output: String) throws -> [String: Any] {
        let handlers = try #require(try CLI.json(output)["handlers"] as? [[String: Any]])
        return try #require(handlers.first)
    }

    @Test func grubMkconfigRunsInsideTheRootOnlyWithItsMounts() throws {
        guard let root = try root("bookworm-grub") else { return }
        // What an installed GRUB leaves behind: its config input and a generated grub.cfg.
        try root.write("/etc/default/grub", try String(contentsOfFile: Package.path("snapshots/debian/etc/default/grub"), encoding: .utf8))
        try root.write("/boot/grub/grub.cfg", "# written by grub-mkconfig at install time\n")

        let first = try CLI.run(["apply", try recipe(root, ["iommu=pt"]), "--root", root.path, "--json"])
        #expect(first.status == 0, "\(first.stderr)")
        let skipped = try handler(first.stdout)
        #expect(skipped["argv"] as? [String] == ["grub-mkconfig", "-o", "/boot/grub/grub.cfg"])
        #expect(skipped["status"] as? String == "skipped")
        #expect((skipped["detail"] as? String)?.contains("needs /dev, /proc, /sys mounted inside") == true)

        var mounted: [String] = []
        defer { for point in mounted.reversed() { _ = try? ProcessRunner.run(["umount", "-l", point]) } }
        for (source, target, type) in [("/dev", "/dev", "--bind"), ("proc", "/proc", "proc"), ("sysfs", "/sys", "sysfs")] {
            let arguments = type == "--bind" ? ["mount", "--bind", source, root.real(target)] : ["mount", "-t", type, source, root.real(target)]
            let result = try ProcessRunner.run(arguments)
            try #require(result.status == 0, "\(result.output)")
            mounted.append(root.real(target))
        }
        let second = try CLI.run(["apply", try recipe(root, ["iommu=pt", "intel_iommu=on"]), "--root", root.path, "--json"])
        #expect(second.status == 0, "\(second.stderr)")
        let ran = try handler(second.stdout)
        #expect(ran["status"] as? String == "ran", "\(ran)")
        let config = root.read("/boot/grub/grub.cfg") ?? ""
        #expect(config.contains("quiet iommu=pt intel_iommu=on"), "grub-mkconfig wrote the new line into grub.cfg")

        // hugepages goes through the same adapter, and grub-mkconfig writes its parameters too.
        try root.write("/tmp/pages.yaml", "name: pages\nsteps:\n  - {uses: hugepages, with: {count: 512, size: 2M}}\n")
        let pages = try CLI.run(["apply", root.real("/tmp/pages.yaml"), "--root", root.path, "--json"])
        #expect(pages.status == 0, "\(pages.stderr)")
        #expect(try handler(pages.stdout)["status"] as? String == "ran")
        #expect(
            root.read("/boot/grub/grub.cfg")?.contains("quiet iommu=pt intel_iommu=on default_hugepagesz=2M hugepagesz=2M hugepages=512") == true,
            "grub-mkconfig wrote the pages into grub.cfg")
    }

    @Test func kernelInstallGivesNewKernelsTheEtcKernelCmdline() throws {
        guard let root = try root("bookworm-dracut") else { return }
        let release = try #require(try FileManager.default.contentsOfDirectory(atPath: root.real("/usr/lib/modules")).first)
        let machineID = "0f3c5e7a9b1d4f6a8c0e2b4d6f8a0c2e"
        try root.write("/etc/machine-id", machineID + "\n")
        try root.write("/boot/efi/loader/loader.conf", "timeout 3\n")
        // What `bootctl install` leaves on the ESP: the loader and the entry-token directory, which
        // tells kernel-install to use the BLS layout.
        for directory in ["/boot/efi/loader/entries", "/boot/efi/\(machineID)"] {
            try FileManager.default.createDirectory(atPath: root.real(directory), withIntermediateDirectories: true)
        }
        try root.write("/etc/kernel/cmdline", "root=/dev/vda1 ro quiet\n")

        let apply = try CLI.run(["apply", try recipe(root, ["iommu=pt", "intel_iommu=on"]), "--root", root.path])
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(apply.stdout.contains("boot loader: systemd-boot (found /boot/efi/loader)"))
        #expect(root.read("/etc/kernel/cmdline") == "root=/dev/vda1 ro quiet iommu=pt intel_iommu=on\n")

        let install = try ProcessRunner.run(
            ["chroot", root.path, "kernel-install", "add", release, "/boot/vmlinuz-\(release)"],
            environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"])
        #expect(install.status == 0, "\(install.output)")
        let entry = root.read("/boot/efi/loader/entries/\(machineID)-\(release).conf") ?? ""
        #expect(entry.contains("root=/dev/vda1 ro quiet iommu=pt intel_iommu=on"), "\(entry)")
    }
}
