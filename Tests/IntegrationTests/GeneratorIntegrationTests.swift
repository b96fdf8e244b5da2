import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// The real generators judge the edits: in Debian 12 roots made by debootstrap
/// (scripts/make-test-roots.sh), `provision apply` runs update-initramfs or dracut inside the root,
/// the image then holds the vfio modules and modprobe.d/vfio.conf, and `provision rollback`
/// rebuilds it without them.
/// A fresh copy of a root built by scripts/make-test-roots.sh, or nil when it is missing (an issue
/// in CI, where the script runs first).
func debootstrappedRoot(_ name: String) throws -> TempRoot? {
    let roots = ProcessInfo.processInfo.environment["PROVISION_TEST_ROOTS"] ?? "/var/cache/provision-tests"
    let path = "\(roots)/\(name)"
    guard FileManager.default.fileExists(atPath: path + "/.complete") else {
        if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("\(path) is missing: scripts/make-test-roots.sh builds it") }
        return nil
    }
    return try TempRoot(copyingDirectory: path)
}

/// `provision apply RECIPE --root ROOT --json`, checked to succeed; the handlers it reports.
func applyReportingHandlers(_ recipe: String, in root: TempRoot) throws -> [[String: Any]] {
    let apply = try CLI.run(["apply", recipe, "--root", root.path, "--json"])
    #expect(apply.status == 0, "\(apply.stderr)")
    return try #require(try CLI.json(apply.stdout)["handlers"] as? [[String: Any]])
}

@Suite(.serialized) struct GeneratorIntegrationTests {
    static let ids = "10de:1b80,10de:10f0"

    func root(_ name: String) throws -> TempRoot? { try debootstrappedRoot(name) }

    func inRoot(_ root: TempRoot, _ argv: String...) throws -> String {
        let result = try ProcessRunner.run(["chroot", root.path] + argv, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"])
        guard result.status == 0 else { throw ProvisionError(.io, "chroot \(argv) failed: \(result.output)") }
        return result.output
    }

    func kernel(_ root: TempRoot) throws -> String {
        let releases = try FileManager.default.contentsOfDirectory(atPath: root.real("/usr/lib/modules"))
        return try #require(releases.first)
    }

    func recipe(_ root: TempRoot) throws -> String {
        try root.write("/tmp/vfio.yaml", """
            name: vfio-initramfs
            steps:
              - {id: modprobe, uses: modprobe.vfio, with: {ids: "\(Self.ids)"}}
              - {id: initramfs, uses: initrd.modules}
            """)
        return root.real("/tmp/vfio.yaml")
    }

    @Test func updateInitramfsBuildsVfioIntoTheImage() throws {
        guard let root = try root("bookworm-initramfs-tools") else { return }
        let release = try kernel(root)
        let image = "/boot/initrd.img-\(release)"
        let handlers = try applyReportingHandlers(try recipe(root), in: root)
        #expect(handlers.map { $0["argv"] as? [String] } == [["update-initramfs", "-u", "-k", "all"]])
        #expect(handlers.map { $0["status"] as? String } == ["ran"], "\(handlers)")
        #expect(root.read("/etc/initramfs-tools/modules")?.hasSuffix("vfio_pci\nvfio\nvfio_iommu_type1\nvfio_virqfd\n") == true)

        let listing = try inRoot(root, "lsinitramfs", image)
        for module in ["vfio-pci.ko", "vfio.ko", "vfio_iommu_type1.ko"] {
            #expect(listing.contains("/\(module)"), "\(module) in \(image)")
        }
        #expect(listing.split(separator: "\n").contains("etc/modprobe.d/vfio.conf"))
        #expect(try inRoot(root, "modprobe", "-c").contains("options vfio_pci ids=\(Self.ids)"))

        let rollback = try CLI.run(["rollback", "--root", root.path])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(rollback.stdout.contains("handler: update-initramfs -u -k all: ran"))
        let after = try inRoot(root, "lsinitramfs", image)
        #expect(!after.split(separator: "\n").contains("etc/modprobe.d/vfio.conf"))
        #expect(!after.contains("/vfio-pci.ko"))
    }

    @Test func dracutBuildsVfioIntoTheImage() throws {
        guard let root = try root("bookworm-dracut") else { return }
        let release = try kernel(root)
        let image = "/boot/initrd.img-\(release)"
        let handlers = try applyReportingHandlers(try recipe(root), in: root)
        #expect(handlers.map { $0["argv"] as? [String] } == [["dracut", "--regenerate-all", "--force"]])
        #expect(handlers.map { $0["status"] as? String } == ["ran"], "\(handlers)")
        #expect(root.read("/etc/dracut.conf.d/vfio.conf")?.contains("force_drivers+=\" vfio_pci vfio vfio_iommu_type1 vfio_virqfd \"") == true)

        let listing = try inRoot(root, "lsinitrd", image)
        for module in ["vfio-pci.ko", "vfio.ko", "vfio_iommu_type1.ko"] {
            #expect(listing.contains("/\(module)"), "\(module) in \(image)")
        }
        #expect(listing.contains("etc/modprobe.d/vfio.conf"))
        #expect(try inRoot(root, "modprobe", "-c").contains("options vfio_pci ids=\(Self.ids)"))

        let rollback = try CLI.run(["rollback", "--root", root.path])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(rollback.stdout.contains("handler: dracut --regenerate-all --force: ran"))
        let after = try inRoot(root, "lsinitrd", image)
        #expect(!after.contains("etc/modprobe.d/vfio.conf"))
        #expect(!after.contains("/vfio-pci.ko"))
    }
}
