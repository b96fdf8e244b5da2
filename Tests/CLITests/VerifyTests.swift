import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// `provision verify` on the Arch snapshot after the recipe was applied, made to look booted: every
/// check passes, then each is made to fail on its own (exit 4, a detail naming the fault, what to
/// do next). The initramfs images are real newc cpio archives, listed by a busybox `cpio -t` in the
/// root standing in for lsinitcpio (the real lsinitramfs runs in the integration suite).
@Suite(.serialized) struct VerifyTests {
    static let images = ["/boot/initramfs-linux.img": "6.8.7-arch1-1", "/boot/initramfs-linux-lts.img": "6.1.87-1-lts"]
    static let vfio = ["vfio.ko.zst", "vfio_iommu_type1.ko.zst", "pci/vfio-pci.ko.zst"]

    /// The Arch snapshot with the recipe applied, booted with it, images holding the vfio modules.
    func bootedRoot() throws -> TempRoot? {
        guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: "/bin/busybox") else { return nil }
        let temp = try TempRoot(copying: "arch")
        let apply = try CLI.run(["apply", Package.path("recipes/vfio-passthrough.yaml"), "--root", temp.path])
        try #require(apply.status == 0, "\(apply.stderr)")
        try temp.write("/proc/cmdline", "BOOT_IMAGE=/vmlinuz-linux root=UUID=6b1f8c6e rw loglevel=3 quiet intel_iommu=on iommu=pt\n")
        for address in ["0000:01:00.0", "0000:01:00.1"] { try bind(temp, address, to: "vfio-pci") }
        for (image, release) in Self.images { try writeImage(temp, image, release: release, modules: Self.vfio) }
        try FileManager.default.createDirectory(atPath: temp.real("/usr/bin"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: temp.real("/usr/bin/busybox"))
        for applet in ["sh", "cpio"] { try FileManager.default.createSymbolicLink(atPath: temp.real("/usr/bin/\(applet)"), withDestinationPath: "busybox") }
        try temp.write("/usr/bin/lsinitcpio", "#!/usr/bin/sh\nexec cpio -t < \"$1\"\n", mode: 0o755)
        return temp
    }

    func bind(_ temp: TempRoot, _ address: String, to driver: String) throws {
        let link = temp.real("/sys/bus/pci/devices/\(address)/driver")
        try FileManager.default.removeItem(atPath: link)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "../../../../bus/pci/drivers/\(driver)")
    }

    /// A newc cpio archive (what every initramfs generator writes) holding the given modules.
    func writeImage(_ temp: TempRoot, _ image: String, release: String, modules: [String]) throws {
        var archive = Data()
        func entry(_ name: String, mode: Int, content: Data = Data()) {
            let fields = [1, mode, 0, 0, 1, 0, content.count, 0, 0, 0, 0, name.utf8.count + 1, 0]
            archive += Data(("070701" + fields.map { String(format: "%08X", $0) }.joined()).utf8)
            archive += Data(name.utf8) + Data([0])
            while archive.count % 4 != 0 { archive.append(0) }
            archive += content
            while archive.count % 4 != 0 { archive.append(0) }
        }
        entry("usr/lib/modules/\(release)/kernel/drivers/vfio", mode: 0o040755)
        for module in modules { entry("usr/lib/modules/\(release)/kernel/drivers/vfio/\(module)", mode: 0o100644, content: Data("ko".utf8)) }
        entry("TRAILER!!!", mode: 0)
        try FileManager.default.createDirectory(atPath: temp.real("/boot"), withIntermediateDirectories: true)
        try archive.write(to: URL(fileURLWithPath: temp.real(image)))
    }

    func verify(_ temp: TempRoot) throws -> (status: Int32, checks: [String: [String: Any]], document: [String: Any]) {
        let result = try CLI.run(["verify", "--root", temp.path, "--json"])
        let document = try CLI.json(result.stdout)
        let checks = try #require(document["checks"] as? [[String: Any]])
        return (result.status, Dictionary(uniqueKeysWithValues: checks.map { ($0["name"] as! String, $0) }), document)
    }

    @Test func passesOnABootedHost() throws {
        guard let temp = try bootedRoot() else { return }
        let (status, checks, document) = try verify(temp)
        #expect(status == 0)
        #expect(document["expected_from"] as? String == "run 1")
        #expect(document["passed"] as? Bool == true)
        for name in ["iommu", "cmdline", "vfio-pci", "initramfs"] {
            #expect(checks[name]?["status"] as? String == "pass", "\(name): \(checks[name] ?? [:])")
        }
        #expect((checks["initramfs"]?["detail"] as? String)?.contains("/boot/initramfs-linux-lts.img") == true)
        let text = try CLI.run(["verify", "--root", temp.path])
        #expect(text.stdout.contains("PASS  vfio-pci   0000:01:00.0, 0000:01:00.1 bound to vfio-pci"), "\(text.stdout)")
        #expect(text.stdout.hasSuffix("all checks passed\n"))
    }

    @Test func iommuOff() throws {
        guard let temp = try bootedRoot() else { return }
        for directory in ["/sys/kernel/iommu_groups", "/sys/class/iommu"] {
            for entry in try FileManager.default.contentsOfDirectory(atPath: temp.real(directory)) {
                try FileManager.default.removeItem(atPath: temp.real("\(directory)/\(entry)"))
            }
        }
        let (status, checks, _) = try verify(temp)
        #expect(status == 4)
        #expect(checks["iommu"]?["status"] as? String == "fail")
        #expect((checks["iommu"]?["next"] as? String)?.contains("firmware setup") == true)
    }

    @Test func bootedWithoutTheFlags() throws {
        guard let temp = try bootedRoot() else { return }
        try temp.write("/proc/cmdline", "BOOT_IMAGE=/vmlinuz-linux root=UUID=6b1f8c6e rw loglevel=3 quiet\n")
        let (status, checks, _) = try verify(temp)
        #expect(status == 4)
        #expect(checks["cmdline"]?["status"] as? String == "fail")
        #expect(checks["cmdline"]?["detail"] as? String == "the running kernel was booted without intel_iommu=on iommu=pt")
        #expect(checks["iommu"]?["status"] as? String == "pass", "the other checks are unaffected")
    }

    @Test func gpuDriverWonTheRace() throws {
        guard let temp = try bootedRoot() else { return }
        try bind(temp, "0000:01:00.0", to: "nvidia")
        let (status, checks, _) = try verify(temp)
        #expect(status == 4)
        #expect(checks["vfio-pci"]?["detail"] as? String == "0000:01:00.0 is bound to nvidia")
    }

    @Test func imageWithoutTheModulesOrNoImage() throws {
        guard let temp = try bootedRoot() else { return }
        try writeImage(temp, "/boot/initramfs-linux.img", release: "6.8.7-arch1-1", modules: ["vfio.ko.zst"])
        var (status, checks, _) = try verify(temp)
        #expect(status == 4)
        #expect(checks["initramfs"]?["detail"] as? String == "/boot/initramfs-linux.img lacks vfio_pci, vfio_iommu_type1")
        #expect(checks["initramfs"]?["next"] as? String == "rebuild the images (mkinitcpio -P) and reboot")

        try FileManager.default.removeItem(atPath: temp.real("/boot/initramfs-linux.img"))
        (status, checks, _) = try verify(temp)
        #expect(status == 4)
        #expect(checks["initramfs"]?["detail"] as? String == "no initramfs image for 6.8.7-arch1-1")
    }

    @Test func noListingToolIsASkipNotAPass() throws {
        guard let temp = try bootedRoot() else { return }
        let hostTools = ["lsinitramfs", "lsinitrd", "lsinitcpio"].flatMap { ["/usr/bin/\($0)", "/usr/sbin/\($0)"] }
        guard !hostTools.contains(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { return }
        try FileManager.default.removeItem(atPath: temp.real("/usr/bin/lsinitcpio"))
        let (status, checks, _) = try verify(temp)
        #expect(status == 0)
        #expect(checks["initramfs"]?["status"] as? String == "skip")
        #expect((checks["initramfs"]?["detail"] as? String)?.contains("none of lsinitcpio") == true)
    }
}
