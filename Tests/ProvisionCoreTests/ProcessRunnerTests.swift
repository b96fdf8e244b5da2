import Foundation
import ProvisionCore
import Testing

@Suite struct ProcessRunnerTests {
    /// A handler must not inherit provision's descriptors: a daemon it starts would otherwise hold
    /// the root lock forever, and a file still open for writing could not be executed (ETXTBSY).
    @Test func childInheritsOnlyStandardDescriptors() throws {
        let inherited = open("/etc/hostname", O_RDONLY)  // deliberately without O_CLOEXEC
        defer { close(inherited) }
        let result = try ProcessRunner.run(["sh", "-c", "ls /proc/$$/fd"])
        #expect(result.status == 0, "\(result.output)")
        let descriptors = result.output.split(separator: "\n").compactMap { Int($0) }
        #expect(descriptors.contains(1))
        #expect(!descriptors.contains(Int(inherited)), "fd \(inherited) leaked into the child: \(descriptors)")
        #expect(descriptors.allSatisfy { $0 <= 3 }, "\(descriptors)")
    }

    @Test func exitStatusAndMergedOutput() throws {
        let result = try ProcessRunner.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
        #expect(result.status == 7)
        #expect(result.output == "out\nerr\n")
    }
}
