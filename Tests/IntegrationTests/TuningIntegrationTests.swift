import Foundation
import ProvisionCore
import ProvisionEdit
import ProvisionTestSupport
import Testing

/// libvirt.cpu-pinning, hugepages and looking-glass judged by libvirt itself: a guest virt-install
/// printed and a real libvirtd wrote is pinned on each machine's sysfs layout, given huge pages and
/// Looking Glass (kvmfr, then shm); every result validates (virt-xml-validate), is defined by the
/// daemon, reads back with what was asked for and with everything else as libvirt had it, and
/// libvirt's re-written file needs no further edit. qemu.conf with /dev/kvmfr0 is read back by
/// libvirt's augeas lens and by a libvirtd that starts with it.
@Suite(.serialized) struct TuningIntegrationTests {
    static let machines = "Tests/ProvisionTuningTests/Fixtures/machines"

    /// Machine -> the host CPU of vCPU 0 and the CPUs the host keeps, as the pinning fixtures expect.
    static let expected: [(machine: String, firstPin: String, host: String, topology: String)] = [
        ("intel-6c12t", "1", "0,6", "<topology sockets='1' dies='1' cores='5' threads='2'/>"),
        ("zen3-16c-2ccd", "8", "0-7,16-23", "<topology sockets='1' dies='1' cores='8' threads='2'/>"),
        ("zen2-threadripper-3970x", "4", "0-3,32-35", "<topology sockets='1' dies='7' cores='4' threads='2'/>"),
        ("xeon-2s-gpu-node1", "16", "0-15,32-47", "<topology sockets='1' dies='1' cores='16' threads='2'/>"),
        ("intel-4c-nosmt", "1", "0", "<topology sockets='1' dies='1' cores='3' threads='1'/>"),
        ("intel-hybrid-12700k", "0", "16-19", "<topology sockets='1' dies='1' cores='8' threads='2'/>"),
    ]

    /// A guest as virt-install prints it and this daemon writes it.
    static func guest(_ daemon: LibvirtDaemon, _ name: String) throws -> String {
        let printed = try daemon.virtInstall([
            "--name", name, "--memory", "16384", "--vcpus", "8", "--iothreads", "1", "--machine", "q35", "--boot", "uefi", "--osinfo",
            "win10", "--disk", "none", "--network", "none", "--graphics", "spice", "--video", "qxl",
        ])
        try daemon.root.write("/tmp/\(name).xml", printed)
        try daemon.virsh("define", daemon.root.real("/tmp/\(name).xml"))
        return try #require(daemon.root.read("/etc/libvirt/qemu/\(name).xml"), "libvirt wrote \(name)")
    }

    /// `virsh dumpxml --inactive` without the elements a step owns: what must not have changed.
    static func dumpWithout(_ daemon: LibvirtDaemon, _ name: String, _ owned: [String]) throws -> String {
        var xml = try XMLText(try daemon.virsh("dumpxml", "--inactive", name), file: name)
        try xml.removeAttribute(xml.root, "xmlns:qemu")
        for path in owned {
            let parts = path.split(separator: "/").map(String.init)
            func find() -> XMLElement? {
                var parent = xml.root
                for part in parts.dropLast() {
                    guard let next = parent.child(part) else { return nil }
                    parent = next
                }
                return parent.child(parts.last!)
            }
            while let element = find() { try xml.remove(element) }
        }
        return xml.text
    }

    /// Applies `steps` to `root` through the CLI, checks what libvirt makes of the result, and
    /// returns the daemon's dump of it. `libvirtAdds`: what libvirt itself adds on define (a new
    /// PCI device's address, the controllers it needs), left out of the comparison.
    func applyAndDefine(
        _ daemon: LibvirtDaemon, root: TempRoot, name: String, steps: String, owned: [String], libvirtAdds: [String] = [],
        sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) throws -> String {
        let before = try Self.dumpWithout(daemon, name, owned + libvirtAdds)
        let recipes = try TempRoot()
        try recipes.write("/\(name).yaml", "name: tuning\nsteps:\n\(steps)")
        let recipe = recipes.real("/\(name).yaml")
        let apply = try CLI.run(["apply", recipe, "--root", root.path, "--json"])
        try #require(apply.status == 0, "\(name): \(apply.stderr)", sourceLocation: sourceLocation)
        let path = root.real("/etc/libvirt/qemu/\(name).xml")
        let validate = try ProcessRunner.run(["virt-xml-validate", path, "domain"])
        #expect(validate.status == 0, "\(name): virt-xml-validate: \(validate.output)", sourceLocation: sourceLocation)
        let again = try CLI.run(["apply", recipe, "--root", root.path, "--json"])
        #expect(try CLI.json(again.stdout)["changed"] as? Int == 0, "\(name): a second apply changes nothing", sourceLocation: sourceLocation)

        try daemon.virsh("define", "--validate", path)
        #expect(
            try Self.dumpWithout(daemon, name, owned + libvirtAdds) == before, "\(name): libvirt reads everything else as before",
            sourceLocation: sourceLocation)
        // libvirt re-wrote the file in its own form; the steps find nothing more to do in it.
        let rewritten = try #require(daemon.root.read("/etc/libvirt/qemu/\(name).xml"))
        if libvirtAdds.isEmpty {
            #expect(rewritten == root.read("/etc/libvirt/qemu/\(name).xml"), "\(name): libvirt writes back what provision wrote", sourceLocation: sourceLocation)
        }
        let copy = try TempRoot(copyingDirectory: root.path)
        try copy.write("/etc/libvirt/qemu/\(name).xml", rewritten)
        let plan = try CLI.run(["plan", recipe, "--root", copy.path])
        #expect(plan.stdout.contains("0 step(s) to change"), "\(name): libvirt's own form needs no edit:\n\(plan.stdout)", sourceLocation: sourceLocation)
        return try daemon.virsh("dumpxml", "--inactive", name)
    }

    @Test func pinnedOnEveryMachineValidatesAndIsDefined() throws {
        let daemonRoot = try TempRoot()
        guard let daemon = try LibvirtDaemon.start(root: daemonRoot) else { return }
        for (machine, firstPin, host, topology) in Self.expected {
            let name = "pin-\(machine)"
            let written = try Self.guest(daemon, name)
            let root = try TempRoot(copyingDirectory: Package.path("\(Self.machines)/\(machine)"))
            try FileManager.default.createDirectory(atPath: root.real("/var/lib"), withIntermediateDirectories: true)
            try root.write("/etc/libvirt/qemu/\(name).xml", written)
            let original = try root.fingerprint()
            let gpu = try #require(try FileManager.default.contentsOfDirectory(atPath: root.real("/sys/bus/pci/devices")).first { $0.hasSuffix(".0") })
            let dumped = try applyAndDefine(
                daemon, root: root, name: name,
                steps: "  - {uses: libvirt.cpu-pinning, with: {domain: \(name), gpu: \"\(gpu)\", isolate: hook}}\n",
                owned: ["vcpu", "cputune", "cpu", "numatune"])
            #expect(dumped.contains("<vcpupin vcpu='0' cpuset='\(firstPin)'/>"), "\(machine):\n\(dumped)")
            #expect(dumped.contains("<emulatorpin cpuset='\(host)'/>"), "\(machine)")
            #expect(dumped.contains("<iothreadpin iothread='1' cpuset='\(host)'/>"), "\(machine)")
            #expect(dumped.contains(topology), "\(machine)")
            #expect(dumped.contains("<feature policy='require' name='topoext'/>") == machine.hasPrefix("zen"), "\(machine): topoext on AMD")
            #expect(dumped.contains("<memory mode='preferred' nodeset='1'/>") == (machine == "xeon-2s-gpu-node1"), "\(machine): numatune")

            let rollback = try CLI.run(["rollback", "--root", root.path])
            #expect(rollback.status == 0, "\(rollback.stderr)")
            #expect(try root.fingerprint() == original, "\(machine): rollback gives back the machine byte for byte")
        }
    }

    @Test func hugepagesAndLookingGlassAreDefinedByLibvirt() throws {
        let daemonRoot = try TempRoot()
        guard let daemon = try LibvirtDaemon.start(root: daemonRoot) else { return }
        let name = "lg"
        let written = try Self.guest(daemon, name)
        let root = try TempRoot(copyingDirectory: Package.path("\(Self.machines)/zen3-16c-2ccd"))
        try FileManager.default.createDirectory(atPath: root.real("/var/lib"), withIntermediateDirectories: true)
        try root.write("/etc/libvirt/qemu/\(name).xml", written)
        try root.write("/etc/libvirt/qemu.conf", "user = \"root\"\n")
        try root.write("/etc/passwd", "root:x:0:0::/root:/bin/sh\nkim:x:1000:1000::/home/kim:/bin/bash\n")
        try root.write("/etc/group", "root:x:0:\nkvm:x:104:\nkim:x:1000:\n")
        let original = try root.fingerprint()

        var dumped = try applyAndDefine(
            daemon, root: root, name: name,
            steps: "  - {uses: hugepages, with: {domain: \(name), at: runtime, size: 2M}}\n"
                + "  - {uses: looking-glass, with: {domain: \(name), resolution: 2560x1440}}\n",
            owned: ["memoryBacking", "devices/memballoon", "qemu:commandline"])
        #expect(dumped.contains("<page size='2048' unit='KiB'/>"), "\(dumped)")
        #expect(dumped.contains("<memballoon model='none'/>"))
        #expect(dumped.contains(#"<qemu:arg value='{&quot;qom-type&quot;:&quot;memory-backend-file&quot;,&quot;id&quot;:&quot;looking-glass&quot;,&quot;mem-path&quot;:&quot;/dev/kvmfr0&quot;,&quot;size&quot;:67108864,&quot;share&quot;:true}'/>"#))
        #expect(dumped.contains(#"&quot;memdev&quot;:&quot;looking-glass&quot;"#))
        #expect(root.read("/etc/sysctl.d/60-provision-hugepages.conf")?.contains("vm.nr_hugepages = 8192") == true)

        // The shm variant replaces the kvmfr one in the same guest.
        dumped = try applyAndDefine(
            daemon, root: root, name: name,
            steps: "  - {uses: looking-glass, with: {domain: \(name), resolution: 3840x2160, hdr: true, via: shm}}\n",
            owned: ["devices/shmem", "qemu:commandline", "devices/memballoon"], libvirtAdds: ["devices/controller"])
        #expect(dumped.contains("<shmem name='looking-glass'>\n      <model type='ivshmem-plain'/>\n      <size unit='M'>256</size>"), "\(dumped)")
        #expect(!dumped.contains("kvmfr"))
        #expect(!root.exists("/etc/modprobe.d/kvmfr.conf"), "the kvmfr files this step wrote are gone")
        #expect(root.read("/etc/tmpfiles.d/10-looking-glass.conf")?.contains("f /dev/shm/looking-glass 0660 kim kvm -") == true)

        for _ in 0..<2 {
            let rollback = try CLI.run(["rollback", "--root", root.path])
            #expect(rollback.status == 0, "\(rollback.stderr)")
        }
        #expect(try root.fingerprint() == original, "two rollbacks give the root back byte for byte")
    }

    /// A package from the test cache (scripts/install-deps.sh downloads it), unpacked into a temporary
    /// directory; nil when it is not there (outside CI).
    static func unpacked(_ package: String) throws -> TempRoot? {
        let cache = (ProcessInfo.processInfo.environment["PROVISION_TEST_ROOTS"] ?? "/var/cache/provision-tests") + "/debs"
        guard let deb = (try? FileManager.default.contentsOfDirectory(atPath: cache))?.first(where: { $0.hasPrefix("\(package)_") }) else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("\(cache)/\(package)_*.deb is missing: scripts/install-deps.sh") }
            return nil
        }
        let directory = try TempRoot()
        let result = try ProcessRunner.run(["dpkg-deb", "-x", "\(cache)/\(deb)", directory.path])
        try #require(result.status == 0, "\(result.output)")
        return directory
    }

    /// The rules looking-glass adds to AppArmor's local libvirt-qemu abstraction, parsed by
    /// AppArmor's own parser (from Debian's package, never loaded into a kernel) inside libvirt's
    /// per-guest profile template, with Debian's base abstractions.
    @Test func appArmorReadsTheLocalRules() throws {
        guard let apparmor = try Self.unpacked("apparmor"), let libvirt = try Self.unpacked("libvirt-daemon-system") else { return }
        let root = try TempRoot()
        try root.write("/etc/libvirt/qemu.conf", "user = \"root\"\n")
        let domain = try String(contentsOfFile: Package.path("Tests/ProvisionTuningTests/Fixtures/domains/win10.libvirt.xml"), encoding: .utf8)
        try root.write("/etc/libvirt/qemu/lg.xml", domain.replacingOccurrences(of: "<name>win10</name>", with: "<name>lg</name>"))
        try root.write("/etc/passwd", "root:x:0:0::/root:/bin/sh\nkim:x:1000:1000::/home/kim:/bin/bash\n")
        try root.write("/etc/group", "root:x:0:\nkvm:x:104:\nkim:x:1000:\n")
        let abstraction = try #require(libvirt.read("/etc/apparmor.d/abstractions/libvirt-qemu"))
        try root.write("/etc/apparmor.d/abstractions/libvirt-qemu", abstraction)
        let recipes = try TempRoot()
        for via in ["kvmfr", "shm"] {
            try recipes.write("/\(via).yaml", "name: lg\nsteps:\n  - {uses: looking-glass, with: {domain: lg, via: \(via)}}\n")
            let apply = try CLI.run(["apply", recipes.real("/\(via).yaml"), "--root", root.path])
            try #require(apply.status == 0, "\(apply.stderr)")
        }
        let local = try #require(root.read("/etc/apparmor.d/local/abstractions/libvirt-qemu"))
        #expect(local.contains("/dev/kvmfr0 rw,\n/dev/shm/looking-glass rw,\n"), "\(local)")

        // Debian's profile tree, with libvirt's abstraction and the local rules provision wrote.
        let profiles = apparmor.real("/etc/apparmor.d")
        try apparmor.write("/etc/apparmor.d/abstractions/libvirt-qemu", abstraction)
        try apparmor.write("/etc/apparmor.d/local/abstractions/libvirt-qemu", local)
        let template = try #require(libvirt.read("/etc/apparmor.d/libvirt/TEMPLATE.qemu"))
        try apparmor.write("/etc/apparmor.d/libvirt/TEMPLATE.qemu", template)
        let parser = apparmor.real("/sbin/apparmor_parser")
        func parse(_ flags: [String]) throws -> ProcessRunner.Result {
            try ProcessRunner.run([parser] + flags + ["--skip-kernel-load", "--base", profiles, "--Include", profiles, profiles + "/libvirt/TEMPLATE.qemu"])
        }
        let parsed = try parse([])
        #expect(parsed.status == 0, "apparmor_parser: \(parsed.output)")
        let expanded = try parse(["--preprocess"])
        #expect(expanded.output.contains("/dev/kvmfr0 rw,") && expanded.output.contains("/dev/shm/looking-glass rw,"), "the local rules are included")

        // The parser is a real judge: a broken local rule fails.
        try apparmor.write("/etc/apparmor.d/local/abstractions/libvirt-qemu", local + "/dev/kvmfr0 rw garbage,\n")
        #expect(try parse([]).status != 0)
    }

    @Test func qemuConfWithKvmfrReadsBackThroughLibvirtsLens() throws {
        guard let debianConf = try LibvirtIntegrationTests.debianQemuConf() else { return }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/augtool") else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("augtool is missing: scripts/install-deps.sh installs it") }
            return
        }
        let daemonRoot = try TempRoot()
        guard let daemon = try LibvirtDaemon.start(root: daemonRoot) else { return }
        let written = try Self.guest(daemon, "kvmfr")
        let root = try TempRoot()
        try root.write("/etc/libvirt/qemu.conf", debianConf)
        try root.write("/etc/libvirt/qemu/kvmfr.xml", written)
        try root.write("/etc/passwd", "root:x:0:0::/root:/bin/sh\nkim:x:1000:1000::/home/kim:/bin/bash\n")
        try root.write("/etc/group", "root:x:0:\nkvm:x:104:\nkim:x:1000:\n")
        let recipes = try TempRoot()
        try recipes.write("/lg.yaml", "name: lg\nsteps:\n  - {uses: looking-glass, with: {domain: kvmfr}}\n")
        let apply = try CLI.run(["apply", recipes.real("/lg.yaml"), "--root", root.path])
        try #require(apply.status == 0, "\(apply.stderr)")

        func augeas(_ command: String) throws -> String {
            let result = try ProcessRunner.run([
                "augtool", "--root", root.path, "--noautoload", "-t", "Libvirtd_qemu incl /etc/libvirt/qemu.conf", command,
            ])
            #expect(result.status == 0, "augtool \(command): \(result.output)")
            return result.output
        }
        #expect(try augeas("print /augeas//error") == "", "the lens parses the edited file")
        let acl = try augeas("print /files/etc/libvirt/qemu.conf/cgroup_device_acl")
        for device in ["/dev/null", "/dev/full", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/ptmx", "/dev/kvm", "/dev/userfaultfd", "/dev/kvmfr0"] {
            #expect(acl.contains("= \"\(device)\""), "\(device) in the ACL:\n\(acl)")
        }
        // A libvirtd starts with it (its QEMU driver refuses a setting it cannot read).
        guard let edited = try LibvirtDaemon.start(root: root) else { return }
        #expect(try edited.virsh("list", "--all").contains("kvmfr"))
    }
}
