import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The audit commands as an auditor meets them, with the real binary: history filters, diff
/// (held to plain `git diff`), blame, status, export and its verification, packing.
@Suite struct AuditTests {
    static let recipe = Package.path("recipes/vfio-passthrough.yaml")

    /// A root plus the CLI run as a given invoking user (SUDO_USER), with the root appended.
    struct Host {
        let temp: TempRoot

        @discardableResult
        func run(_ arguments: [String], user: String = "admin", expect: Int32? = 0, _ comment: String? = nil) throws -> CLI.Result {
            let result = try CLI.run(arguments + ["--root", temp.path], environment: ["SUDO_USER": user])
            if let expect { #expect(result.status == expect, "\(arguments): \(result.stderr)\(comment.map { " (\($0))" } ?? "")") }
            return result
        }

        func json(_ arguments: [String], user: String = "admin", expect: Int32? = 0) throws -> Any {
            let result = try run(arguments + ["--json"], user: user, expect: expect)
            return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        }

        func entries(_ arguments: [String]) throws -> [[String: Any]] {
            ((try json(["history"] + arguments) as? [String: Any])?["entries"] as? [[String: Any]]) ?? []
        }

        /// Plain git on the history.
        func git(_ arguments: [String]) throws -> String {
            let result = try ProcessRunner.run(["git", "--git-dir", temp.historyPath] + arguments)
            guard result.status == 0 else { throw ProvisionError(.io, "git \(arguments) failed: \(result.output)") }
            return result.output
        }

        func git(_ arguments: String...) throws -> String { try git(arguments) }
    }

    /// The hand edit: one softdep line of vfio.conf deleted (modprobe.vfio puts it back, so the next
    /// apply records the drift) and a comment added; on GRUB hosts also the timeout changed and
    /// iommu=pt taken off the command line (the kernel-cmdline step puts it back).
    static func handEdit(_ temp: TempRoot) throws -> (grub: Bool, softdep: String) {
        var lines = temp.read("/etc/modprobe.d/vfio.conf")!.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let index = try #require(lines.firstIndex { $0.hasPrefix("softdep ") })
        let softdep = lines.remove(at: index)
        lines.insert("# tuned by hand", at: lines.count - 1)
        try temp.write("/etc/modprobe.d/vfio.conf", lines.joined(separator: "\n"))
        guard let grub = temp.read("/etc/default/grub") else { return (false, softdep) }
        let edited = grub.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            line.hasPrefix("GRUB_TIMEOUT=") ? "GRUB_TIMEOUT=17" : line.replacingOccurrences(of: " iommu=pt", with: "")
        }.joined(separator: "\n")
        #expect(edited != grub)
        try temp.write("/etc/default/grub", edited)
        return (true, softdep)
    }

    /// What `git diff` prints for the same commits, and ours without the `# ` lines git cannot show.
    static func ownPatch(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("# ") }.joined(separator: "\n")
    }

    /// apply, hand edit, apply, a second recipe by another user, rollback; then every filter of
    /// history, diff against plain git, blame, status, run tags.
    @Test(arguments: SnapshotFamily.all)
    func scriptedSequence(_ family: SnapshotFamily) throws {
        let host = Host(temp: try TempRoot(copying: family.name))
        let temp = host.temp
        try host.run(["apply", Self.recipe] + family.vars)
        #expect(try host.run(["status"]).stdout.contains("clean"))

        let (grub, softdep) = try Self.handEdit(temp)
        let drifted = try host.json(["status"], expect: 3) as? [String: Any]
        let driftPaths = (drifted?["drift"] as? [[String: Any]])?.compactMap { $0["path"] as? String } ?? []
        #expect(driftPaths.contains("/etc/modprobe.d/vfio.conf"), "\(family): \(driftPaths)")
        #expect(drifted?["clean"] as? Bool == false)
        if grub { #expect(driftPaths.contains("/etc/default/grub")) }

        let second = try host.json(["apply", Self.recipe] + family.vars) as? [String: Any]
        #expect((second?["drift"] as? [String])?.contains("/etc/modprobe.d/vfio.conf") == true, "the hand edit is recorded first")
        #expect(try host.run(["status"]).stdout.contains("clean: the host is as recorded"), "status 0 after the next apply")

        // Runs 3 and 4 at a later second than run 2, for --since and --until.
        Thread.sleep(forTimeInterval: 1.1)
        try temp.write(
            "/recipes/audit.yaml",
            "name: audit-note\nsteps:\n  - {id: audit-note, uses: file.content, with: {path: /etc/provision-audit.conf, content: \"audited\\n\"}}\n")
        try host.run(["apply", temp.real("/recipes/audit.yaml")], user: "auditor")
        try host.run(["rollback"])
        try host.run(["status"])

        // history and each filter
        let all = try host.entries([])
        #expect(all.map { $0["action"] as? String } == ["rollback", "apply", "pre-state", "apply", "drift", "apply", "pre-state"], "\(family)")
        #expect(all.map { $0["run"] as? Int } == [4, 3, 3, 2, 2, 1, 1])
        #expect(try host.entries(["--user", "auditor"]).map { $0["run"] as? Int } == [3, 3])
        #expect(try host.entries(["--user", "admin", "--action", "apply"]).map { $0["run"] as? Int } == [2, 1])
        #expect(try host.entries(["--action", "rollback"]).map { $0["run"] as? Int } == [4])
        #expect(try host.entries(["--action", "drift"]).map { $0["run"] as? Int } == [2])
        #expect(try host.entries(["--step", "audit-note"]).map { $0["run"] as? Int } == [3])
        #expect(try host.entries(["--step", "modprobe-vfio"]).map { $0["run"] as? Int } == [2, 1])
        #expect(try host.entries(["/etc/provision-audit.conf"]).map { $0["run"] as? Int } == [4, 3, 3])
        #expect(try host.entries(["etc/provision-audit.conf"]).map { $0["run"] as? Int } == [4, 3, 3], "relative to the root")
        #expect(try host.entries(["/etc/modprobe.d", "--action", "apply"]).map { $0["run"] as? Int } == [2, 1], "a directory")
        let third = try #require(all.first { $0["run"] as? Int == 3 && $0["action"] as? String == "apply" })
        let secondRun = try #require(all.first { $0["run"] as? Int == 2 && $0["action"] as? String == "apply" })
        let thirdDate = try #require(third["date"] as? String), secondDate = try #require(secondRun["date"] as? String)
        #expect(try host.entries(["--since", thirdDate]).compactMap { $0["run"] as? Int }.allSatisfy { $0 >= 3 })
        #expect(try host.entries(["--since", thirdDate]).count == 3)
        #expect(try host.entries(["--until", secondDate]).compactMap { $0["run"] as? Int }.allSatisfy { $0 <= 2 })
        #expect(try host.entries(["--since", "2001-01-01", "--until", "2001-12-31"]).isEmpty)
        #expect(try host.entries(["-n", "2"]).count == 2)
        #expect(try host.run(["history", "--since", "yesterday"], expect: nil).status != 0, "a date it cannot read is refused")

        // every run tagged run/N: plain git resolves them
        #expect(try host.git("tag", "-l", "run/*").split(separator: "\n") == ["run/1", "run/2", "run/3", "run/4"])
        #expect(try host.git("rev-parse", "run/2").hasPrefix(try #require(secondRun["commit"] as? String)))
        #expect(try host.git("show", "-s", "--format=%(trailers:key=Provision-Run,valueonly)", "run/3").contains("3"))

        // diff: the same patch as git diff between the same commits, .provision/ left out
        for (arguments, range) in [
            (["2"], ["run/2^", "run/2"]), (["1", "3"], ["run/1", "run/3"]), (["run/1", "run/4"], ["run/1", "run/4"]),
            (["1"], ["run/1^", "run/1"]), (["4"], ["run/4^", "run/4"]),
        ] {
            let ours = try host.run(["diff"] + arguments).stdout
            let theirs = try host.git(["diff"] + range + ["--", ".", ":!.provision"])
            #expect(Self.ownPatch(ours) == theirs, "\(family): provision diff \(arguments) is git diff \(range)")
            #expect(!theirs.isEmpty)
        }
        let limited = try host.run(["diff", "1", "2", "etc/modprobe.d"]).stdout
        #expect(Self.ownPatch(limited) == (try host.git(["diff", "run/1", "run/2", "--", "etc/modprobe.d"])))
        #expect(limited.contains("+# tuned by hand"))
        let prefix = String(try #require(secondRun["commit"] as? String).prefix(8))
        #expect(try host.run(["diff", prefix]).stdout == (try host.run(["diff", "2"]).stdout), "a commit id prefix names the run")
        let diffJSON = try host.json(["diff", "2"]) as? [String: Any]
        #expect((diffJSON?["to"] as? [String: Any])?["run"] as? Int == 2)

        // blame: by hand for the comment, run 2 for the softdep line it put back
        let blame = try #require(try host.json(["blame", "/etc/modprobe.d/vfio.conf"]) as? [String: Any])
        let lines = try #require(blame["lines"] as? [[String: Any]])
        #expect(blame["live"] as? String == "recorded")
        let comment = try #require(lines.first { $0["text"] as? String == "# tuned by hand" })
        #expect(comment["origin"] as? String == "by hand")
        #expect(comment["run"] as? Int == 2)
        let restored = try #require(lines.first { $0["text"] as? String == softdep })
        #expect(restored["origin"] as? String == "run" && restored["run"] as? Int == 2 && restored["step"] as? String == "modprobe-vfio", "\(restored)")
        #expect(restored["user"] as? String == "admin")
        let unchanged = lines.filter { ($0["text"] as? String)?.hasPrefix("softdep ") == true && $0["text"] as? String != softdep }
        #expect(unchanged.allSatisfy { $0["run"] as? Int == 1 && $0["step"] as? String == "modprobe-vfio" }, "\(unchanged)")
        if grub {
            let grubBlame = try #require(try host.json(["blame", "etc/default/grub"]) as? [String: Any])
            let grubLines = try #require(grubBlame["lines"] as? [[String: Any]])
            let timeout = try #require(grubLines.first { $0["text"] as? String == "GRUB_TIMEOUT=17" })
            #expect(timeout["origin"] as? String == "by hand")
            let parameters = try #require(grubLines.first { ($0["text"] as? String)?.contains("iommu=pt") == true })
            #expect(parameters["run"] as? Int == 2 && parameters["step"] as? String == "kernel-cmdline", "\(parameters)")
            #expect(grubLines.contains { $0["origin"] as? String == "original" }, "lines provision never touched were there before run 1")
            let text = try host.run(["blame", "/etc/default/grub"]).stdout
            #expect(text.contains("by hand (before run 2)") && text.contains("run 2 kernel-cmdline"), "\(text)")
        }

        // a live edit: status drifts again, blame shows the host's lines
        try temp.write("/etc/modprobe.d/vfio.conf", temp.read("/etc/modprobe.d/vfio.conf")! + "# live only\n")
        try host.run(["status"], expect: 3)
        let live = try #require(try host.json(["blame", "/etc/modprobe.d/vfio.conf"]) as? [String: Any])
        #expect(live["live"] as? String == "differs")
        let last = try #require((live["lines"] as? [[String: Any]])?.last)
        #expect(last["text"] as? String == "# live only" && last["origin"] as? String == "not recorded" && last["run"] as? Int == 4)
        #expect(try host.run(["blame", "/etc/modprobe.d/vfio.conf"]).stdout.contains("not recorded (edited since run 4)"))
        try host.run(["blame", "/etc/hostname-never-tracked"], expect: 1)
    }

    /// Realistic password hashes in the copy's shadow and gshadow (the vm-user step edits both).
    static func addHashes(_ temp: TempRoot) throws -> [String] {
        let alphabet = Array("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        func random(_ count: Int) -> String { String((0..<count).map { _ in alphabet.randomElement()! }) }
        let rootHash = "$6$\(random(16))$\(random(86))", userHash = "$y$j9T$\(random(22))$\(random(43))", groupHash = "$6$\(random(16))$\(random(86))"
        try temp.write("/etc/shadow", "root:\(rootHash):19700:0:99999:7:::\nbin:!*:19700::::::\nalice:\(userHash):19700:0:99999:7:::\n", mode: 0o640)
        try temp.write("/etc/gshadow", "root:\(groupHash)::\ninput:!::\nkvm:!::\n", mode: 0o640)
        return [rootHash, userHash, groupHash]
    }

    static func flip(_ file: String, at offset: Int) throws -> String {
        var data = try Data(contentsOf: URL(fileURLWithPath: file))
        data[offset] ^= 0x01
        let copy = file + ".flipped-\(offset)"
        try data.write(to: URL(fileURLWithPath: copy))
        return copy
    }

    static func shell(_ argv: [String], in directory: String? = nil) throws -> (status: Int32, output: String) {
        let result = try ProcessRunner.run(directory.map { ["env", "-C", $0] + argv } ?? argv)
        return (result.status, result.output)
    }

    @Test func exportVerifiesClonesAndCarriesNoHashes() throws {
        let host = Host(temp: try TempRoot(copying: "arch"))
        let temp = host.temp
        let hashes = try Self.addHashes(temp)
        try host.run(["apply", Self.recipe])
        #expect(try host.git("show", "run/1:etc/shadow").contains(hashes[0]), "history keeps the real bytes")
        try host.run(["rollback"])
        try host.run(["apply", Self.recipe])
        let out = try TempRoot()

        for name in ["audit.tar", "audit.tar.gz", "audit.tar.zst"] {
            let file = out.real("/" + name)
            let report = try #require(try host.json(["export", file]) as? [String: Any])
            #expect((report["manifest"] as? [String: Any])?["redacted"] as? Bool == true)
            let verified = try host.run(["export", "--verify", file])
            #expect(verified.stdout.contains("valid export"), "\(name): \(verified.stdout)")
            var info = stat()
            stat(file, &info)
            #expect(info.st_mode & 0o777 == 0o600, "the export is private")
            // One byte flipped anywhere makes it fail: a tar header, the bundle, the manifest, the end.
            let size = Int(info.st_size)
            for offset in [0, 100, 600, size / 3, size / 2, 2 * size / 3, size - 30, size - 1] {
                let flipped = try Self.flip(file, at: offset)
                let result = try host.run(["export", "--verify", flipped], expect: 1, "\(name) flipped at \(offset)")
                #expect(result.stdout.contains("NOT a valid export"))
            }
        }

        // Plain tools: tar extracts it, git verifies and clones the bundle, the runs are the same.
        let file = out.real("/audit.tar.gz")
        let unpacked = out.real("/unpacked")
        try FileManager.default.createDirectory(atPath: unpacked, withIntermediateDirectories: true)
        #expect(try Self.shell(["tar", "-xzf", file, "-C", unpacked]).status == 0)
        let bundle = unpacked + "/provision-export/history.bundle"
        #expect(try Self.shell(["sha256sum", "-c", "manifest.sha256"], in: unpacked + "/provision-export").status == 0)
        #expect(try Self.shell(["git", "init", "-q", "--bare", out.real("/empty.git")]).status == 0)
        let bundleCheck = try Self.shell(["git", "--git-dir", out.real("/empty.git"), "bundle", "verify", bundle])
        #expect(bundleCheck.status == 0, "\(bundleCheck.output)")
        let clone = out.real("/clone")
        let cloned = try Self.shell(["git", "clone", "-q", bundle, clone])
        #expect(cloned.status == 0, "\(cloned.output)")
        let format = "--format=%s|%(trailers:key=Provision-Run,key=Provision-Action,valueonly,separator=%x2C)"
        let original = try host.git("log", format, "main")
        let copy = try Self.shell(["git", "-C", clone, "log", format, "HEAD"])
        #expect(copy.output == original, "the same runs, in the same order")
        #expect(try Self.shell(["git", "-C", clone, "tag", "-l"]).output == (try host.git("tag", "-l")))
        #expect(try Self.shell(["git", "-C", clone, "fsck", "--strict"]).status == 0)

        // No hash in any object of the clone, nor in the records; the history itself kept them.
        let everything = try Self.shell(["sh", "-c", "git -C \(clone) cat-file --batch-all-objects --batch; git -C \(clone) log -p --all"]).output
        #expect(everything.contains("<redacted>"))
        for hash in hashes {
            #expect(!everything.contains(hash), "a password hash reached the bundle")
            #expect(!everything.contains(String(hash.suffix(16))))
        }
        let records = try Self.shell(["sh", "-c", "cat \(unpacked)/provision-export/records/*.json"]).output
        #expect(records.contains("\"run\" : 3"))
        for hash in hashes { #expect(!records.contains(hash)) }
        #expect(try host.git("show", "run/1:etc/shadow").contains(hashes[0]))

        // --include-secrets: the history as it is, commit ids and all.
        let secret = out.real("/secret.tar")
        try host.run(["export", secret, "--include-secrets"])
        try host.run(["export", "--verify", secret])
        let secretDir = out.real("/secret")
        try FileManager.default.createDirectory(atPath: secretDir, withIntermediateDirectories: true)
        _ = try Self.shell(["tar", "-xf", secret, "-C", secretDir])
        _ = try Self.shell(["git", "clone", "-q", "--bare", secretDir + "/provision-export/history.bundle", out.real("/secret.git")])
        #expect(try Self.shell(["git", "--git-dir", out.real("/secret.git"), "show", "run/1:etc/shadow"]).output.contains(hashes[0]))
        #expect(try Self.shell(["git", "--git-dir", out.real("/secret.git"), "rev-parse", "main"]).output == (try host.git("rev-parse", "main")))

        // --since 2: only what came after run 2, a bundle that needs the full one first.
        let since = out.real("/since.tar")
        let partial = try #require(try host.json(["export", since, "--since", "2"]) as? [String: Any])
        let manifest = try #require(partial["manifest"] as? [String: Any])
        #expect(manifest["runs"] as? [Int] == [3])
        #expect((manifest["prerequisites"] as? [String])?.count == 1)
        try host.run(["export", "--verify", since])
        let sinceDir = out.real("/since")
        try FileManager.default.createDirectory(atPath: sinceDir, withIntermediateDirectories: true)
        _ = try Self.shell(["tar", "-xf", since, "-C", sinceDir])
        let incremental = try Self.shell(["git", "-C", clone, "bundle", "verify", sinceDir + "/provision-export/history.bundle"])
        #expect(incremental.status == 0, "the redacted run 2 of the first export is the prerequisite: \(incremental.output)")
        try host.run(["export", out.real("/nothing.tar"), "--since", "3"], expect: 1)
        try host.run(["export", out.real("/bad.zip")], expect: 1)
    }

    @Test func gcPacksWithoutLosingAnythingAndRunsPackOnTheirOwn() throws {
        let host = Host(temp: try TempRoot(copying: "arch"))
        try host.run(["apply", Self.recipe])
        try host.run(["rollback"])
        try host.run(["apply", Self.recipe])
        let log = try host.git("log", "--format=%H %s", "main")
        let before = try host.git("count-objects", "-v")
        #expect(!before.contains("\ncount: 0\n") && before.hasPrefix("count: ") && !before.hasPrefix("count: 0\n"))
        let report = try #require(try host.json(["history", "gc"]) as? [String: Any])
        #expect(report["loose_after"] as? Int == 0)
        #expect(report["packs_after"] as? Int == 1)
        #expect(report["loose_refs_after"] as? Int == 0, "run tags moved into packed-refs")
        #expect((report["bytes_after"] as? Int ?? .max) < (report["bytes_before"] as? Int ?? 0))
        #expect(try host.git("count-objects", "-v").hasPrefix("count: 0\n"))
        _ = try host.git("fsck", "--strict", "--no-dangling")
        #expect(try host.git("log", "--format=%H %s", "main") == log)
        #expect(try host.git("tag", "-l").split(separator: "\n").count == 3)
        var info = stat()
        stat(host.temp.historyPath, &info)
        #expect(info.st_mode & 0o777 == 0o700)
        // Runs go on on a packed history; rollback still finds every pre-state.
        try host.run(["rollback"])
        try host.run(["rollback", "run/1"], expect: 1, "run 1 was already undone")
        #expect(try host.run(["show", "run/3"]).stdout.contains("run 3 (apply)"))

        // Automatic packing past gc.auto (20 loose objects here; 6700 by default).
        _ = try host.git("config", "gc.auto", "20")
        var packed: [String: Any]?
        for _ in 0..<6 where packed == nil {
            let document = try host.json(["apply", Self.recipe]) as? [String: Any]
            packed = document?["packed"] as? [String: Any]
            if packed == nil { try host.run(["rollback"]) }
        }
        let automatic = try #require(packed, "a run packs the history once its loose objects pass gc.auto")
        #expect(automatic["loose_after"] as? Int == 0)
        _ = try host.git("fsck", "--strict", "--no-dangling")
        #expect(try host.git("rev-list", "--count", "main").trimmingCharacters(in: .whitespacesAndNewlines) == String(try host.entries([]).count))
        _ = try host.git("config", "gc.auto", "0")
        for _ in 0..<3 {
            #expect((try host.json(["rollback"]) as? [String: Any])?["packed"] == nil, "gc.auto 0 turns it off")
            #expect((try host.json(["apply", Self.recipe]) as? [String: Any])?["packed"] == nil)
        }
    }

    @Test func recordsSayWhoRanWhichRecipe() throws {
        let host = Host(temp: try TempRoot(copying: "arch"))
        try host.temp.write("/r.yaml", "name: who\nsteps:\n  - {id: one, uses: file.content, with: {path: /etc/who.conf, content: x}}\n")
        let result = try CLI.run(
            ["apply", host.temp.real("/r.yaml"), "--root", host.temp.path], environment: ["SUDO_USER": "alice", "SUDO_UID": "1234"])
        #expect(result.status == 0, "\(result.stderr)")
        let record = try #require(try JSONSerialization.jsonObject(with: Data(try host.git("show", "run/1:.provision/run.json").utf8)) as? [String: Any])
        #expect(record["user"] as? String == "alice")
        #expect(record["uid"] as? Int == 1234)
        #expect(record["userSource"] as? String == "sudo")
        #expect(record["effectiveUser"] as? String == (getpwuid(geteuid()).map { String(cString: $0.pointee.pw_name) }))
        #expect(record["recipe"] as? String == host.temp.real("/r.yaml"))
        let sum = try Self.shell(["sha256sum", host.temp.real("/r.yaml")]).output.prefix(64)
        #expect(record["recipeSHA256"] as? String == String(sum))
        #expect(try host.git("log", "-1", "--format=%(trailers:key=Provision-Recipe-SHA256,valueonly)", "run/1").hasPrefix(String(sum)))
        #expect(try host.git("log", "-1", "--format=%an", "run/1") == "alice\n")
        // A SUDO_USER that could forge trailers is not taken.
        let forged = try CLI.run(
            ["apply", Self.recipe, "--root", host.temp.path], environment: ["SUDO_USER": "eve\nProvision-Run: 99"])
        #expect(forged.status == 0, "\(forged.stderr)")
        #expect(!(try host.git("log", "-1", "--format=%B", "main")).contains("Provision-Run: 99"))
    }

    /// The run record and metadata stay out of `git log -p` (info/attributes), and a pathspec
    /// leaves them out entirely; the figures go into the README.
    @Test func gitLogStaysReadable() throws {
        let host = Host(temp: try TempRoot(copying: "arch"))
        try host.run(["apply", Self.recipe])
        try host.run(["rollback"])
        try host.run(["apply", Self.recipe])
        func share(_ log: String) -> (record: Int, total: Int) {
            var inRecord = false
            var record = 0, total = 0
            for line in log.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("diff --git ") { inRecord = line.hasPrefix("diff --git a/.provision/") }
                if line.hasPrefix("commit ") { inRecord = false }
                total += 1
                if inRecord { record += 1 }
            }
            return (record, total)
        }
        let now = share(try host.git("log", "-p", "main"))
        #expect(Double(now.record) / Double(now.total) < 0.05, "\(now)")
        let excluded = share(try host.git("log", "-p", "main", "--", ".", ":!.provision"))
        #expect(excluded.record == 0)
        let attributes = host.temp.historyPath + "/info/attributes"
        #expect((try? String(contentsOfFile: attributes, encoding: .utf8))?.contains(".provision/** -diff") == true)
        try FileManager.default.removeItem(atPath: attributes)
        let without = share(try host.git("log", "-p", "main"))
        print("git log -p: .provision/ lines \(now.record) of \(now.total) with info/attributes, \(without.record) of \(without.total) without")
        #expect(without.record > now.record)
        // The next run puts the attributes back.
        try host.run(["apply", Self.recipe])
        #expect(FileManager.default.fileExists(atPath: attributes))
    }

    /// status beyond drift: the reboot the apply in effect needs (the snapshot's /proc/cmdline
    /// lacks its parameters), and a run killed half-way (exit 3 until the next run recovers it).
    @Test func statusReportsAPendingRebootAndAnInterruptedRun() throws {
        let host = Host(temp: try TempRoot(copying: "arch"))
        #expect(try host.run(["status"]).stdout.contains("no history"))
        try host.run(["apply", Self.recipe])
        let applied = try #require(try host.json(["status"]) as? [String: Any])
        #expect(applied["reboot_required"] as? Bool == true)
        #expect((applied["reboot_missing"] as? [String])?.contains("iommu=pt") == true)
        #expect(applied["last_applied"] as? Int == 1)
        try host.run(["rollback"])
        let undone = try #require(try host.json(["status"]) as? [String: Any])
        #expect(undone["reboot_required"] as? Bool == false, "nothing in effect needs a reboot")
        #expect(undone["last_applied"] == nil)
        let crashed = try CLI.run(
            ["apply", Self.recipe, "--root", host.temp.path], environment: ["PROVISION_TEST_CRASH_AFTER_WRITES": "2"])
        #expect(crashed.signal == 9)
        let interrupted = try #require(try host.json(["status"], expect: 3) as? [String: Any])
        let recovery = try #require(interrupted["recovery"] as? [String: Any])
        #expect(recovery["run"] as? Int == 3 && recovery["action"] as? String == "apply")
        #expect(try host.run(["status"], expect: 3).stdout.contains("interrupted: apply run 3 did not finish"))
        try host.run(["rollback"])
        #expect((try host.json(["status"]) as? [String: Any])?["recovery"] == nil)
    }

    /// A tag lost (or never written: a run killed between its commit and its tag) is written by
    /// the next run; a tag moved to another commit is not believed.
    @Test func runTagsAreRepairedAndCheckedAgainstTheirRecords() throws {
        let host = Host(temp: try TempRoot(copying: "arch"))
        try host.run(["apply", Self.recipe])
        try host.run(["rollback"])
        try FileManager.default.removeItem(atPath: host.temp.historyPath + "/refs/tags/run/2")
        try FileManager.default.removeItem(atPath: host.temp.historyPath + "/refs/tags/run/1")
        #expect(try host.run(["diff", "2"]).stdout.contains("diff --git"), "found by walking when the tag is missing")
        try host.run(["apply", Self.recipe])
        #expect(try host.git("tag", "-l").split(separator: "\n") == ["run/1", "run/2", "run/3"])
        // run/1 pointed at run 2's commit: diff 1 still shows run 1.
        _ = try host.git("update-ref", "refs/tags/run/1", "run/2")
        let diff = try host.json(["diff", "1"]) as? [String: Any]
        #expect((diff?["to"] as? [String: Any])?["run"] as? Int == 1)
    }
}
