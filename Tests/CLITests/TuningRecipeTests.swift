import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// The recipe's tuning variables (off by default, `when:`) on the snapshots: pinned cores from the
/// snapshot's own topology, huge pages on its boot loader's command line next to the VFIO
/// parameters (verify gets both), Looking Glass for its login user; a second apply changes nothing
/// and one rollback gives the snapshot back. The reset quirk follows gpu.select's card.
@Suite struct TuningRecipeTests {
    static let recipe = Package.path("recipes/vfio-passthrough.yaml")
    static let tuning = ["--var", "pin_cpus=auto", "--var", "hugepages=1G", "--var", "looking_glass=2560x1440"]

    @Test(arguments: [
        ("arch", "/etc/default/grub", "<vcpupin vcpu='0' cpuset='1'/>", "alex"),
        ("fedora", "/etc/default/grub", "<vcpupin vcpu='0' cpuset='6'/>", "sam"),
    ])
    func tuningVariablesOnASnapshot(_ family: String, _ cmdlineFile: String, _ firstPin: String, _ user: String) throws {
        let temp = try TempRoot(copying: family)
        let original = try temp.fingerprint()
        let off = try CLI.run(["plan", Self.recipe, "--root", temp.path, "--json"])
        let skipped = try #require(try CLI.json(off.stdout)["steps"] as? [[String: Any]]).filter { $0["status"] as? String == "skipped" }
        #expect(Set(skipped.compactMap { $0["id"] as? String }).isSuperset(of: ["pin-cpus", "hugepages", "looking-glass"]), "off by default")

        let apply = try CLI.run(["apply", Self.recipe, "--root", temp.path, "--json"] + Self.tuning)
        try #require(apply.status == 0, "\(apply.stderr)")
        let domain = try #require(temp.read("/etc/libvirt/qemu/win10.xml"))
        #expect(domain.contains(firstPin) && domain.contains("<emulatorpin cpuset="), "\(family)")
        #expect(domain.contains("<page size='1048576' unit='KiB'/>"))
        #expect(domain.contains("mem-path&quot;:&quot;/dev/kvmfr0&quot;,&quot;size&quot;:67108864"))
        #expect(domain.contains("<hostdev mode='subsystem' type='pci' managed='yes'>"), "libvirt.domain's edits are kept")
        #expect(temp.read(cmdlineFile)?.contains("default_hugepagesz=1G hugepagesz=1G hugepages=16") == true, "\(cmdlineFile)")
        #expect(temp.read("/etc/udev/rules.d/99-kvmfr.rules")?.contains("OWNER=\"\(user)\", GROUP=\"kvm\"") == true)
        #expect(temp.read("/etc/libvirt/qemu.conf")?.contains("\"/dev/kvmfr0\"") == true)
        // verify is told every parameter the run added, the VFIO ones and the pages.
        let show = try CLI.run(["show", "1", "--root", temp.path, "--json"])
        #expect(show.stdout.contains("\"hugepages=16\"") && show.stdout.contains("\"iommu=pt\""), "\(show.stdout.prefix(2000))")

        let again = try CLI.run(["apply", Self.recipe, "--root", temp.path, "--json"] + Self.tuning)
        #expect(try CLI.json(again.stdout)["changed"] as? Int == 0, "\(family): a second apply changes nothing")
        let rollback = try CLI.run(["rollback", "--root", temp.path])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(try temp.fingerprint() == original, "\(family): one rollback gives the snapshot back")
    }

    /// The Fedora snapshot's RX 6800 made an RX 580 (Polaris 10), with vendor-reset built by DKMS.
    @Test func resetQuirkFollowsTheSelectedCard() throws {
        let temp = try TempRoot(copying: "fedora")
        let card = "/sys/bus/pci/devices/0000:0c:00.0"
        try temp.write(card + "/device", "0x67df\n")
        try temp.write(card + "/modalias", "pci:v00001002d000067DFsv00001002sd00000E3Abc03sc00i00\n")
        let release = try #require(try FileManager.default.contentsOfDirectory(atPath: temp.real("/usr/lib/modules")).first)
        let dep = temp.real("/usr/lib/modules/\(release)/modules.dep")
        try (try String(contentsOfFile: dep, encoding: .utf8) + "updates/dkms/vendor-reset.ko.xz:\n").write(toFile: dep, atomically: true, encoding: .utf8)

        let apply = try CLI.run(["apply", Self.recipe, "--root", temp.path, "--json"])
        try #require(apply.status == 0, "\(apply.stderr)")
        #expect(temp.read("/etc/udev/rules.d/99-vendor-reset.rules")?.contains("ATTR{device}==\"0x67df\", ATTR{reset_method}=\"device_specific\"") == true)
        #expect(temp.read("/etc/dracut.conf.d/00-vendor-reset.conf")?.contains("force_drivers+=\" vendor-reset \"") == true)
        let handlers = try #require(try CLI.json(apply.stdout)["handlers"] as? [[String: Any]])
        #expect(handlers.filter { ($0["argv"] as? [String])?.first == "dracut" }.count == 1, "one dracut rebuild for both steps: \(handlers)")
    }
}
