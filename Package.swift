// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "provision",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "provision", targets: ["provision"]),
        .library(name: "ProvisionCore", targets: ["ProvisionCore"]),
        .library(name: "ProvisionFleet", targets: ["ProvisionFleet"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CGit2", path: "Sources/CGit2", pkgConfig: "libgit2",
            providers: [.apt(["libgit2-dev"])]),
        .systemLibrary(
            name: "CArchive", path: "Sources/CArchive", pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"])]),
        .systemLibrary(
            name: "CXML2", path: "Sources/CXML2", pkgConfig: "libxml-2.0",
            providers: [.apt(["libxml2-dev"])]),
        .target(name: "CSystem", path: "Sources/CSystem"),
        // What plugin modules see: the read-only host view, options, plans, and the pure planner.
        // Nothing in it writes, spawns or opens a socket; plugin modules depend on it and never on
        // ProvisionCore (PurityTests checks both).
        .target(name: "ProvisionPluginAPI", dependencies: ["CSystem"], path: "Sources/ProvisionPluginAPI"),
        .target(
            name: "ProvisionCore",
            dependencies: ["ProvisionPluginAPI", "CGit2", "CArchive", "CSystem", .product(name: "Yams", package: "Yams")],
            path: "Sources/ProvisionCore"),
        .target(name: "ProvisionEdit", dependencies: ["ProvisionPluginAPI", "CXML2"], path: "Sources/ProvisionEdit"),
        .target(
            name: "ProvisionFiles", dependencies: ["ProvisionPluginAPI"], path: "Plugins/Files"),
        .target(
            name: "ProvisionInitrd", dependencies: ["ProvisionPluginAPI", "ProvisionEdit"], path: "Plugins/Initrd"),
        .target(name: "ProvisionDevices", dependencies: ["ProvisionPluginAPI"], path: "Plugins/Devices"),
        .target(name: "ProvisionSystem", dependencies: ["ProvisionPluginAPI"], path: "Plugins/System"),
        .target(
            name: "ProvisionLibvirt", dependencies: ["ProvisionPluginAPI", "ProvisionEdit", "ProvisionDevices", "ProvisionROM"],
            path: "Plugins/Libvirt"),
        .target(
            name: "ProvisionROM", dependencies: ["ProvisionPluginAPI", "ProvisionEdit", "ProvisionDevices", "CArchive"], path: "Plugins/ROM"),
        .target(
            name: "ProvisionBootloader", dependencies: ["ProvisionPluginAPI", "ProvisionEdit", "ProvisionInitrd", "ProvisionDevices"],
            path: "Plugins/Bootloader"),
        .target(
            name: "ProvisionModprobe", dependencies: ["ProvisionPluginAPI", "ProvisionEdit", "ProvisionInitrd", "ProvisionDevices"],
            path: "Plugins/Modprobe"),
        .target(
            name: "ProvisionTuning",
            dependencies: ["ProvisionPluginAPI", "ProvisionEdit", "ProvisionInitrd", "ProvisionBootloader", "ProvisionLibvirt", "ProvisionDevices"],
            path: "Plugins/Tuning"),
        .target(
            name: "ProvisionPlugins",
            dependencies: [
                "ProvisionPluginAPI", "ProvisionFiles", "ProvisionInitrd", "ProvisionModprobe", "ProvisionBootloader", "ProvisionDevices",
                "ProvisionROM", "ProvisionSystem", "ProvisionLibvirt", "ProvisionTuning",
            ],
            path: "Plugins/Builtin"),
        .target(
            name: "ProvisionVerify", dependencies: ["ProvisionCore", "ProvisionEdit", "ProvisionDevices", "ProvisionInitrd"],
            path: "Sources/ProvisionVerify"),
        .target(
            name: "ProvisionFleet", dependencies: ["ProvisionCore", "CSystem", .product(name: "Yams", package: "Yams")],
            path: "Sources/ProvisionFleet"),
        .executableTarget(
            name: "provision",
            dependencies: [
                "ProvisionCore", "ProvisionPlugins", "ProvisionDevices", "ProvisionROM", "ProvisionVerify", "ProvisionFleet", "CSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/provision"),
        .executableTarget(
            name: "provision-bench",
            dependencies: ["ProvisionCore", "ProvisionPlugins"],
            path: "Sources/provision-bench"),
        .target(name: "ProvisionTestSupport", dependencies: ["ProvisionCore", "CSystem"], path: "Tests/Support"),
        .testTarget(
            name: "ProvisionCoreTests",
            dependencies: [
                "ProvisionCore", "ProvisionPlugins", "ProvisionTestSupport", "CSystem", .product(name: "Yams", package: "Yams"),
            ],
            path: "Tests/ProvisionCoreTests"),
        .testTarget(
            name: "ProvisionFilesTests",
            dependencies: ["ProvisionCore", "ProvisionFiles", "ProvisionTestSupport"],
            path: "Tests/ProvisionFilesTests",
            exclude: ["Fixtures"]),
        .testTarget(
            name: "ProvisionInitrdTests",
            dependencies: ["ProvisionCore", "ProvisionInitrd", "ProvisionModprobe", "ProvisionTestSupport"],
            path: "Tests/ProvisionInitrdTests",
            exclude: ["Fixtures"]),
        .testTarget(
            name: "ProvisionBootloaderTests",
            dependencies: ["ProvisionCore", "ProvisionEdit", "ProvisionBootloader", "ProvisionInitrd", "ProvisionTestSupport"],
            path: "Tests/ProvisionBootloaderTests",
            exclude: ["Fixtures"]),
        .testTarget(
            name: "ProvisionDevicesTests",
            dependencies: ["provision", "ProvisionCore", "ProvisionDevices", "ProvisionTestSupport"],
            path: "Tests/ProvisionDevicesTests",
            exclude: ["lspci"]),
        .testTarget(
            name: "ProvisionROMTests",
            dependencies: ["provision", "ProvisionCore", "ProvisionROM", "ProvisionTestSupport"],
            path: "Tests/ProvisionROMTests"),
        .testTarget(
            name: "ProvisionLibvirtTests",
            dependencies: ["ProvisionCore", "ProvisionEdit", "ProvisionSystem", "ProvisionLibvirt", "ProvisionTestSupport"],
            path: "Tests/ProvisionLibvirtTests",
            exclude: ["Fixtures"]),
        .testTarget(
            name: "ProvisionTuningTests",
            dependencies: ["ProvisionCore", "ProvisionEdit", "ProvisionTuning", "ProvisionModprobe", "ProvisionTestSupport"],
            path: "Tests/ProvisionTuningTests",
            exclude: ["Fixtures"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["provision", "ProvisionCore", "ProvisionEdit", "ProvisionTestSupport", "CSystem"],
            path: "Tests/IntegrationTests"),
        .testTarget(
            name: "CLITests",
            dependencies: ["provision", "ProvisionCore", "ProvisionTestSupport"],
            path: "Tests/CLITests",
            exclude: ["Golden"]),
        .testTarget(
            name: "ProvisionFleetTests",
            dependencies: ["ProvisionFleet", "ProvisionCore", "ProvisionTestSupport"],
            path: "Tests/ProvisionFleetTests",
            exclude: ["Inventories"]),
        .testTarget(
            name: "FleetTests",
            dependencies: ["provision", "ProvisionFleet", "ProvisionCore", "ProvisionTestSupport"],
            path: "Tests/FleetTests"),
        .testTarget(
            name: "SafetyTests",
            dependencies: ["provision", "ProvisionCore", "ProvisionTestSupport"],
            path: "Tests/SafetyTests"),
    ],
    swiftLanguageModes: [.v6]
)
