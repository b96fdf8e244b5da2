import Foundation
import ProvisionCore
import ProvisionInitrd
import ProvisionModprobe
import ProvisionTestSupport
import Testing

/// Fixtures for initrd.modules (each generator) and modprobe.vfio: the edited file, what bash sees
/// when it sources mkinitcpio.conf, the notices, a no-op second apply, and a byte-exact rollback.
@Suite struct InitrdFixtureTests {
    static let registry = PluginRegistry(initrdSteps + modprobeSteps)

    @Test(arguments: try StepFixture.load("Tests/ProvisionInitrdTests/Fixtures"))
    func fixture(_ fixture: StepFixture) throws {
        try fixture.check(registry: Self.registry)
    }
}
