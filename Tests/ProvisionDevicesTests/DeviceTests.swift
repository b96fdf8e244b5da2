import Foundation
import ProvisionCore
import ProvisionDevices
import ProvisionTestSupport
import Testing

/// `provision devices --json` on every snapshot: the GPUs, their functions and ids, IOMMU groups
/// and verdicts, and what `gpu: auto` picks.
@Suite struct SnapshotDeviceTests {
    struct Expected: Sendable, CustomTestStringConvertible {
        var snapshot: String
        var iommu: Bool
        var gpus: [String: (ids: [String], verdict: String, bootVGA: Bool)]
        var auto: String
        var testDescription: String { snapshot }
    }

    static let cases: [Expected] = [
        Expected(snapshot: "arch", iommu: true, gpus: [
            "0000:00:02.0": (["8086:3e92"], "alone", true),
            "0000:01:00.0": (["10de:1b80", "10de:10f0"], "alone", false),
        ], auto: "0000:01:00.0"),
        Expected(snapshot: "fedora", iommu: true, gpus: [
            "0000:0b:00.0": (["10de:128b", "10de:0e0f"], "alone", true),
            "0000:0c:00.0": (["1002:73bf", "1002:ab28", "1002:73a6", "1002:73a4"], "alone", false),
        ], auto: "0000:0c:00.0"),
        Expected(snapshot: "debian", iommu: true, gpus: [
            "0000:00:02.0": (["8086:3e98"], "alone", true),
            "0000:01:00.0": (["10de:1c82", "10de:0fb9"], "shared", false),
        ], auto: "0000:01:00.0"),
        Expected(snapshot: "ubuntu", iommu: false, gpus: [
            "0000:01:00.0": (["10de:2484", "10de:228b"], "unknown", true),
            "0000:02:00.0": (["10de:2484", "10de:228b"], "unknown", false),
        ], auto: "0000:02:00.0"),
        Expected(snapshot: "popos", iommu: true, gpus: [
            "0000:01:00.0": (["10de:2503", "10de:228e"], "only-bridges", false),
            "0000:07:00.0": (["1002:1638", "1002:1637"], "only-bridges", true),
        ], auto: "0000:01:00.0"),
    ]

    @Test(arguments: cases)
    func devicesJSON(_ expected: Expected) throws {
        let result = try CLI.run(["devices", "--root", Package.path("snapshots/\(expected.snapshot)"), "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let document = try CLI.json(result.stdout)
        #expect(document["iommu_active"] as? Bool == expected.iommu)
        let gpus = try #require(document["gpus"] as? [[String: Any]])
        #expect(gpus.count == expected.gpus.count)
        for gpu in gpus {
            let device = try #require(gpu["device"] as? [String: Any])
            let address = try #require(device["address"] as? String)
            let want = try #require(expected.gpus[address], "unexpected GPU \(address)")
            #expect(gpu["ids"] as? [String] == want.ids, "\(address)")
            #expect(gpu["verdict"] as? String == want.verdict, "\(address)")
            #expect(device["boot_vga"] as? Bool == want.bootVGA, "\(address)")
        }
        let report = try DeviceReport.read(HostView(root: HostRoot(Package.path("snapshots/\(expected.snapshot)"))))
        #expect(try report.select("auto").device.address == expected.auto)
    }

    @Test func sharedGroupNamesTheOtherDevice() throws {
        let result = try CLI.run(["devices", "--root", Package.path("snapshots/debian"), "--json"])
        let gpus = try #require(try CLI.json(result.stdout)["gpus"] as? [[String: Any]])
        let shared = try #require(gpus.first { ($0["verdict"] as? String) == "shared" })
        #expect(shared["shared_with"] as? [String] == ["0000:02:00.0 USB controller"])
    }

    @Test func namesComeFromTheRootsPciIds() throws {
        let result = try CLI.run(["devices", "--root", Package.path("snapshots/arch")])
        #expect(result.stdout.contains("GPU 0000:01:00.0  [10de:1b80]  NVIDIA Corporation GP104 [GeForce GTX 1080]"))
        #expect(result.stdout.contains("+ 0000:01:00.1  [10de:10f0]  NVIDIA Corporation GP104 High Definition Audio Controller  driver: snd_hda_intel"))
    }

    @Test func selectionByAddressAndIdAndItsErrors() throws {
        let ubuntu = try DeviceReport.read(HostView(root: HostRoot(Package.path("snapshots/ubuntu"))))
        #expect(try ubuntu.select("02:00.0").device.address == "0000:02:00.0")
        #expect { try ubuntu.select("10de:2484") } throws: { "\($0)".contains("matches 2 cards; pick one by address") }
        #expect { try ubuntu.select("1234:5678") } throws: { "\($0)".contains("no GPU matches 1234:5678") }
        #expect { try ubuntu.select("the big one") } throws: { "\($0)".contains("gpu must be auto") }
        // Two GPUs, neither the boot VGA device: auto cannot choose and lists them.
        var twoGuests = ubuntu
        twoGuests = DeviceReport(
            devices: ubuntu.devices.map { var device = $0; device.bootVGA = false; return device }, iommu: [], cpuVendor: "intel")
        #expect { try twoGuests.select("auto") } throws: { error in
            "\(error)".contains("ambiguous") && "\(error)".contains("0000:01:00.0") && "\(error)".contains("0000:02:00.0")
        }
    }

    @Test func thisMachinesOwnSysWorks() throws {
        let result = try CLI.run(["devices", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let document = try CLI.json(result.stdout)
        #expect(document["devices"] is [[String: Any]])
        let human = try CLI.run(["devices"])
        #expect(human.status == 0)
        #expect(human.stdout.hasPrefix("IOMMU: "))
    }
}

@Suite struct LspciParserTests {
    func load(_ name: String) throws -> String {
        try String(contentsOfFile: Package.path("Tests/ProvisionDevicesTests/lspci/\(name)"), encoding: .utf8)
    }

    @Test func nvidiaDesktopWithDriversAndModules() throws {
        let devices = try LspciParser.parse(try load("nvidia-desktop.txt"))
        #expect(devices.map(\.address) == ["0000:00:00.0", "0000:00:01.0", "0000:00:02.0", "0000:01:00.0", "0000:01:00.1"])
        let gpu = devices[3]
        #expect(gpu.id == "10de:1b80")
        #expect(gpu.classCode == 0x030000)
        #expect(gpu.name == "NVIDIA Corporation GP104 [GeForce GTX 1080]")
        #expect(gpu.driver == "vfio-pci")
        #expect(gpu.modules == ["nouveau", "nvidia_drm", "nvidia"])
        #expect(gpu.subsystemVendor == "1462" && gpu.subsystemDevice == "3362")
        #expect(devices[2].name == "Intel Corporation CoffeeLake-S GT2 [UHD Graphics 630]", "prog-if is not part of the name")
        let report = DeviceReport(devices: devices, iommu: [], cpuVendor: "intel")
        #expect(report.gpus.map(\.ids) == [["8086:3e92"], ["10de:1b80", "10de:10f0"]])
        #expect(report.gpus.allSatisfy { $0.verdict == .unknown })
    }

    @Test func domainsMissingDriverAndFunctionsOfOneCard() throws {
        let devices = try LspciParser.parse(try load("amd-domains.txt"))
        let radeon = try #require(devices.first { $0.id == "1002:73bf" })
        #expect(radeon.driver == nil, "no Kernel driver in use line")
        #expect(radeon.modules == ["amdgpu"])
        let report = DeviceReport(devices: devices, iommu: [], cpuVendor: "amd")
        let card = try #require(report.gpus.first { $0.device.id == "1002:73bf" })
        #expect(card.ids == ["1002:73bf", "1002:ab28", "1002:73a6", "1002:73a4"])
        #expect(devices.first { $0.id == "1002:73a6" }?.classCode == 0x0c0300)
    }

    @Test func malformedLineNamesFileAndLine() throws {
        #expect { try LspciParser.parse(try load("malformed.txt"), file: "malformed.txt") } throws: { error in
            "\(error)".hasPrefix("malformed.txt:1:1: not an lspci -nnk device line")
        }
        let cli = try CLI.run(["devices", "--lspci", Package.path("Tests/ProvisionDevicesTests/lspci/nvidia-desktop.txt"), "--json"])
        #expect(cli.status == 0, "\(cli.stderr)")
        #expect((try CLI.json(cli.stdout)["gpus"] as? [[String: Any]])?.count == 2)
    }
}
