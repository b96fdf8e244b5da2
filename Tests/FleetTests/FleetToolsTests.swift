import Foundation
import ProvisionTestSupport
import Testing

/// In CI the fleet suites must run, not skip: their tools missing there is a failure.
@Suite struct FleetToolsTests {
    @Test func fleetToolsArePresentInCI() {
        guard ProcessInfo.processInfo.environment["CI"] != nil else { return }
        #expect(TestFleet.available, Comment(rawValue: TestFleet.missing))
        #expect(Ansible.available, Comment(rawValue: Ansible.missing))
    }
}
