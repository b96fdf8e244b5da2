import Foundation
import ProvisionCore
import ProvisionFiles
import ProvisionTestSupport
import Testing

/// One JSON fixture per case (Tests/ProvisionFilesTests/Fixtures): apply, compare with `expected`,
/// then a second apply must change nothing and a rollback must restore the input byte for byte.
@Suite struct FileStepFixtureTests {
    @Test(arguments: try StepFixture.load("Tests/ProvisionFilesTests/Fixtures"))
    func fixture(_ fixture: StepFixture) throws {
        try fixture.check(registry: PluginRegistry(fileSteps))
    }
}
