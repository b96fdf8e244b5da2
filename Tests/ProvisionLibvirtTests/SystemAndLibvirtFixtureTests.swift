import Foundation
import ProvisionCore
import ProvisionLibvirt
import ProvisionSystem
import ProvisionTestSupport
import Testing

/// Fixtures for system.user (passwd, group, shadow, gshadow), libvirt.qemu-conf and libvirt.domain: expected
/// files, a no-op second apply, and a byte-exact rollback.
@Suite struct SystemAndLibvirtFixtureTests {
    static let registry = PluginRegistry(systemSteps + libvirtSteps)

    @Test(arguments: try StepFixture.load("Tests/ProvisionLibvirtTests/Fixtures"))
    func fixture(_ fixture: StepFixture) throws {
        try fixture.check(registry: Self.registry)
    }
}
