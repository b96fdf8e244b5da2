import Foundation
import ProvisionCore
import ProvisionPlugins
import ProvisionTestSupport
import Testing

/// apply / re-apply / rollback / drift on a copy of the Arch snapshot, through the library.
@Suite struct EngineTests {
    let recipePath = Package.path("recipes/vfio-passthrough.yaml")

    func engine(_ temp: TempRoot) throws -> Engine {
        try Engine(root: HostRoot(temp.path), registry: builtinRegistry)
    }

    func recipe(_ text: String) throws -> Recipe {
        try Recipe.parse(text, file: "test.yaml", registry: builtinRegistry)
    }

    @Test func applyThenRollbackIsByteIdenticalWithModesAndOwners() throws {
        let temp = try TempRoot(copying: "arch")
        chmod(temp.real("/etc/default/grub"), 0o600)
        chown(temp.real("/etc/libvirt/qemu.conf"), 961, 961)
        let before = try temp.fingerprint()
        let engine = try engine(temp)
        let report = try engine.apply(try Recipe.load(path: recipePath, registry: builtinRegistry))
        #expect(report.changes.count == 8)
        #expect(temp.exists("/etc/modprobe.d/vfio.conf"))
        #expect(temp.read("/etc/X11/xorg.conf.d/20-nvidia.conf")?.contains("\n#    BusID          \"PCI:1:0:0\"") == true)
        var info = stat()
        stat(temp.real("/etc/default/grub"), &info)
        #expect(info.st_mode & 0o7777 == 0o600, "an edit keeps the file's mode")
        stat(temp.real("/etc/libvirt/qemu.conf"), &info)
        #expect(info.st_uid == 961, "an edit keeps the file's owner")

        let rollback = try engine.rollback()
        #expect(rollback.record.undid == [report.record.run])
        #expect(try temp.fingerprint() == before)
        #expect(!temp.exists("/etc/modprobe.d"), "the directory the run created is gone")
    }

    @Test func secondApplyChangesNothingAndRewritesNothing() throws {
        let temp = try TempRoot(copying: "arch")
        let engine = try engine(temp)
        let recipe = try Recipe.load(path: recipePath, registry: builtinRegistry)
        _ = try engine.apply(recipe)
        let identities = ["/etc/default/grub", "/etc/mkinitcpio.conf", "/etc/modprobe.d/vfio.conf", "/etc/libvirt/qemu.conf"]
            .map { fileIdentity(temp.real($0)) }
        let commitsBefore = try temp.git("rev-list", "--count", "main")
        let second = try engine.apply(recipe)
        #expect(second.changes.isEmpty)
        #expect(second.plan?.changedStepCount == 0)
        #expect(second.record.handlers.allSatisfy { $0.status == .skipped })
        #expect(identities == ["/etc/default/grub", "/etc/mkinitcpio.conf", "/etc/modprobe.d/vfio.conf", "/etc/libvirt/qemu.conf"]
            .map { fileIdentity(temp.real($0)) })
        let commitsAfter = try temp.git("rev-list", "--count", "main")
        #expect(Int(commitsAfter.trimmingCharacters(in: .whitespacesAndNewlines))! == Int(commitsBefore.trimmingCharacters(in: .whitespacesAndNewlines))! + 1)
    }

    @Test func driftIsRecordedAndRollbackRefusesUnlessForced() throws {
        let temp = try TempRoot(copying: "arch")
        let original = try temp.fingerprint()
        let engine = try engine(temp)
        _ = try engine.apply(try Recipe.load(path: recipePath, registry: builtinRegistry))
        let applied = temp.read("/etc/default/grub")!
        try temp.write("/etc/default/grub", applied + "GRUB_HAND_EDIT=1\n")

        do {
            _ = try engine.rollback()
            Issue.record("rollback should refuse")
        } catch let error as ProvisionError {
            #expect(error.kind == .drift)
            #expect(error.exitCode == 3)
            #expect(error.detail?.contains("+GRUB_HAND_EDIT=1") == true)
        }
        #expect(temp.read("/etc/default/grub") == applied + "GRUB_HAND_EDIT=1\n", "a refused rollback changes nothing")

        let forced = try engine.rollback(force: true)
        #expect(forced.drift == ["/etc/default/grub"])
        #expect(try temp.fingerprint() == original)
        let log = try temp.git("log", "--format=%s")
        #expect(log.contains("drift: 1 file(s) changed outside provision"))
        // The hand edit is kept in history, in the drift commit.
        let driftCommit = try temp.git("log", "--format=%H", "--grep=^drift:").split(separator: "\n")[0]
        #expect(try temp.git("show", "\(driftCommit):etc/default/grub").contains("GRUB_HAND_EDIT=1"))
    }

    @Test func driftBeforeApplyGetsItsOwnCommit() throws {
        let temp = try TempRoot(copying: "arch")
        let engine = try engine(temp)
        let recipe = try Recipe.load(path: recipePath, registry: builtinRegistry)
        _ = try engine.apply(recipe)
        try temp.write("/etc/modprobe.d/vfio.conf", "options vfio-pci ids=1234:5678\n")
        let report = try engine.apply(recipe)
        #expect(report.drift == ["/etc/modprobe.d/vfio.conf"])
        let subjects = try temp.git("log", "--format=%s").split(separator: "\n")
        #expect(subjects[0].hasPrefix("apply vfio-passthrough"))
        #expect(subjects[1].hasPrefix("drift: 1 file(s)"))
        // Rolling back the second run restores the hand edit, which is what was there before it.
        _ = try engine.rollback()
        #expect(temp.read("/etc/modprobe.d/vfio.conf") == "options vfio-pci ids=1234:5678\n")
    }

    @Test func rollbackToUndoesEveryLaterRun() throws {
        let temp = try TempRoot(copying: "arch")
        let original = try temp.fingerprint()
        let engine = try engine(temp)
        let first = try recipe("name: one\nsteps:\n  - {uses: file.content, with: {path: /etc/one.conf, content: one}}\n")
        let second = try recipe("name: two\nsteps:\n  - {uses: file.line, with: {path: /etc/one.conf, line: more}}\n  - {uses: file.content, with: {path: /etc/new/two.conf, content: two}}\n")
        let run1 = try engine.apply(first)
        _ = try engine.apply(second)
        #expect(temp.read("/etc/one.conf") == "one\nmore\n")
        let back = try engine.rollback(to: run1.record.run)
        #expect(back.record.undid == [2])
        #expect(temp.read("/etc/one.conf") == "one\n")
        #expect(!temp.exists("/etc/new"))
        _ = try engine.rollback()
        #expect(try temp.fingerprint() == original)
    }

    @Test func failingPlanChangesNothingAndCreatesNoHistory() throws {
        let temp = try TempRoot(copying: "arch")
        let original = try temp.fingerprint(excludingHistory: false)
        let engine = try engine(temp)
        let bad = try recipe("""
            name: bad
            steps:
              - {uses: file.content, with: {path: /etc/fine.conf, content: x}}
              - {uses: file.line, with: {path: /etc/default/grub, line: "x=1", match: "^y="}}
            """)
        #expect(throws: ProvisionError.self) { try engine.apply(bad) }
        #expect(try temp.fingerprint(excludingHistory: false) == original)
    }

    @Test func escapingSymlinkInRootIsRefusedAndNothingChanges() throws {
        let temp = try TempRoot(copying: "arch")
        try FileManager.default.createSymbolicLink(atPath: temp.real("/etc/escape"), withDestinationPath: "../../../../../tmp")
        let original = try temp.fingerprint(excludingHistory: false)
        let engine = try engine(temp)
        let escaping = try recipe("name: e\nsteps:\n  - {uses: file.content, with: {path: /etc/escape/pwned, content: x}}\n")
        #expect { try engine.apply(escaping) } throws: { ($0 as? ProvisionError)?.kind == .pathEscape }
        #expect(try temp.fingerprint(excludingHistory: false) == original)
        #expect(!FileManager.default.fileExists(atPath: "/tmp/pwned"))
    }

    @Test func planSeesEarlierStepsThroughTheOverlay() throws {
        let temp = try TempRoot(copying: "arch")
        let engine = try engine(temp)
        let chained = try recipe("""
            name: chain
            steps:
              - {uses: file.content, with: {path: /etc/chain.conf, content: "a"}}
              - {uses: file.line, with: {path: /etc/chain.conf, line: "b"}}
              - {uses: file.line, with: {path: /etc/chain.conf, line: "a", state: absent}}
            """)
        let plan = try engine.plan(chained)
        #expect(plan.changes.count == 1)
        #expect(plan.changes[0].after.content == Data("b\n".utf8))
        #expect(plan.steps.map(\.status) == [.changed, .changed, .changed])
        #expect(!temp.exists("/etc/chain.conf"), "plan writes nothing")
        #expect(!temp.exists("/var/lib/provision"), "plan creates no history")
        let report = try engine.apply(chained)
        #expect(temp.read("/etc/chain.conf") == "b\n")
        #expect(report.record.steps?.map(\.status) == [.changed, .changed, .changed])
    }

    @Test func factsComeFromTheRoot() throws {
        let temp = try TempRoot(copying: "arch")
        let facts = try Facts.gather(try HostRoot(temp.path))
        #expect(facts.lookup(["os", "id"]) == .string("arch"))
        #expect(facts.lookup(["cpu", "vendor"]) == .string("intel"))
        #expect(facts.lookup(["kernels"]) == .list([.string("6.1.87-1-lts"), .string("6.8.7-arch1-1")]))
        #expect(KernelVersion("6.10.1") > KernelVersion("6.2.0"))
    }
}
