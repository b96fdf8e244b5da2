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

    /// A daemon-style handler: runs with the host's tools on the root's real path, and re-writes
    /// the file in its own form (as libvirt does on `virsh define`). History keeps that form, so a
    /// rollback is not refused as if it were a hand edit.
    @Test func onHostHandlerRewritesAreRecordedAsLeft() throws {
        let temp = try TempRoot()
        try temp.write("/etc/app.xml", "old normalised\n")
        try FileManager.default.createDirectory(atPath: temp.real("/var/lib"), withIntermediateDirectories: true)
        let original = try temp.fingerprint()
        let registry = PluginRegistry([NormalisedFile()])
        let recipe = try Recipe.parse("name: daemon\nsteps:\n  - uses: test.normalised\n", file: "d.yaml", registry: registry)
        let engine = try Engine(root: HostRoot(temp.path), registry: registry)

        let first = try engine.apply(recipe)
        #expect(first.record.handlers.map(\.status) == [.ran], "\(first.record.handlers)")
        #expect(temp.read("/etc/app.xml") == "new normalised\n")
        #expect(try engine.apply(recipe).changes.isEmpty)
        #expect(try temp.git("show", "HEAD:etc/app.xml") == "new normalised\n", "history holds what the handler left")

        let rollback = try engine.rollback()
        #expect(rollback.record.handlers.map(\.status) == [.ran])
        #expect(try temp.fingerprint() == original)
    }
}

/// Writes "new" to /etc/app.xml unless it already says so; its handler appends " normalised".
struct NormalisedFile: StepPlugin {
    let kind = "test.normalised"
    let summary = "test"
    let options: [OptionSpec] = []

    func plan(_ step: StepContext) throws -> StepPlan {
        guard try step.host.text("/etc/app.xml")?.hasPrefix("new") != true else { return StepPlan() }
        let script = "sed -i -e '/normalised/!s/$/ normalised/' \"$1\""
        return StepPlan(
            files: [DesiredFile(path: "/etc/app.xml", state: .present(Data("new\n".utf8)))],
            handlers: [
                HandlerAction(
                    argv: ["sh", "-c", script, "sh", step.host.realPath("/etc/app.xml")], notifiedBy: ["/etc/app.xml"], onHost: true,
                    rewrites: ["/etc/app.xml"])
            ])
    }
}
