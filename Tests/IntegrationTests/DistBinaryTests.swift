import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// The self-contained build (scripts/dist.sh; .ci/run makes it first and names it in
/// PROVISION_DIST_BINARY): `ldd` lists only glibc, and it plans the recipe on every snapshot
/// inside a chroot of the debootstrapped Debian 12 root, where no Swift runtime is installed.
@Suite struct DistBinaryTests {
    static var binary: String? {
        let path = ProcessInfo.processInfo.environment["PROVISION_DIST_BINARY"] ?? Package.path(".build-dist/release/provision")
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    @Test func linksOnlyGlibcAndPlansEverySnapshotInAChrootWithoutSwift() throws {
        guard let binary = Self.binary else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("no dist binary: scripts/dist.sh builds it") }
            return
        }
        let ldd = try ProcessRunner.run(["ldd", binary])
        let libraries = ldd.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for line in libraries {
            let glibc = ["linux-vdso.so", "/lib64/ld-linux", "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1"]
            #expect(glibc.contains { line.hasPrefix($0) || line.contains("/" + $0) || line.hasPrefix($0) }, "ldd lists \(line)")
        }
        let roots = ProcessInfo.processInfo.environment["PROVISION_TEST_ROOTS"] ?? "/var/cache/provision-tests"
        let root = roots + "/bookworm-grub"
        guard FileManager.default.fileExists(atPath: root + "/.complete") else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("\(root) is missing: scripts/make-test-roots.sh builds it") }
            return
        }
        let swift = try ProcessRunner.run(["find", root + "/usr", "-name", "libswiftCore.so*", "-o", "-name", "libFoundation.so*"])
        #expect(swift.output.isEmpty, "the chroot has no Swift runtime: \(swift.output)")

        // Everything goes onto a tmpfs over the root's /mnt in a private mount namespace: the
        // cached root itself never changes.
        let namespace = try MountNamespace()
        try namespace.mountTmpfs(root + "/mnt", bytes: 512 << 20)
        defer { namespace.unmount(root + "/mnt") }
        for (source, target) in [(binary, "/mnt/provision"), (Package.path("recipes/vfio-passthrough.yaml"), "/mnt/vfio-passthrough.yaml")] {
            let copy = try namespace.run(["cp", source, root + target])
            try #require(copy.status == 0, "\(copy)")
        }
        for family in SnapshotFamily.all {
            let copy = try namespace.run(["cp", "-a", Package.path("snapshots/\(family.name)"), root + "/mnt/\(family.name)"])
            try #require(copy.status == 0, "\(copy)")
            let plan = try namespace.run(
                ["chroot", root, "/mnt/provision", "plan", "/mnt/vfio-passthrough.yaml", "--root", "/mnt/\(family.name)", "--json"] + family.vars,
                timeout: 120)
            #expect(plan.status == 0, "\(family.name): \(plan.stderr)")
            let planned = try CLI.json(plan.stdout)["files"] as? [[String: Any]] ?? []
            #expect(!planned.isEmpty, "\(family.name): the plan changes files")
        }
        let version = try namespace.run(["chroot", root, "/mnt/provision", "--version"])
        #expect(version.status == 0 && version.stdout == provisionVersion + "\n", "\(version)")
    }
}
