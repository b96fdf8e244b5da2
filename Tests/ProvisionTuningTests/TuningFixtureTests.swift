import Foundation
import ProvisionCore
import ProvisionEdit
import ProvisionModprobe
import ProvisionTestSupport
import ProvisionTuning
import Testing

/// Fixtures for libvirt.cpu-pinning (on the machines' sysfs layouts), hugepages (through every
/// boot loader), looking-glass and vfio.reset-quirk: the expected files (domain XML that
/// virt-xml-validate accepts, reviewed by eye), a no-op second apply, and a byte-exact rollback.
@Suite struct TuningFixtureTests {
    static let registry = PluginRegistry(tuningSteps + modprobeSteps)
    static let directory = "Tests/ProvisionTuningTests/Fixtures"

    @Test(arguments: try StepFixture.load(directory))
    func fixture(_ fixture: StepFixture) throws {
        try fixture.check(registry: Self.registry)
    }

    /// The elements each step owns; everything else in the domain must come out byte for byte.
    static let owned: [String: [String]] = [
        "libvirt.cpu-pinning": ["vcpu", "cputune", "cpu", "numatune"],
        "hugepages": ["memoryBacking"],
        "looking-glass": ["devices/memballoon", "devices/shmem", "qemu:commandline", "@xmlns:qemu"],
    ]

    /// The text with the owned elements (and attributes) removed by the splicing editor: what is
    /// left of the input and of the result must be identical.
    static func withoutOwned(_ text: String, _ owned: [String]) throws -> String {
        var xml = try XMLText(text, file: "domain")
        for path in owned {
            if path.hasPrefix("@") {
                try xml.removeAttribute(xml.root, String(path.dropFirst()))
                continue
            }
            let parts = path.split(separator: "/").map(String.init)
            func find(_ xml: XMLText) -> XMLElement? {
                var parent = xml.root
                for name in parts.dropLast() {
                    guard let next = parent.child(name) else { return nil }
                    parent = next
                }
                return parent.child(parts.last!)
            }
            while let element = find(xml) { try xml.remove(element) }
        }
        return xml.text
    }

    @Test(arguments: try StepFixture.load(directory).filter { $0.error == nil && owned[$0.step] != nil && $0.expected_from != nil })
    func theDomainsOtherElementsAreUntouched(_ fixture: StepFixture) throws {
        let inputs = try fixture.inputFiles()
        for (path, expected) in try fixture.expectedFiles() where path.hasSuffix(".xml") {
            let input = try #require(inputs[path])
            let result = try #require(expected)
            let owned = Self.owned[fixture.step]!
            #expect(try Self.withoutOwned(input, owned) == Self.withoutOwned(result, owned), "\(fixture.name): \(path)")
        }
    }

    /// libvirt's own schema accepts every domain the fixtures expect.
    @Test func expectedDomainsValidateAgainstLibvirtsSchema() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/virt-xml-validate") else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("virt-xml-validate is missing: scripts/install-deps.sh installs it") }
            return
        }
        let expected = Package.path("\(Self.directory)/expected")
        let domains = try FileManager.default.contentsOfDirectory(atPath: expected).filter { $0.hasSuffix(".xml") }
        #expect(domains.count >= 12)
        for name in domains {
            let result = try ProcessRunner.run(["virt-xml-validate", "\(expected)/\(name)", "domain"])
            #expect(result.status == 0, "\(name): \(result.output)")
        }
    }

    /// kvmfr's size is read when the module loads: from the initramfs when it loads kvmfr itself
    /// (then the image is rebuilt), else from /etc/modprobe.d at boot (no rebuild).
    @Test(arguments: [("kvmfr\n", true), ("# kvmfr\nvfio_pci\n", false)])
    func lookingGlassRebuildsTheInitramfsOnlyWhenItLoadsKvmfr(_ modules: String, _ rebuilt: Bool) throws {
        let temp = try TempRoot()
        try FileManager.default.createDirectory(atPath: temp.real("/usr/share/initramfs-tools"), withIntermediateDirectories: true)
        try temp.write("/etc/initramfs-tools/modules", modules)
        try temp.write("/etc/passwd", "root:x:0:0::/root:/bin/sh\nalex:x:1000:1000::/home/alex:/bin/sh\n")
        try temp.write("/etc/group", "root:x:0:\nkvm:x:104:\n")
        try temp.write("/etc/libvirt/qemu.conf", "")
        try temp.write(
            "/etc/libvirt/qemu/win10.xml", try String(contentsOfFile: Package.path("\(Self.directory)/domains/win10.libvirt.xml"), encoding: .utf8))
        let recipe = try Recipe.parse(
            "name: lg\nsteps:\n  - {uses: looking-glass, with: {domain: win10}}\n", file: "lg.yaml", registry: Self.registry)
        let plan = try Engine(root: HostRoot(temp.path), registry: Self.registry).plan(recipe)
        let rebuild = plan.handlers.first { $0.argv == ["update-initramfs", "-u", "-k", "all"] }
        #expect((rebuild != nil) == rebuilt, "\(plan.handlers)")
        #expect(rebuild.map { $0.notifiedBy == ["/etc/modprobe.d/kvmfr.conf"] } ?? true, "the size in modprobe.d notifies it")
    }

    @Test func lookingGlassSizesFollowTheTable() {
        // width x height x 4 (8 with HDR) x 2 bytes + 10 MiB, rounded up to a power of two MiB.
        let table: [(Int, Int, Bool, Int)] = [
            (1920, 1080, false, 32), (2560, 1440, false, 64), (3840, 2160, false, 128),
            (1920, 1080, true, 64), (2560, 1440, true, 128), (3840, 2160, true, 256),
        ]
        for (width, height, hdr, mib) in table {
            #expect(LookingGlass.sizeMiB(width: width, height: height, hdr: hdr) == mib, "\(width)x\(height) hdr \(hdr)")
        }
    }

    @Test func resetQuirkKnowsVendorResetsCards() {
        #expect(ResetQuirk.family(of: "1002:67df") == "Polaris 10")
        #expect(ResetQuirk.family(of: "1002:687F") == "Vega 10")
        #expect(ResetQuirk.family(of: "1002:731f") == "Navi 10")
        #expect(ResetQuirk.family(of: "1002:73bf") == nil, "Navi 21 resets by itself")
        #expect(ResetQuirk.family(of: "10de:67df") == nil)
    }
}

/// The isolation hook as libvirt runs it (sh, with GUEST OPERATION SUB-OPERATION): `systemctl` is
/// a stand-in on PATH that records its arguments, since the real one would change this machine's
/// own slices.
@Suite struct IsolationHookTests {
    @Test func hookConfinesTheHostOnPrepareAndGivesEveryCPUBackOnRelease() throws {
        let hook = try String(contentsOfFile: Package.path("Tests/ProvisionTuningTests/Fixtures/expected/provision-isolate-cpus-pinned"), encoding: .utf8)
        let temp = try TempRoot()
        try temp.write("/hook", hook, mode: 0o755)
        try temp.write("/bin/systemctl", "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$LOG\"\n", mode: 0o755)
        #expect(try ProcessRunner.run(["sh", "-n", temp.real("/hook")]).status == 0, "sh parses the hook")
        func run(_ arguments: String...) throws -> [String] {
            try? FileManager.default.removeItem(atPath: temp.real("/log"))
            let result = try ProcessRunner.run(
                ["env", "PATH=\(temp.real("/bin")):/usr/bin:/bin", "LOG=\(temp.real("/log"))", temp.real("/hook")] + arguments)
            #expect(result.status == 0, "\(result.output)")
            return (temp.read("/log") ?? "").split(separator: "\n").map(String.init)
        }
        #expect(try run("pinned", "prepare", "begin", "-") == [
            "set-property --runtime -- system.slice AllowedCPUs=0,4-6,10-11", "set-property --runtime -- user.slice AllowedCPUs=0,4-6,10-11",
            "set-property --runtime -- init.scope AllowedCPUs=0,4-6,10-11",
        ])
        #expect(try run("pinned", "release", "end", "-") == [
            "set-property --runtime -- system.slice AllowedCPUs=0-11", "set-property --runtime -- user.slice AllowedCPUs=0-11",
            "set-property --runtime -- init.scope AllowedCPUs=0-11",
        ])
        #expect(try run("pinned", "started", "begin", "-") == [], "other operations do nothing")
        #expect(try run("win10", "prepare", "begin", "-") == [], "other guests do nothing")
    }
}
