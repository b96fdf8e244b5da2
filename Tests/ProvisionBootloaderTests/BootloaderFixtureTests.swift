import Foundation
import ProvisionBootloader
import ProvisionCore
import ProvisionEdit
import ProvisionInitrd
import ProvisionTestSupport
import Testing

/// Fixtures for kernel.cmdline (each boot loader) and vfio.cmdline: the edited files, what a real
/// sh sees in /etc/default/grub, notices (boot-loader detection, reboot required), a no-op second
/// apply, and a byte-exact rollback.
@Suite struct BootloaderFixtureTests {
    static let registry = PluginRegistry(bootloaderSteps + initrdSteps)

    @Test(arguments: try StepFixture.load("Tests/ProvisionBootloaderTests/Fixtures"))
    func fixture(_ fixture: StepFixture) throws {
        try fixture.check(registry: Self.registry)
    }
}

@Suite struct KernelCommandLineTests {
    func edit(_ line: String, add: [String] = [], remove: [String] = []) throws -> String {
        CommandLineEdit.apply(add: add, remove: remove, to: [try KernelCommandLine(parsing: line)])[0].description
    }

    @Test func addingThenRemovingGivesTheOriginalBack() throws {
        for original in ["", "quiet", "loglevel=3 quiet splash", "root=UUID=1 ro rootflags=subvol=root rhgb quiet"] {
            let added = try edit(original, add: ["intel_iommu=on", "iommu=pt", "vfio-pci.ids=10de:1b80,10de:10f0"])
            #expect(try edit(added, remove: ["intel_iommu", "iommu=pt", "vfio_pci.ids"]) == original)
        }
    }

    @Test func keysCompareWithDashAndUnderscoreAsEqual() throws {
        #expect(try edit("quiet vfio_pci.ids=1:2 splash", add: ["vfio-pci.ids=10de:1b80"]) == "quiet vfio-pci.ids=10de:1b80 splash")
        #expect(try edit("a=1 b a=2", add: ["a=3"]) == "a=3 b", "later duplicates would override: dropped")
        #expect(try edit("console=tty0", add: ["console=ttyS0,115200"]) == "console=tty0 console=ttyS0,115200")
        #expect(try edit("quiet iommu=pt", add: ["iommu=pt"]) == "quiet iommu=pt")
        #expect(try edit("init=\"/bin/sh -x\" quiet", add: ["iommu=pt"]) == "init=\"/bin/sh -x\" quiet iommu=pt")
    }

    @Test func tokensWithBlanksOrQuotesAreRefused() {
        #expect(throws: ProvisionError.self) { try KernelCommandLine.validate("a b") }
        #expect(throws: ProvisionError.self) { try KernelCommandLine.validate("a=\"b\"") }
        #expect(throws: ProvisionError.self) { try KernelCommandLine(parsing: "a=\"b") }
    }
}

/// Hostile nesting in JSON: a clean error with the file and line, never a crash of a recursive parser.
@Suite struct JSONNestingTests {
    /// A kernelstub configuration whose kernel_options hold `depth` nested arrays.
    static func configuration(depth: Int) -> String {
        "{\n  \"user\": {\n    \"kernel_options\": " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "\n  }\n}\n"
    }

    /// 20,000 levels crashed JSONSerialization (SIGSEGV); now the bounded walk refuses it first,
    /// and the root is left as it was.
    @Test func kernelstubConfigurationNested20000DeepIsRefusedWithItsLine() throws {
        let json = try JSONSerialization.data(withJSONObject: [
            "step": "kernel.cmdline",
            "options": ["add": ["iommu=pt"]],
            "files": [
                "/etc/kernelstub/configuration": Self.configuration(depth: 20_000),
                "/boot/efi/loader/loader.conf": "default @saved\n",
            ],
            "error": "/etc/kernelstub/configuration:3:",
        ])
        var fixture = try JSONDecoder().decode(StepFixture.self, from: json)
        fixture.name = "kernelstub-nested-20000"
        try fixture.check(registry: BootloaderFixtureTests.registry)
        let outcome = try fixture.run(registry: BootloaderFixtureTests.registry)
        #expect(outcome.error?.message.hasPrefix("malformed JSON: nested deeper than 256 levels") == true, "\(String(describing: outcome.error))")
    }

    @Test func depthUpToTheCapIsAcceptedAndOneMoreIsNot() throws {
        // The configuration's own object and "user" take two levels.
        let atCap = Self.configuration(depth: JSONLocator.maxDepth - 2)
        #expect(try JSONLocator.span(of: ["user", "kernel_options"], in: atCap, file: "c") != nil)
        let error = try #require(throws: ProvisionError.self) {
            try JSONLocator.span(of: [], in: Self.configuration(depth: JSONLocator.maxDepth - 1), file: "c")
        }
        #expect(error.description.hasPrefix("c:3:"), "\(error)")
        #expect(error.description.contains("nested deeper than 256 levels"))
    }
}

/// The boot loaders and initramfs generators are tables: the choices, the detection order and the
/// help text all come from them.
@Suite struct AdapterTableTests {
    @Test func choicesAndHelpComeFromTheTables() throws {
        let bootloader = try #require(KernelCmdline().options.first { $0.name == "bootloader" })
        #expect("\(bootloader.type)" == (["auto"] + bootLoaders.map(\.name)).joined(separator: "|"))
        #expect(bootLoaders.map(\.name) == ["kernelstub", "bls", "systemd-boot", "limine", "grub"])
        #expect(KernelCmdline().summary == "Add or remove kernel parameters in the boot loader the root uses (kernelstub, BLS, systemd-boot, Limine, GRUB).")
        let generator = try #require(InitrdModules().options.first { $0.name == "generator" })
        #expect("\(generator.type)" == "auto|mkinitcpio|dracut|initramfs-tools")
        #expect(initrdGenerators.map(\.listingTool) == ["lsinitcpio", "lsinitrd", "lsinitramfs"])
    }

    @Test func aStepKindRegisteredTwiceIsFound() {
        let plugins: [any StepPlugin] = bootloaderSteps + initrdSteps
        #expect(PluginRegistry.duplicateKinds(plugins).isEmpty)
        #expect(PluginRegistry.duplicateKinds(plugins + [KernelCmdline()]) == ["kernel.cmdline"])
    }
}
