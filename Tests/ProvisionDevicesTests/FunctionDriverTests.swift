import Foundation
import ProvisionCore
import ProvisionDevices
import ProvisionTestSupport
import Testing

/// Which modules would claim each function the guest gets, from its sysfs `modalias` and the
/// kernels' `modules.alias` (and `modules.builtin.modinfo`), on every snapshot: exactly these must
/// wait for vfio-pci, whatever the function is (HDMI audio, USB-C, UCSI).
@Suite struct FunctionDriverTests {
    static let cases: [(snapshot: String, gpu: String, drivers: [String: [String]])] = [
        ("arch", "0000:01:00.0", ["0000:01:00.0": ["nouveau", "nvidia"], "0000:01:00.1": ["snd_hda_intel"]]),
        ("fedora", "0000:0c:00.0", [
            "0000:0c:00.0": ["amdgpu"], "0000:0c:00.1": ["snd_hda_intel"], "0000:0c:00.2": ["xhci_pci"],
            "0000:0c:00.3": ["i2c_designware_pci"],
        ]),
        // The shared group's USB controller leaves the host with the card: its driver waits too.
        ("debian", "0000:01:00.0", ["0000:01:00.0": ["nouveau"], "0000:01:00.1": ["snd_hda_intel"], "0000:02:00.0": ["xhci_pci"]]),
        ("ubuntu", "0000:02:00.0", ["0000:02:00.0": ["nouveau", "nvidia"], "0000:02:00.1": ["snd_hda_intel"]]),
        ("popos", "0000:01:00.0", ["0000:01:00.0": ["nouveau", "nvidia"], "0000:01:00.1": ["snd_hda_intel"]]),
    ]

    @Test(arguments: cases.indices)
    func modulesPerFunction(index: Int) throws {
        let (snapshot, address, expected) = Self.cases[index]
        let host = try HostView(root: HostRoot(Package.path("snapshots/\(snapshot)")))
        let gpu = try DeviceReport.read(host).select(address)
        let resolved = try FunctionDrivers.resolve(gpu.functions + gpu.groupCompanions, host: host)
        var actual: [String: [String]] = [:]
        for function in resolved.functions { actual[function.device.address] = function.modules }
        #expect(actual == expected, "\(snapshot)")
        #expect(resolved.kernelsWithoutAliases.isEmpty)
    }

    /// The sysfs file and the kernel's own format agree (drivers/pci/pci-driver.c).
    @Test func modaliasFormatMatchesTheKernels() throws {
        for snapshot in ["arch", "fedora", "debian", "ubuntu", "popos"] {
            let host = try HostView(root: HostRoot(Package.path("snapshots/\(snapshot)")))
            for device in SysfsScanner.scan(host) {
                let synthesized = ModuleAliases.pciModalias(
                    vendor: device.vendor, device: device.device, subsystemVendor: device.subsystemVendor,
                    subsystemDevice: device.subsystemDevice, classCode: device.classCode)
                #expect(device.modalias == synthesized, "\(snapshot) \(device.address)")
            }
        }
        #expect(
            ModuleAliases.pciModalias(vendor: "10de", device: "1b80", subsystemVendor: "1462", subsystemDevice: "3362", classCode: 0x030000)
                == "pci:v000010DEd00001B80sv00001462sd00003362bc03sc00i00")
    }

    /// modprobe.vfio without gpu.select: the functions with the given ids are found in sysfs.
    @Test func modprobeStepResolvesItsIDsWithoutASelection() throws {
        let temp = try TempRoot(copying: "fedora")
        let recipe = """
            name: ids-only
            steps:
              - {uses: modprobe.vfio, with: {ids: ["1002:73bf", "1002:ab28"], generator: none}}
            """
        try temp.write("/recipe.yaml", recipe)
        let result = try CLI.run(["apply", temp.real("/recipe.yaml"), "--root", temp.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            temp.read("/etc/modprobe.d/vfio.conf")
                == "options vfio-pci ids=1002:73bf,1002:ab28\nsoftdep amdgpu pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n")
    }
}
