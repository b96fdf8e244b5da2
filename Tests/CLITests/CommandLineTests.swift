import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// The command line as users of Ansible, git and systemctl expect it: plan predicting apply, honest
/// reboot messages, `when:` conditions, check and dry-run modes, variable files, step selection,
/// JSON on every command, exit codes in --help, the man page and completions.
@Suite struct CommandLineTests {
    let recipe = Package.path("recipes/vfio-passthrough.yaml")

    func shell(_ script: String, environment: [String: String] = [:]) throws -> ProcessRunner.Result {
        try ProcessRunner.run(["/bin/bash", "-c", script], environment: ProcessInfo.processInfo.environment.merging(environment) { _, new in new })
    }

    static func quote(_ word: String) -> String { "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    // MARK: plan predicts apply

    @Test func planSaysWhatApplyWillDoWithHandlersHandEditsAndRecovery() throws {
        let temp = try TempRoot(copying: "arch")
        // Before: plan said "would run" for a handler apply then skipped.
        let plan = try CLI.run(["plan", recipe, "--root", temp.path])
        #expect(plan.stdout.contains("handler: mkinitcpio -P: would be skipped (mkinitcpio is not installed in \(temp.path))"), "\(plan.stdout)")
        #expect(!plan.stdout.contains("mkinitcpio -P: would run"))
        let apply = try CLI.run(["apply", recipe, "--root", temp.path])
        #expect(apply.stdout.contains("handler: mkinitcpio -P: skipped (mkinitcpio is not installed in \(temp.path))"))

        // A hand edit apply would overwrite: named with the run that recorded the file.
        let grub = try #require(temp.read("/etc/default/grub"))
        try temp.write("/etc/default/grub", grub.replacingOccurrences(of: " iommu=pt", with: ""))
        let again = try CLI.run(["plan", recipe, "--root", temp.path, "--json"])
        let document = try CLI.json(again.stdout)
        #expect((document["hand_edits"] as? [[String: Any]])?.first?["path"] as? String == "/etc/default/grub")
        #expect((document["hand_edits"] as? [[String: Any]])?.first?["since"] as? Int == 1)
        let human = try CLI.run(["plan", recipe, "--root", temp.path])
        #expect(human.stdout.contains("changed by hand since run 1: /etc/default/grub (apply records the edit in history first, then overwrites it)"))
        let handlers = try #require(document["handlers"] as? [[String: Any]])
        #expect(handlers.contains { $0["status"] as? String == "would be skipped" && ($0["argv"] as? [String])?.first == "grub-mkconfig" })

        // A run killed half-way: plan says the next apply undoes it first.
        let crashed = try CLI.run(["apply", recipe, "--root", temp.path], environment: ["PROVISION_TEST_CRASH_AFTER_WRITES": "1"])
        #expect(crashed.signal == SIGKILL)
        let pending = try CLI.run(["plan", recipe, "--root", temp.path])
        #expect(pending.stdout.contains("interrupted: apply run 2 did not finish; apply first puts back its 1 file(s) from history"), "\(pending.stdout)")
        let pendingJSON = try CLI.json(try CLI.run(["plan", recipe, "--root", temp.path, "--json"]).stdout)
        #expect((pendingJSON["recovery"] as? [String: Any])?["run"] as? Int == 2)
    }

    @Test func aNoOpApplySaysWhyARebootIsStillDue() throws {
        let temp = try TempRoot(copying: "arch")
        let first = try CLI.run(["apply", recipe, "--root", temp.path])
        #expect(first.stdout.contains("reboot required: the kernel command line changed; the running kernel lacks intel_iommu=on iommu=pt"))
        let second = try CLI.run(["apply", recipe, "--root", temp.path])
        #expect(second.stdout.contains("0 changed, 10 ok, 5 skipped"))
        // Before: "reboot required: the kernel command line changed", although nothing changed.
        #expect(!second.stdout.contains("the kernel command line changed"))
        #expect(second.stdout.contains(
            "reboot required: the running kernel still lacks intel_iommu=on iommu=pt, which the boot configuration already has; reboot"))
        let json = try CLI.json(try CLI.run(["apply", recipe, "--root", temp.path, "--json"]).stdout)
        #expect(json["reboot_missing"] as? [String] == ["intel_iommu=on", "iommu=pt"])
        #expect(json["reboot_required"] as? Bool == true)
    }

    // MARK: when

    @Test func whenComparesVariablesAndFactsAndRefusesWhatItCannotRead() throws {
        let temp = try TempRoot(copying: "arch")
        try temp.write("/w.yaml", """
            name: when
            vars: {flavour: desktop, flag: "false"}
            steps:
              - {id: debian-only, uses: file.content, when: "${facts.os.id} == debian", with: {path: /etc/w/debian, content: d}}
              - {id: not-debian, uses: file.content, when: "${facts.os.id} != debian", with: {path: /etc/w/other, content: o}}
              - {id: listed, uses: file.content, when: "${facts.os.id} in [arch, manjaro]", with: {path: /etc/w/listed, content: l}}
              - {id: unlisted, uses: file.content, when: "${flavour} not in [server, 'cloud image']", with: {path: /etc/w/unlisted, content: u}}
              - {id: negated, uses: file.content, when: "not ${flag}", with: {path: /etc/w/negated, content: n}}
              - {id: both, uses: file.content, when: "${flag} or (${flavour} == desktop and ${facts.os.id} == arch)", with: {path: /etc/w/both, content: b}}
            """)
        let apply = try CLI.run(["apply", temp.real("/w.yaml"), "--root", temp.path, "--json"])
        #expect(apply.status == 0, "\(apply.stderr)")
        let steps = try #require(try CLI.json(apply.stdout)["steps"] as? [[String: Any]])
        #expect(steps.map { $0["status"] as? String } == ["skipped", "changed", "changed", "changed", "changed", "changed"])
        // Before: a non-empty string counted as true, so this ran on Arch.
        #expect(!temp.exists("/etc/w/debian"))
        #expect(steps[0]["reason"] as? String == "when ${facts.os.id} == debian is false (${facts.os.id} is \"arch\")")

        for (condition, column, message) in [
            ("${facts.os.id} = debian", 26, "when: unexpected \"=\""),
            ("debian", 11, "when: \"debian\" alone is not a condition"),
            ("${facts.os.id} ==", 28, "when: expected a value, found end"),
            ("${facts.os.id} in debian", 29, "when: expected a list [a, b] or a ${reference} after in"),
            ("${nope} == x", 11, "when: unknown variable \"nope\""),
            ("${flag} and", 22, "when: expected a value, found end"),
        ] {
            try temp.write("/bad.yaml", "name: bad\nvars: {flag: x}\nsteps:\n  - uses: file.absent\n    when: \(condition)\n    with: {path: /etc/x}\n")
            let refused = try CLI.run(["plan", temp.real("/bad.yaml"), "--root", temp.path])
            #expect(refused.status == 1)
            #expect(refused.stderr.hasPrefix("provision: error: \(temp.real("/bad.yaml")):5:\(column): \(message)"), "\(condition): \(refused.stderr)")
        }
        // A fact the host lacks is an error when the step runs, not a guess.
        try temp.write("/fact.yaml", "name: f\nsteps:\n  - {uses: file.absent, when: \"${facts.os.nope} == x\", with: {path: /etc/x}}\n")
        let missing = try CLI.run(["plan", temp.real("/fact.yaml"), "--root", temp.path])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no fact \"facts.os.nope\" on this host"), "\(missing.stderr)")
    }

    // MARK: modes and inputs

    @Test func checkDryRunVarFileStepAndQuietVerbose() throws {
        let temp = try TempRoot(copying: "arch")
        let pristine = try temp.fingerprint(excludingHistory: false)
        let check = try CLI.run(["apply", recipe, "--root", temp.path, "--check", "--diff"])
        #expect(check.status == 2, "changes pending, as plan --detailed-exitcode")
        #expect(check.stdout.hasPrefix("plan vfio-passthrough"))
        #expect(check.stdout.contains("+options vfio-pci ids=10de:1b80,10de:10f0"))
        #expect(try temp.fingerprint(excludingHistory: false) == pristine, "--check changes nothing")

        // --var-file, overridden by --var; --step with the step whose facts it reads.
        try temp.write("/vars.yaml", "# host vars\nqemu_user: vmuser\ndomain: nope\n")
        let only = try CLI.run([
            "apply", recipe, "--root", temp.path, "--var-file", temp.real("/vars.yaml"), "--var", "domain=win10", "--step", "vm-user",
            "--step", "modprobe-vfio", "--json",
        ])
        #expect(only.status == 0, "\(only.stderr)")
        let steps = try #require(try CLI.json(only.stdout)["steps"] as? [[String: Any]])
        let statuses = Dictionary(uniqueKeysWithValues: steps.map { ($0["id"] as! String, $0["status"] as! String) })
        #expect(statuses["select-gpu"] == "ok", "modprobe-vfio reads facts.gpu: it runs too")
        #expect(statuses["modprobe-vfio"] == "changed" && statuses["vm-user"] == "changed")
        #expect(["firmware-hint", "initramfs-modules", "kernel-cmdline", "qemu-conf", "guest"].allSatisfy { statuses[$0] == "skipped" })
        #expect(temp.read("/etc/passwd")?.contains("vmuser:") == true)
        #expect(temp.read("/etc/default/grub")?.contains("iommu=pt") == false, "kernel-cmdline was not selected")

        // rollback --dry-run: what it restores, nothing changed; refused (exit 3) after a hand edit.
        let before = try temp.fingerprint(excludingHistory: false)
        let dry = try CLI.run(["rollback", "--root", temp.path, "--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.hasPrefix("rollback run 1 (dry run: nothing changes)"))
        #expect(dry.stdout.contains("-softdep nvidia pre: vfio-pci"))
        #expect(dry.stdout.contains("would restore 3 file(s)"), "\(dry.stdout)")
        #expect(try temp.fingerprint(excludingHistory: false) == before)
        try temp.write("/etc/modprobe.d/vfio.conf", "# mine\n")
        let refused = try CLI.run(["rollback", "--root", temp.path, "--dry-run", "--json"])
        #expect(refused.status == 3)
        let preview = try CLI.json(refused.stdout)
        #expect(preview["refused"] as? Bool == true && preview["dry_run"] as? Bool == true)
        #expect(preview["conflicts"] as? [String] == ["/etc/modprobe.d/vfio.conf"])
        #expect(refused.stderr.contains("rollback refused, nothing changed"))

        // -q: the summary and warnings only; -v: where the handler runs.
        let quiet = try CLI.run(["plan", recipe, "--root", temp.path, "-q"])
        #expect(!quiet.stdout.contains("  changed ") && !quiet.stdout.contains("info:") && !quiet.stdout.contains("+++ "))
        #expect(quiet.stdout.contains("warning: [kernel-cmdline]"))
        #expect(quiet.stdout.hasSuffix("file(s)\n"))
        let fresh = try TempRoot(copying: "arch")
        let verbose = try CLI.run(["apply", recipe, "--root", fresh.path, "-v"])
        #expect(verbose.stdout.contains("writing 8 file(s)"), "\(verbose.stdout)")
        #expect(try CLI.run(["plan", recipe, "-q", "-v", "--root", fresh.path]).status == 64)
    }

    /// --step with a step whose facts come from a step that refuses: that refusal (and its fix) is said.
    @Test func aSelectedStepNeedingARefusingStepGetsItsRefusal() throws {
        let temp = try TempRoot(copying: "debian")
        let refused = try CLI.run(["plan", recipe, "--root", temp.path, "--step", "modprobe-vfio"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("shares IOMMU group 7") && refused.stderr.contains("To go on: --var allow_shared_group=true"), "\(refused.stderr)")
        let allowed = try CLI.run(["plan", recipe, "--root", temp.path, "--step", "modprobe-vfio", "--var", "allow_shared_group=true"])
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(allowed.stdout.contains("1 step(s) to change, 1 ok, 13 skipped, 1 file(s)"), "\(allowed.stdout)")
    }

    /// A failing handler: its output streamed indented, how it ended and how long it took, the tail
    /// in the error; with --json one document holding the failure.
    @Test func aFailingHandlerIsShownAsItRunsAndInOneJSONDocument() throws {
        guard FileManager.default.fileExists(atPath: "/bin/busybox"), geteuid() == 0 else { return }
        let temp = try TempRoot()
        try FileManager.default.createDirectory(atPath: temp.real("/bin"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: temp.real("/bin/busybox"))
        try FileManager.default.createSymbolicLink(atPath: temp.real("/bin/sh"), withDestinationPath: "busybox")
        let handler = "[sh, -c, 'echo building; echo broken >&2; exit 3']"
        try temp.write("/a.yaml", "name: a\nsteps:\n  - {id: conf, uses: file.content, with: {path: /etc/a.conf, content: a, notify: \(handler)}}\n")
        let human = try CLI.run(["apply", temp.real("/a.yaml"), "--root", temp.path])
        #expect(human.status == 1)
        let lines = human.stdout.split(separator: "\n").map(String.init)
        let running = try #require(lines.firstIndex(of: "handler: sh -c echo building; echo broken >&2; exit 3: running"), "\(human.stdout)")
        #expect(lines[running + 1] == "    | building" && lines[running + 2] == "    | broken")
        #expect(lines[running + 3].hasPrefix("handler: sh -c echo building; echo broken >&2; exit 3: failed (exit status 3, "))
        #expect(human.stderr.hasPrefix("provision: error: handler sh -c echo building; echo broken >&2; exit 3 failed; the files are written"))
        #expect(human.stderr.contains("exit status 3\nbuilding\nbroken\n"), "the tail of its output")

        try temp.write("/a.yaml", "name: a\nsteps:\n  - {id: conf, uses: file.content, with: {path: /etc/a.conf, content: b, notify: \(handler)}}\n")
        let json = try CLI.run(["apply", temp.real("/a.yaml"), "--root", temp.path, "--json"])
        #expect(json.status == 1)
        let document = try CLI.json(json.stdout)
        #expect(document["schema"] as? Int == 1 && document["run"] as? Int == 2)
        #expect((document["error"] as? [String: Any])?["kind"] as? String == "handler")
        let handlers = try #require(document["handlers"] as? [[String: Any]])
        #expect(handlers.first?["status"] as? String == "failed")
        #expect(handlers.first?["seconds"] is Double || handlers.first?["seconds"] is Int)
        #expect(json.stderr.contains("failed; the files are written"))
    }

    @Test func stdoutComesBeforeStderrWhenBothGoToOneFile() throws {
        let temp = try TempRoot(copying: "ubuntu")
        let out = temp.real("/out.txt")
        let result = try shell("\(Self.quote(CLI.binary)) apply \(Self.quote(recipe)) --root \(Self.quote(temp.path)) >\(Self.quote(out)) 2>&1")
        #expect(result.status == 1)
        let text = try String(contentsOfFile: out, encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.first?.hasPrefix("apply vfio-passthrough") == true, "\(text)")
        #expect(lines.last?.hasPrefix("provision: error:") == true)
        #expect(lines.firstIndex { $0.contains("select-gpu") } == nil, "the failed step printed no status line")
    }

    @Test func historyTakesAPathRelativeToTheRootFromAnyDirectory() throws {
        let temp = try TempRoot(copying: "arch")
        #expect(try CLI.run(["apply", recipe, "--root", temp.path]).status == 0)
        let relative = try shell("cd / && \(Self.quote(CLI.binary)) history etc/default/grub --root \(Self.quote(temp.path))")
        let absolute = try CLI.run(["history", "/etc/default/grub", "--root", temp.path])
        #expect(relative.status == 0)
        #expect(relative.output == absolute.stdout)
        #expect(relative.output.contains("run 1"))
    }

    // MARK: JSON everywhere

    /// Every command and failure with --json: one document jq reads, with `"schema": 1`, keys in
    /// snake_case, and the exit code of the contract.
    @Test func everyCommandAndFailurePrintsJSONWithASchema() throws {
        let temp = try TempRoot(copying: "arch")
        let root = ["--root", temp.path]
        let rom = "/usr/lib/ipxe/qemu/efi-virtio.rom"
        var commands: [([String], Int32)] = [
            (["plan", recipe] + root, 0), (["apply", recipe, "--check"] + root, 2), (["apply", recipe] + root, 0),
            (["status"] + root, 0), (["history"] + root, 0), (["history", "etc/default/grub"] + root, 0), (["show", "1"] + root, 0),
            (["diff", "1"] + root, 0), (["blame", "/etc/default/grub"] + root, 0), (["devices"] + root, 0), (["verify"] + root, 4),
            (["export", temp.real("/h.tar")] + root, 0), (["export", temp.real("/h.tar"), "--verify"] + root, 0),
            (["rollback", "--dry-run"] + root, 0), (["rollback"] + root, 0), (["history", "gc"] + root, 0), (["plugins"], 0),
            // Failures: a missing recipe, usage errors, a refusal, a run history lacks, a bad ROM.
            (["plan", temp.real("/nope.yaml")] + root, 1), (["plan"] + root, 64), (["plan", recipe, "--color=maybe"] + root, 64),
            (["apply", recipe, "--bogus"] + root, 64), (["show", "99"] + root, 1), (["rollback", "--to", "x"] + root, 1),
            (["apply", recipe, "--var", "identical_ids=whatever"] + root, 1), (["rom", "inspect", temp.real("/etc/passwd")], 1),
        ]
        if FileManager.default.fileExists(atPath: rom) { commands.append((["rom", "inspect", rom], 0)) }
        for (arguments, status) in commands {
            let result = try CLI.run(arguments + ["--json"])
            #expect(result.status == status, "\(arguments): \(result.stderr)")
            let file = temp.real("/doc.json")
            try result.stdout.write(toFile: file, atomically: true, encoding: .utf8)
            let jq = try shell("jq -e '.schema == 1' \(Self.quote(file))")
            #expect(jq.status == 0, "\(arguments): \(result.stdout.prefix(300))")
            let keys = try shell(
                "jq -r '[paths(type == \"object\") as $p | getpath($p) | keys[]] | .[]' \(Self.quote(file)) | grep '[A-Z]' | grep -v '^/' || true")
            // Data keeps its own keys (facts, variables, paths); the documents' own keys are snake_case.
            let camel = keys.output.split(separator: "\n").filter { !["GRUB", "MODULES"].contains(where: $0.hasPrefix) }
            #expect(camel.isEmpty, "\(arguments): \(camel)")
            if status != 0 && status != 2 && status != 4 && status != 3 {
                #expect(try shell("jq -e '.error.message and .exit_code == \(status)' \(Self.quote(file))").status == 0, "\(arguments)")
            }
        }
    }

    // MARK: help, man page, completions

    @Test func helpDocumentsEveryExitCode() throws {
        let help = try CLI.run(["--help"])
        #expect(help.status == 0)
        for line in ["0   success", "1   error", "2   plan --detailed-exitcode", "3   refused or found drift", "4   verify: a check failed",
            "64  usage error"]
        {
            #expect(help.stdout.contains(line), "\(line)")
        }
    }

    @Test func manPageRendersWithExitCodesAndExamples() throws {
        let generator = Package.path(".build/debug/generate-manual")
        guard FileManager.default.isExecutableFile(atPath: generator) else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("\(generator) is missing: swift build --product generate-manual") }
            return
        }
        let out = try TempRoot()
        let made = try shell("GENERATE_MANUAL=\(Self.quote(generator)) \(Self.quote(Package.path("scripts/make-docs.sh"))) \(Self.quote(out.path)) \(Self.quote(CLI.binary))")
        #expect(made.status == 0, "\(made.output)")
        let page = try shell("cd \(Self.quote(out.path))/man/man1 && MANWIDTH=100 LC_ALL=C.UTF-8 man --warnings ./provision.1 2>\(Self.quote(out.real("/man.err")))")
        #expect(page.status == 0)
        for text in ["PROVISION(1)", "EXIT STATUS", "64      usage error", "EXAMPLES", "provision rollback --dry-run", "ENVIRONMENT", "NO_COLOR",
            "--var-file", "--dry-run"]
        {
            #expect(page.output.contains(text), "\(text)")
        }
        #expect(try String(contentsOfFile: out.real("/man.err"), encoding: .utf8).isEmpty, "man (groff) has no warnings")
        for file in ["completions/bash/provision", "completions/zsh/_provision", "completions/fish/provision.fish"] {
            #expect(FileManager.default.fileExists(atPath: out.real("/" + file)), "\(file)")
        }
    }

    /// bash's own completion machinery (`complete -p`, the generated function, compgen) on a
    /// snapshot copy: run numbers for rollback and show, directories for --root, recipes, variables.
    @Test func bashCompletesRunNumbersDirectoriesRecipesAndVariables() throws {
        let temp = try TempRoot(copying: "arch")
        #expect(try CLI.run(["apply", recipe, "--root", temp.path]).status == 0)
        #expect(try CLI.run(["rollback", "--root", temp.path]).status == 0)
        #expect(try CLI.run(["apply", recipe, "--root", temp.path]).status == 0)
        let script = try CLI.run(["--generate-completion-script", "bash"])
        #expect(script.status == 0)
        try script.stdout.write(toFile: temp.real("/completion.bash"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: temp.real("/recipes"), withIntermediateDirectories: true)
        try temp.write("/recipes/host.yaml", "name: x\nvars: {alpha: a, beta: b}\nsteps:\n  - {id: one, uses: file.absent, with: {path: /x}}\n")
        try temp.write("/recipes/notes.txt", "")

        func complete(_ words: [String], in directory: String = "/") throws -> [String] {
            let line = words.map(Self.quote).joined(separator: " ")
            let result = try shell("""
                cd \(Self.quote(directory))
                source \(Self.quote(temp.real("/completion.bash")))
                complete -p provision >/dev/null || exit 9
                COMP_WORDS=(\(line))
                COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
                COMP_LINE="${COMP_WORDS[*]}"
                COMP_POINT=${#COMP_LINE}
                _provision provision "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                printf '%s\\n' "${COMPREPLY[@]}"
                """)
            #expect(result.status == 0, "\(result.output)")
            return result.output.split(separator: "\n").map(String.init)
        }
        let binary = CLI.binary
        #expect(try complete([binary, "rollback", "--root", temp.path, ""]) == ["3", "2", "1"])
        #expect(try complete([binary, "show", "--root", temp.path, ""]) == ["3", "2", "1"])
        #expect(try complete([binary, "rollback", "--root", temp.path, "--to", ""]) == ["3", "2", "1"])
        #expect(try complete([binary, "plan", "--root", temp.real("/rec")]) == [temp.real("/recipes")])
        #expect(try complete([binary, "plan", "recipes/"], in: temp.path).contains("recipes/host.yaml"))
        #expect(try !complete([binary, "plan", "recipes/"], in: temp.path).contains("recipes/notes.txt"))
        #expect(try complete([binary, "plan", "recipes/host.yaml", "--var", ""], in: temp.path) == ["alpha=", "beta="])
        #expect(try complete([binary, "plan", "recipes/host.yaml", "--step", ""], in: temp.path) == ["one"])
    }
}
