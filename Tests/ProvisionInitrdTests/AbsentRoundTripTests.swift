import Foundation
import ProvisionCore
import ProvisionInitrd
import ProvisionTestSupport
import Testing

/// `state: absent` removes exactly what `present` added: for every fixture input without vfio
/// entries, present then absent gives the input back byte for byte.
@Suite struct AbsentRoundTripTests {
    /// Inputs where `present` also fixes something `absent` deliberately leaves fixed: modconf added
    /// to HOOKS, vendor-reset moved before the vfio modules, a final newline added.
    static let notPureAdditions: Set<String> = [
        "mkinitcpio-hooks-without-modconf", "mkinitcpio-vendor-reset-first", "initramfs-tools-no-final-newline",
    ]
    static let cases = (try? StepFixture.load("Tests/ProvisionInitrdTests/Fixtures"))?.filter { fixture in
        fixture.step == "initrd.modules" && fixture.error == nil && fixture.options.isEmpty
            && !fixture.files.values.contains { $0.contains("vfio") } && !notPureAdditions.contains(fixture.name)
    } ?? []

    @Test(arguments: cases)
    func presentThenAbsentRestoresTheInput(_ fixture: StepFixture) throws {
        var present = fixture
        present.expected = nil
        present.bash_arrays = nil
        var absent = fixture
        absent.options = ["state": .string("absent")]
        let registry = PluginRegistry(initrdSteps)
        let outcome = try present.runSequence([present, absent], registry: registry)
        for (path, content) in fixture.files {
            #expect(outcome[path] == content, "\(path)")
        }
        if fixture.files.isEmpty {
            #expect(outcome.values.allSatisfy { $0 == nil }, "the dracut drop-in is gone again")
        }
    }

    @Test func casesCoverEveryGenerator() {
        let names = Self.cases.map(\.name)
        #expect(names.contains { $0.hasPrefix("mkinitcpio") })
        #expect(names.contains { $0.hasPrefix("initramfs-tools") })
        #expect(names.contains { $0.hasPrefix("dracut") })
    }
}
