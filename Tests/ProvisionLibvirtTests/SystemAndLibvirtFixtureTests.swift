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

@Suite struct SystemUserLocationTests {
    /// A uid out of range is refused at the option's line and column in the recipe, and nothing is written.
    @Test(arguments: ["-5", "0", "4294967295", "4294967296"])
    func uidOutOfRangeNamesTheOption(uid: String) throws {
        let temp = try TempRoot()
        try temp.write("/etc/passwd", "root:x:0:0::/root:/bin/bash\n")
        try temp.write("/etc/group", "root:x:0:root\ninput:x:994:\n")
        let before = try temp.fingerprint(excludingHistory: false)
        let recipe = try Recipe.parse(
            "name: u\nsteps:\n  - uses: system.user\n    with:\n      name: vm\n      uid: \(uid)\n", file: "u.yaml",
            registry: SystemAndLibvirtFixtureTests.registry)
        let engine = try Engine(root: HostRoot(temp.path), registry: SystemAndLibvirtFixtureTests.registry)
        engine.runHandlers = false
        let error = try #require(throws: ProvisionError.self) { try engine.apply(recipe) }
        #expect(error.description.hasPrefix("u.yaml:6:12: uid \(uid) is out of range"), "\(error)")
        #expect(try temp.fingerprint(excludingHistory: false) == before)
    }
}
