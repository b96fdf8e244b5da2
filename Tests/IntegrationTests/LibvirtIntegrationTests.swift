import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// libvirt.domain and libvirt.qemu-conf judged by libvirt itself: domains written by virt-install
/// and re-written by a real libvirtd are edited, validated against libvirt's schema
/// (virt-xml-validate), defined into the daemon, and read back; live mode goes through `virsh
/// define` both ways; Debian's own qemu.conf, once edited, is read by libvirt's augeas lens and
/// by a libvirtd that starts with it.
@Suite(.serialized) struct LibvirtIntegrationTests {
    static let keyboard = "/dev/input/by-id/usb-Logitech_USB_Keyboard-event-kbd"
    static let mouse = "/dev/input/by-id/usb-Logitech_G502_HERO-event-mouse"

    struct Guest {
        var name: String
        var virtInstall: [String]
        var with: String
        var expectInDumpXML: [String]
    }

    static let nvidia = "nvidia: \"on\", hostdevs: [\"0000:01:00.0\", \"0000:01:00.1\"], keyboards: [\(keyboard)], mice: [\(mouse)]"

    static let guests = [
        Guest(
            name: "q35-uefi",
            virtInstall: ["--machine", "q35", "--boot", "uefi", "--osinfo", "win10", "--graphics", "spice", "--video", "qxl", "--sound", "ich9"],
            with: nvidia + ", hide_hypervisor: true, remove_virtual_display: true",
            expectInDumpXML: [
                "<input type='evdev'>", "grab='all' grabToggle='ctrl-ctrl' repeat='on'", "<hidden state='on'/>",
                "<vendor_id state='on' value='1234567890ab'/>", "<ioapic driver='kvm'/>", "<feature policy='disable' name='hypervisor'/>",
            ]),
        Guest(
            name: "i440fx-bios", virtInstall: ["--machine", "pc", "--osinfo", "linux2022", "--graphics", "vnc"],
            with: nvidia, expectInDumpXML: ["<input type='evdev'>", "<hidden state='on'/>", "<vendor_id state='on' value='1234567890ab'/>"]),
        Guest(
            name: "qemu-args",
            virtInstall: [
                "--machine", "q35", "--boot", "uefi", "--osinfo", "linux2022", "--graphics", "none",
                "--qemu-commandline=-set device.hostdev0.x-pci-vendor-id=0x10de",
            ],
            with: nvidia + ", input: qemu-args",
            expectInDumpXML: [
                "<qemu:arg value='device.hostdev0.x-pci-vendor-id=0x10de'/>",
                "<qemu:arg value='input-linux,id=kbd0,evdev=\(keyboard),grab_all=on,repeat=on'/>",
                "<qemu:arg value='input-linux,id=mouse0,evdev=\(mouse)'/>", "<hidden state='on'/>",
            ]),
        Guest(
            name: "hyperv-kvm-sections",
            virtInstall: [
                "--machine", "q35", "--boot", "uefi", "--osinfo", "win11",
                "--features", "hyperv.synic.state=on,hyperv.reset.state=on,kvm.hidden.state=off",
            ],
            with: nvidia + ", vendor_id: NotAHypervsr",
            expectInDumpXML: [
                "<reset state='on'/>\n      <vendor_id state='on' value='NotAHypervsr'/>", "<synic state='on'/>", "<hidden state='on'/>",
            ]),
    ]

    func recipe(_ root: TempRoot, _ name: String, _ with: String) throws -> String {
        try root.write("/tmp/\(name).yaml", "name: domain\nsteps:\n  - {id: domain, uses: libvirt.domain, with: {domain: \(name), \(with)}}\n")
        return root.real("/tmp/\(name).yaml")
    }

    @Test func virtInstallDomainsEditedValidateAndAreDefined() throws {
        let daemonRoot = try TempRoot()
        guard let daemon = try LibvirtDaemon.start(root: daemonRoot) else { return }
        for guest in Self.guests {
            let printed = try daemon.virtInstall(["--name", guest.name, "--memory", "4096", "--disk", "none", "--network", "none"] + guest.virtInstall)
            try daemonRoot.write("/tmp/\(guest.name).xml", printed)
            try daemon.virsh("define", daemonRoot.real("/tmp/\(guest.name).xml"))
            let written = try #require(daemonRoot.read("/etc/libvirt/qemu/\(guest.name).xml"), "libvirt wrote the domain")

            // Offline: a root holding the file libvirt wrote.
            let root = try TempRoot()
            try root.write("/etc/libvirt/qemu/\(guest.name).xml", written)
            let recipe = try recipe(root, guest.name, guest.with)
            let apply = try CLI.run(["apply", recipe, "--root", root.path, "--json"])
            try #require(apply.status == 0, "\(guest.name): \(apply.stderr)")
            let edited = try #require(root.read("/etc/libvirt/qemu/\(guest.name).xml"))
            #expect(edited != written)

            let validate = try ProcessRunner.run(["virt-xml-validate", root.real("/etc/libvirt/qemu/\(guest.name).xml"), "domain"])
            #expect(validate.status == 0, "\(guest.name): virt-xml-validate: \(validate.output)")
            let again = try CLI.run(["apply", recipe, "--root", root.path, "--json"])
            #expect(try CLI.json(again.stdout)["changed"] as? Int == 0, "\(guest.name): a second apply changes nothing: \(again.stdout)")

            // The daemon accepts the result, and shows what was asked for.
            try daemon.virsh("define", "--validate", root.real("/etc/libvirt/qemu/\(guest.name).xml"))
            let dumped = try daemon.virsh("dumpxml", "--inactive", guest.name)
            for address in ["function='0x0'", "function='0x1'"] {
                #expect(dumped.contains("<hostdev mode='subsystem' type='pci' managed='yes'>"), "\(guest.name)")
                #expect(dumped.contains("<address domain='0x0000' bus='0x01' slot='0x00' \(address)/>"), "\(guest.name): \(address)")
            }
            for text in guest.expectInDumpXML { #expect(dumped.contains(text), "\(guest.name): \(text) in\n\(dumped)") }

            // libvirt re-wrote the file in its own form; the step finds nothing more to do in it.
            let rewritten = try #require(daemonRoot.read("/etc/libvirt/qemu/\(guest.name).xml"))
            try root.write("/etc/libvirt/qemu/\(guest.name).xml", rewritten)
            let plan = try CLI.run(["plan", recipe, "--root", root.path])
            #expect(plan.stdout.contains("0 step(s) to change"), "\(guest.name): libvirt's own form needs no edit:\n\(plan.stdout)")
        }
    }

    @Test func liveModeDefinesThroughVirshAndRollbackRedefinesTheOldXML() throws {
        let root = try TempRoot()
        guard let daemon = try LibvirtDaemon.start(root: root) else { return }
        let printed = try daemon.virtInstall(
            ["--name", "win10", "--memory", "8192", "--disk", "none", "--network", "none", "--machine", "q35", "--boot", "uefi", "--osinfo", "win10"])
        try root.write("/tmp/win10.xml", printed)
        try daemon.virsh("define", root.real("/tmp/win10.xml"))
        let original = try #require(root.read("/etc/libvirt/qemu/win10.xml"))

        let recipe = try recipe(root, "win10", Self.nvidia + ", connect: \"\(daemon.uri)\"")
        let apply = try CLI.run(["apply", recipe, "--root", root.path, "--json"])
        try #require(apply.status == 0, "\(apply.stderr)")
        let handlers = try #require(try CLI.json(apply.stdout)["handlers"] as? [[String: Any]])
        #expect(handlers.first?["status"] as? String == "ran", "virsh define ran: \(handlers)")
        #expect((handlers.first?["argv"] as? [String])?.prefix(4) == ["virsh", "--connect", daemon.uri, "define"])
        let live = try daemon.virsh("dumpxml", "--inactive", "win10")
        #expect(live.contains("<hostdev mode='subsystem' type='pci' managed='yes'>"))
        #expect(live.contains("<hidden state='on'/>"))
        #expect(live.contains("<source dev='\(Self.keyboard)' grab='all' grabToggle='ctrl-ctrl' repeat='on'/>"))

        // What provision wrote is what libvirt writes back: no drift, nothing left to do.
        let again = try CLI.run(["apply", recipe, "--root", root.path, "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try CLI.json(again.stdout)["drift"] as? [String] ?? [] == [], "\(again.stdout)")
        #expect(try CLI.json(again.stdout)["changed"] as? Int == 0, "\(again.stdout)")

        let rollback = try CLI.run(["rollback", "--root", root.path, "--json"])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        let restored = try daemon.virsh("dumpxml", "--inactive", "win10")
        #expect(!restored.contains("<hostdev"), "the old definition is back in libvirt")
        #expect(!restored.contains("<hidden state='on'/>"))
        #expect(root.read("/etc/libvirt/qemu/win10.xml") == original)
    }

    @Test func debiansQemuConfEditedStillParsesForLibvirt() throws {
        guard let debianConf = try Self.debianQemuConf() else { return }
        let root = try TempRoot()
        try root.write("/etc/libvirt/qemu.conf", debianConf)
        try FileManager.default.createDirectory(atPath: root.real("/dev/input/by-id"), withIntermediateDirectories: true)
        for link in [Self.keyboard, Self.mouse] {
            try FileManager.default.createSymbolicLink(atPath: root.real(link), withDestinationPath: "../event3")
        }
        try root.write(
            "/tmp/qemu-conf.yaml",
            "name: qemu-conf\nsteps:\n  - {uses: libvirt.qemu-conf, with: {user: virtual-machine, group: kvm}}\n")
        let apply = try CLI.run(["apply", root.real("/tmp/qemu-conf.yaml"), "--root", root.path])
        try #require(apply.status == 0, "\(apply.stderr)")

        // libvirt's own augeas lens reads every setting back.
        func augeas(_ command: String) throws -> String {
            let result = try ProcessRunner.run([
                "augtool", "--root", root.path, "--noautoload", "-t", "Libvirtd_qemu incl /etc/libvirt/qemu.conf", command,
            ])
            #expect(result.status == 0, "augtool \(command): \(result.output)")
            return result.output
        }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/augtool") else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("augtool is missing: scripts/install-deps.sh installs it") }
            return
        }
        #expect(try augeas("print /augeas//error") == "", "the lens parses the edited file")
        #expect(try augeas("get /files/etc/libvirt/qemu.conf/user").contains("= virtual-machine"))
        #expect(try augeas("get /files/etc/libvirt/qemu.conf/group").contains("= kvm"))
        let acl = try augeas("print /files/etc/libvirt/qemu.conf/cgroup_device_acl")
        for device in ["/dev/null", "/dev/kvm", "/dev/userfaultfd", Self.keyboard, Self.mouse] {
            #expect(acl.contains("= \"\(device)\""), "\(device) in the ACL:\n\(acl)")
        }

        // And a libvirtd starts with it (its QEMU driver refuses to start on a setting it cannot
        // read or a user it cannot resolve, and then never answers).
        guard let daemon = try LibvirtDaemon.start(root: root, users: [(name: "virtual-machine", groups: ["kvm", "input"])]) else { return }
        #expect(try daemon.virsh("list", "--all").contains("Name"))
    }

    /// /etc/libvirt/qemu.conf as Debian ships it (package libvirt-daemon-system, fetched by
    /// scripts/install-deps.sh into the test cache).
    static func debianQemuConf() throws -> String? {
        let cache = (ProcessInfo.processInfo.environment["PROVISION_TEST_ROOTS"] ?? "/var/cache/provision-tests") + "/debs"
        let package = (try? FileManager.default.contentsOfDirectory(atPath: cache))?.first { $0.hasPrefix("libvirt-daemon-system_") }
        guard let package else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("\(cache)/libvirt-daemon-system_*.deb is missing") }
            return nil
        }
        let result = try ProcessRunner.run(["sh", "-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -xO ./etc/libvirt/qemu.conf", "sh", "\(cache)/\(package)"])
        try #require(result.status == 0, "\(result.output)")
        return result.output
    }
}
