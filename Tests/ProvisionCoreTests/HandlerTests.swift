import Foundation
import ProvisionCore
import ProvisionPlugins
import ProvisionTestSupport
import Testing

/// Handlers run inside the root through chroot when the root has the tool, once, only when
/// notified; otherwise they are reported as skipped with the reason.
@Suite(.serialized) struct HandlerTests {
    /// A root with a static busybox as /bin/sh, so `chroot ROOT sh` really runs.
    func rootWithShell() throws -> TempRoot {
        let temp = try TempRoot()
        try FileManager.default.createDirectory(atPath: temp.real("/bin"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: temp.real("/bin/busybox"))
        try FileManager.default.createSymbolicLink(atPath: temp.real("/bin/sh"), withDestinationPath: "busybox")
        return temp
    }

    func recipe(_ content: String) throws -> Recipe {
        try Recipe.parse("""
            name: handlers
            steps:
              - uses: file.content
                with: {path: /etc/a.conf, content: "\(content)", notify: [sh, -c, "echo ran >> /handler.log"]}
              - uses: file.content
                with: {path: /etc/b.conf, content: "\(content)", notify: [sh, -c, "echo ran >> /handler.log"]}
              - uses: file.content
                with: {path: /etc/c.conf, content: fixed, notify: [sh, -c, "echo other >> /other.log"]}
            """, file: "h.yaml", registry: builtinRegistry)
    }

    @Test func runsOnceInsideTheRootOnlyWhenNotified() throws {
        guard FileManager.default.fileExists(atPath: "/bin/busybox"), geteuid() == 0 else { return }
        let temp = try rootWithShell()
        let engine = try Engine(root: HostRoot(temp.path), registry: builtinRegistry)
        let first = try engine.apply(try recipe("one"))
        #expect(first.record.handlers.map(\.status) == [.ran, .ran])
        #expect(temp.read("/handler.log") == "ran\n", "two notifications, one run")
        #expect(temp.read("/other.log") == "other\n")

        let second = try engine.apply(try recipe("two"))
        #expect(second.record.handlers.map(\.status) == [.ran, .skipped])
        #expect(temp.read("/handler.log") == "ran\nran\n")
        #expect(temp.read("/other.log") == "other\n", "c.conf did not change, so its handler did not run")

        _ = try engine.rollback()
        #expect(temp.read("/handler.log") == "ran\nran\nran\n", "rollback re-runs the handlers of restored files")
    }

    @Test func noHandlersAndMissingToolsAreReportedAsSkipped() throws {
        let temp = try TempRoot()
        let engine = try Engine(root: HostRoot(temp.path), registry: builtinRegistry)
        let report = try engine.apply(try recipe("x"))
        #expect(report.record.handlers.allSatisfy { $0.status == .skipped })
        #expect(report.record.handlers[0].detail?.contains("sh is not installed in") == true)

        let withShell = try rootWithShell()
        let quiet = try Engine(root: HostRoot(withShell.path), registry: builtinRegistry)
        quiet.runHandlers = false
        let skipped = try quiet.apply(try recipe("x"))
        #expect(skipped.record.handlers.map(\.detail) == ["--no-handlers given", "--no-handlers given"])
        #expect(!withShell.exists("/handler.log"))
    }

    @Test func failedHandlerIsRetriedByTheNextApply() throws {
        guard FileManager.default.fileExists(atPath: "/bin/busybox"), geteuid() == 0 else { return }
        let temp = try rootWithShell()
        let engine = try Engine(root: HostRoot(temp.path), registry: builtinRegistry)
        let flaky = try Recipe.parse("""
            name: flaky
            steps:
              - uses: file.content
                with: {path: /etc/a.conf, content: x, notify: [sh, -c, "test -e /ok && echo ran >> /handler.log"]}
            """, file: "f.yaml", registry: builtinRegistry)
        let first = try engine.apply(flaky)
        #expect(first.failedHandlers.count == 1)
        try temp.write("/ok", "")
        let second = try engine.apply(flaky)
        #expect(second.changes.isEmpty)
        #expect(second.record.handlers.map(\.status) == [.ran])
        #expect(temp.read("/handler.log") == "ran\n")
    }
}
