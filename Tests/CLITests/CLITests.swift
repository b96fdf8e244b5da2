import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// The CLI contract other tools script against: JSON shape, exit codes, and a history plain git reads.
@Suite struct CLITests {
    let recipe = Package.path("recipes/vfio-passthrough.yaml")

    @Test func planApplyReapplyRollbackThroughTheCLI() throws {
        let temp = try TempRoot(copying: "arch")
        let original = try temp.fingerprint()

        let plan = try CLI.run(["plan", recipe, "--root", temp.path, "--detailed-exitcode"])
        #expect(plan.status == 2, "\(plan.stderr)")
        #expect(plan.stdout.contains("+options vfio-pci ids=10de:1b80,10de:10f0"))
        #expect(plan.stdout.contains("-GRUB_CMDLINE_LINUX_DEFAULT=\"loglevel=3 quiet\""))

        let apply = try CLI.run(["apply", recipe, "--root", temp.path, "--json"])
        #expect(apply.status == 0, "\(apply.stderr)")
        let document = try CLI.json(apply.stdout)
        #expect(document["run"] as? Int == 1)
        #expect(document["changed"] as? Int == 7)
        #expect(document["reboot_required"] as? Bool == true)
        let steps = try #require(document["steps"] as? [[String: Any]])
        #expect(steps.map { $0["status"] as? String } == [
            "ok", "changed", "changed", "changed", "changed", "ok", "ok", "changed", "changed", "skipped", "skipped", "changed", "skipped", "skipped",
            "skipped",
        ])
        #expect(steps.map { $0["id"] as? String } == [
            "select-gpu", "firmware-hint", "modprobe-vfio", "initramfs-modules", "kernel-cmdline", "reset-quirk", "bind-by-address", "vm-user",
            "qemu-conf", "rom-from-url", "rom-from-file", "guest", "pin-cpus", "hugepages", "looking-glass",
        ])
        #expect(steps.allSatisfy { $0["uses"] is String })

        let again = try CLI.run(["apply", recipe, "--root", temp.path, "--json"])
        let againDocument = try CLI.json(again.stdout)
        #expect(againDocument["changed"] as? Int == 0)
        #expect(againDocument["run"] as? Int == 2)
        let noop = try CLI.run(["plan", recipe, "--root", temp.path, "--detailed-exitcode"])
        #expect(noop.status == 0)

        let history = try CLI.run(["history", "--root", temp.path, "--json"])
        let runs = try CLI.json(history.stdout)["entries"] as? [[String: Any]]
        #expect(runs?.map { $0["action"] as? String } == ["apply", "apply", "pre-state"])
        let grubOnly = try CLI.run(["history", "/etc/default/grub", "--root", temp.path, "-n", "1"])
        #expect(grubOnly.stdout.split(separator: "\n").count == 1)

        let show = try CLI.run(["show", "1", "--root", temp.path])
        #expect(show.stdout.contains("+MODULES=(vfio_pci vfio vfio_iommu_type1)"))

        let rollback = try CLI.run(["rollback", "--root", temp.path])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(try temp.fingerprint() == original)
    }

    @Test func plainGitReadsTheHistory() throws {
        let temp = try TempRoot(copying: "arch")
        _ = try CLI.run(["apply", recipe, "--root", temp.path])
        _ = try CLI.run(["rollback", "--root", temp.path])
        var info = stat()
        stat(temp.historyPath, &info)
        #expect(info.st_mode & 0o777 == 0o700)
        let log = try temp.git("log", "--format=%s%n%(trailers:key=Provision-Run,key=Provision-Action,valueonly,separator=%x2C)")
        let lines = log.split(separator: "\n")
        #expect(lines.contains("rollback run 1: 8 file(s) restored"))
        #expect(lines.contains("2,rollback"))
        #expect(lines.contains("1,apply"))
        #expect(lines.contains("1,pre-state"))
        let trailers = try temp.git("log", "-1", "--skip=1", "--format=%(trailers)")
        for key in ["Provision-Run: 1", "Provision-Action: apply", "Provision-Recipe: vfio-passthrough", "Provision-Host: archbox",
            "Provision-User:", "Provision-Version: 0.1.0"]
        {
            #expect(trailers.contains(key), "\(key) in \(trailers)")
        }
        let show = try temp.git("show", "HEAD~1", "--", "etc/default/grub")
        #expect(show.contains("+GRUB_CMDLINE_LINUX_DEFAULT=\"loglevel=3 quiet intel_iommu=on iommu=pt\""))
        _ = try temp.git("fsck", "--strict")
        let record = try temp.git("show", "HEAD~1:.provision/run.json")
        #expect(record.contains("\"recipeName\" : \"vfio-passthrough\""))
        let meta = try temp.git("show", "HEAD:.provision/meta.json")
        #expect(meta.contains("\"etc/modprobe.d/vfio.conf\" : {\n    \"type\" : \"absent\""))
    }

    @Test func driftMakesRollbackExit3WithTheDiff() throws {
        let temp = try TempRoot(copying: "arch")
        _ = try CLI.run(["apply", recipe, "--root", temp.path])
        try temp.write("/etc/mkinitcpio.conf", temp.read("/etc/mkinitcpio.conf")! + "# hand edit\n")
        let refused = try CLI.run(["rollback", "--root", temp.path])
        #expect(refused.status == 3)
        #expect(refused.stderr.contains("+# hand edit"))
        #expect(refused.stderr.contains("/etc/mkinitcpio.conf"))
        let json = try CLI.run(["rollback", "--root", temp.path, "--json"])
        #expect(json.status == 3)
        #expect((try CLI.json(json.stdout)["error"] as? [String: Any])?["kind"] as? String == "drift")
        let forced = try CLI.run(["rollback", "--root", temp.path, "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(!(temp.read("/etc/mkinitcpio.conf")!.contains("hand edit")))
    }

    @Test func badInputNamesFileLineColumnAndChangesNothing() throws {
        let temp = try TempRoot(copying: "arch")
        let original = try temp.fingerprint(excludingHistory: false)
        try temp.write("/recipes/bad.yaml", "name: bad\nsteps:\n  - uses: file.content\n    with:\n      path: /etc/x\n      content: [oops\n")
        try temp.write("/recipes/kind.yaml", "name: bad\nsteps:\n  - uses: file.contents\n    with: {path: /etc/x}\n")
        try temp.write("/recipes/escape.yaml", "name: bad\nsteps:\n  - uses: file.absent\n    with: {path: /etc/../../etc/passwd}\n")
        let after = try temp.fingerprint(excludingHistory: false)
        let malformed = try CLI.run(["apply", temp.real("/recipes/bad.yaml"), "--root", temp.path])
        #expect(malformed.status == 1)
        #expect(malformed.stderr.contains("\(temp.real("/recipes/bad.yaml")):7:1: malformed YAML"), "\(malformed.stderr)")
        let unknown = try CLI.run(["apply", temp.real("/recipes/kind.yaml"), "--root", temp.path])
        #expect(unknown.stderr.contains("kind.yaml:3:11: unknown step kind \"file.contents\""), "\(unknown.stderr)")
        let escape = try CLI.run(["apply", temp.real("/recipes/escape.yaml"), "--root", temp.path])
        #expect(escape.status == 1)
        #expect(escape.stderr.contains("escape.yaml:4:18: path \"/etc/../../etc/passwd\" has a \".\" or \"..\" component"), "\(escape.stderr)")
        let badVar = try CLI.run(["apply", recipe, "--root", temp.path, "--var", "nope=1"])
        #expect(badVar.stderr.contains("declares no variable \"nope\""))
        let badFlag = try CLI.run(["apply", recipe, "--root", temp.path, "--var", "novalue"])
        #expect(badFlag.status != 0)
        #expect(try temp.fingerprint(excludingHistory: false) == after)
        #expect(original.count + 3 + 1 == after.count, "only the test's own recipe files were added")
    }

    @Test func twoConcurrentAppliesBothLandInOrder() throws {
        let temp = try TempRoot(copying: "arch")
        try temp.write("/recipes/a.yaml", "name: a\nsteps:\n" + (1...20).map { "  - {uses: file.content, with: {path: /etc/a/\($0).conf, content: a}}\n" }.joined())
        try temp.write("/recipes/b.yaml", "name: b\nsteps:\n" + (1...20).map { "  - {uses: file.content, with: {path: /etc/a/\($0).conf, content: b}}\n" }.joined())
        let first = try CLI.start(["apply", temp.real("/recipes/a.yaml"), "--root", temp.path, "--json"])
        let second = try CLI.start(["apply", temp.real("/recipes/b.yaml"), "--root", temp.path, "--json"])
        let results = [first.wait(), second.wait()]
        #expect(results.map(\.status) == [0, 0], "\(results.map(\.stderr))")
        let runs = try results.map { try CLI.json($0.stdout)["run"] as? Int }
        #expect(Set(runs.compactMap { $0 }) == [1, 2])
        let actions = try temp.git("log", "--format=%(trailers:key=Provision-Run,key=Provision-Action,valueonly,separator=%x2C)")
            .split(separator: "\n").filter { !$0.isEmpty }
        #expect(actions == ["2,apply", "1,apply", "1,pre-state"])
        let winner = runs[0] == 2 ? "a" : "b"
        #expect(temp.read("/etc/a/7.conf") == "\(winner)\n", "the later run's content is on disk")
    }

    @Test func killedMidRunRecoversOnNextApply() throws {
        let temp = try TempRoot(copying: "arch")
        let crashed = try CLI.run(["apply", recipe, "--root", temp.path], environment: ["PROVISION_TEST_CRASH_AFTER_WRITES": "2"])
        #expect(crashed.signal == 9)
        #expect(FileManager.default.fileExists(atPath: temp.historyPath + "/provision-journal.json"))
        #expect(temp.exists("/etc/modprobe.d/vfio.conf"), "the second write landed before the kill")
        #expect(!temp.read("/etc/mkinitcpio.conf")!.contains("vfio_pci"), "the third did not")

        let resumed = try CLI.run(["apply", recipe, "--root", temp.path, "--json"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let document = try CLI.json(resumed.stdout)
        #expect(document["recovered"] as? Int == 1)
        #expect(!FileManager.default.fileExists(atPath: temp.historyPath + "/provision-journal.json"))
        let actions = try temp.git("log", "--format=%(trailers:key=Provision-Run,key=Provision-Action,valueonly,separator=%x2C)")
            .split(separator: "\n").filter { !$0.isEmpty }
        #expect(actions == ["3,apply", "2,recover", "1,pre-state"])

        let fresh = try TempRoot(copying: "arch")
        _ = try CLI.run(["apply", recipe, "--root", fresh.path])
        #expect(try temp.fingerprint() == fresh.fingerprint(), "same result as an uninterrupted apply")
    }

    /// Recovery works from the journal as it was written and never rewrites it, so crashes during
    /// recovery, as many as happen, lose neither a path nor the directory the run created.
    @Test func crashesDuringRecoveryLoseNothing() throws {
        let temp = try TempRoot(copying: "arch")
        let original = try temp.fingerprint()
        #expect(!temp.exists("/etc/modprobe.d"))
        let first = try CLI.run(["apply", recipe, "--root", temp.path], environment: ["PROVISION_TEST_CRASH_AFTER_WRITES": "2"])
        #expect(first.signal == 9)
        #expect(temp.exists("/etc/modprobe.d/vfio.conf"), "run 1 created the directory and its file")
        for attempt in 1...2 {
            let again = try CLI.run(["rollback", "--root", temp.path], environment: ["PROVISION_TEST_CRASH_AFTER_WRITES": "1"])
            #expect(again.signal == 9, "recovery \(attempt) is killed after putting back one file")
            #expect(FileManager.default.fileExists(atPath: temp.historyPath + "/provision-journal.json"), "the journal survives")
        }
        let finished = try CLI.run(["rollback", "--root", temp.path])
        #expect(finished.status == 0, "\(finished.stderr)")
        #expect(try temp.fingerprint() == original)
        #expect(!temp.exists("/etc/modprobe.d"), "the directory run 1 created is gone too")
        #expect(!FileManager.default.fileExists(atPath: temp.historyPath + "/provision-journal.json"))
    }

    /// A handler that failed stays due across later runs, recoveries and crashes, until it runs.
    @Test func failedHandlerIsRetriedAfterACrashAndRecovery() throws {
        guard FileManager.default.fileExists(atPath: "/bin/busybox"), geteuid() == 0 else { return }
        let temp = try TempRoot()
        try FileManager.default.createDirectory(atPath: temp.real("/bin"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: temp.real("/bin/busybox"))
        try FileManager.default.createSymbolicLink(atPath: temp.real("/bin/sh"), withDestinationPath: "busybox")
        // The handler fails until /etc/ok exists.
        let handler = "[sh, -c, 'test -e /etc/ok && echo rebuilt >> /rebuilt.log']"
        try temp.write("/a.yaml", "name: a\nsteps:\n  - {uses: file.content, with: {path: /etc/a.conf, content: a, notify: \(handler)}}\n")
        try temp.write(
            "/b.yaml",
            "name: b\nsteps:\n  - {uses: file.content, with: {path: /etc/b1.conf, content: b}}\n"
                + "  - {uses: file.content, with: {path: /etc/b2.conf, content: b}}\n")
        let failed = try CLI.run(["apply", temp.real("/a.yaml"), "--root", temp.path])
        #expect(failed.status == 1 && failed.stderr.contains("failed"), "\(failed.stderr)")
        let crashed = try CLI.run(["apply", temp.real("/b.yaml"), "--root", temp.path], environment: ["PROVISION_TEST_CRASH_AFTER_WRITES": "1"])
        #expect(crashed.signal == 9)
        try temp.write("/etc/ok", "")
        let recovered = try CLI.run(["apply", temp.real("/b.yaml"), "--root", temp.path, "--json"])
        #expect(recovered.status == 0, "\(recovered.stderr)")
        #expect(try CLI.json(recovered.stdout)["recovered"] as? Int == 2)
        #expect(temp.read("/rebuilt.log") == "rebuilt\n", "the handler that failed in run 1 ran after the recovery")
        let quiet = try CLI.run(["apply", temp.real("/b.yaml"), "--root", temp.path])
        #expect(quiet.status == 0)
        #expect(temp.read("/rebuilt.log") == "rebuilt\n", "and only once")
    }

    @Test func killedMidRunRecoversOnRollback() throws {
        let temp = try TempRoot(copying: "arch")
        let original = try temp.fingerprint()
        let crashed = try CLI.run(["apply", recipe, "--root", temp.path], environment: ["PROVISION_TEST_CRASH_AFTER_WRITES": "3"])
        #expect(crashed.signal == 9)
        let rollback = try CLI.run(["rollback", "--root", temp.path])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(rollback.stdout.contains("recover: undid interrupted apply run 1"))
        #expect(try temp.fingerprint() == original)
        // Nothing is lost: the pre-state commit still holds every original.
        #expect(try temp.git("show", "HEAD~1:etc/X11/xorg.conf.d/20-nvidia.conf").contains("\n    BusID"))
    }

    @Test func killedDuringRollbackRecovers() throws {
        let temp = try TempRoot(copying: "arch")
        let original = try temp.fingerprint()
        _ = try CLI.run(["apply", recipe, "--root", temp.path])
        let applied = try temp.fingerprint()
        let crashed = try CLI.run(["rollback", "--root", temp.path], environment: ["PROVISION_TEST_CRASH_AFTER_WRITES": "2"])
        #expect(crashed.signal == 9)
        #expect(try temp.fingerprint() != applied, "killed half-way")
        // Run again, the rollback first undoes its interrupted self, then does what was asked:
        // the result equals an uninterrupted rollback.
        let next = try CLI.run(["rollback", "--root", temp.path])
        #expect(next.status == 0, "\(next.stderr)")
        #expect(next.stdout.contains("recover"), "\(next.stdout)")
        #expect(try temp.fingerprint() == original)
        let log = try temp.git("log", "--format=%s", "main")
        #expect(log.hasPrefix("rollback run 1"), "\(log)")
        #expect(log.contains("recover: undid interrupted rollback run 2"), "\(log)")
        let again = try CLI.run(["rollback", "--root", temp.path])
        #expect(again.status == 1 && again.stderr.contains("nothing to roll back"), "\(again.stderr)")
    }

    @Test func pluginsListsKindsWithOptions() throws {
        let result = try CLI.run(["plugins"])
        for kind in ["file.absent", "file.block", "file.content", "file.line"] { #expect(result.stdout.contains(kind)) }
        #expect(result.stdout.contains("match (string): POSIX extended regular expression (as grep -E) finding the line"))
    }
}

@Suite struct CLIFailureTests {
    @Test func failedStepIsNamedInTheJSONDocument() throws {
        let temp = try TempRoot(copying: "arch")
        try temp.write("/r.yaml", """
            name: partly-bad
            steps:
              - {id: fine, uses: file.content, with: {path: /etc/fine.conf, content: x}}
              - {id: broken, uses: file.line, with: {path: /etc/default/grub, match: "^A=", line: "B=1"}}
              - {id: later, uses: file.absent, with: {path: /etc/hostname}}
            """)
        let result = try CLI.run(["apply", temp.real("/r.yaml"), "--root", temp.path, "--json"])
        #expect(result.status == 1)
        let document = try CLI.json(result.stdout)
        let steps = try #require(document["steps"] as? [[String: Any]])
        #expect(steps.map { $0["status"] as? String } == ["skipped", "failed", "skipped"])
        #expect(document["changed"] as? Int == 0)
        let error = try #require(document["error"] as? [String: Any])
        #expect(error["step"] as? String == "broken")
        #expect(error["line"] as? Int == 4)
        #expect(!temp.exists("/etc/fine.conf"))
    }
}

/// The device checks and refusals as a user meets them: notices in plan and apply output and in the
/// run's record in history, and refusals that change nothing.
@Suite struct CLIDeviceTests {
    let recipe = Package.path("recipes/vfio-passthrough.yaml")

    @Test func firmwareHintReachesPlanApplyAndHistory() throws {
        let temp = try TempRoot(copying: "arch")
        // Choosing the integrated GPU, which the firmware initialises, must bring up the hint.
        let plan = try CLI.run(["plan", recipe, "--root", temp.path, "--var", "gpu=0000:00:02.0"])
        #expect(plan.stdout.contains("0000:00:02.0 is the boot VGA device"))
        #expect(plan.stdout.contains("systemctl reboot --firmware-setup"))
        let apply = try CLI.run(["apply", recipe, "--root", temp.path, "--var", "gpu=0000:00:02.0", "--json"])
        #expect(apply.status == 0, "\(apply.stderr)")
        let notices = try #require(try CLI.json(apply.stdout)["notices"] as? [[String: Any]])
        #expect(notices.contains { ($0["step"] as? String) == "firmware-hint" && (($0["message"] as? String)?.contains("boot VGA") ?? false) })
        let record = try temp.git("show", "HEAD:.provision/run.json")
        #expect(record.contains("is the boot VGA device"))
        #expect(record.contains("IOMMU on (dmar0, dmar1)"))
    }

    @Test func refusalsChangeNothingAndSayTheWayOut() throws {
        for (snapshot, message, way) in [
            ("debian", "shares IOMMU group 7 with 0000:02:00.0 USB controller", "To go on: --var allow_shared_group=true"),
            ("ubuntu", "has the same ids (10de:2484)", "To go on: --var identical_ids=bind-by-address"),
        ] {
            let temp = try TempRoot(copying: snapshot)
            let before = try temp.fingerprint(excludingHistory: false)
            let result = try CLI.run(["apply", recipe, "--root", temp.path])
            #expect(result.status == 1)
            #expect(result.stderr.contains(message), "\(result.stderr)")
            #expect(result.stderr.contains(way))
            #expect(!result.stderr.contains("add a vfio.bind-address step"), "the recipe has one")
            #expect(try temp.fingerprint(excludingHistory: false) == before)
        }
    }

    @Test func twinCardsAreBoundByAddress() throws {
        let temp = try TempRoot(copying: "ubuntu")
        let apply = try CLI.run(["apply", recipe, "--root", temp.path, "--var", "identical_ids=bind-by-address"])
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(temp.read("/etc/driverctl.d/pci-0000:02:00.0") == "vfio-pci\n")
        #expect(temp.read("/etc/driverctl.d/pci-0000:02:00.1") == "vfio-pci\n")
        #expect(!temp.exists("/etc/driverctl.d/pci-0000:01:00.0"), "the host's twin stays with the host")
        #expect(temp.read("/etc/modprobe.d/vfio.conf")?.contains("ids=") == false)
        #expect(temp.read("/etc/kernel/cmdline")?.contains("vfio-pci.ids") == false)
    }
}
