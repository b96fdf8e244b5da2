import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// External plugins through the CLI: the two examples in the repository and plugins written here
/// on the fly, discovered, listed, checked at load, planned (with need rounds), applied, re-applied
/// with no change, rolled back byte for byte; and misbehaving ones stopped by the sandbox.
@Suite(.serialized) struct ExternalPluginTests {
    static let python = Package.path("examples/plugins/sysctl-python")
    static let sh = Package.path("examples/plugins/motd-sh")

    /// A plugin directory the sandbox's unprivileged user can read.
    static func directory(_ temp: TempRoot, _ name: String) throws -> String {
        let path = temp.real("/\(name)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        chmod(temp.path, 0o755)
        chmod(path, 0o755)
        return path
    }

    /// A POSIX sh plugin of `kind` whose `plan` runs `body` (describe answers with `options`).
    static func writePlugin(_ directory: String, kind: String, options: String = "[]", plan body: String) throws {
        let path = "\(directory)/provision-step-\(kind)"
        let script = """
            #!/bin/sh
            case "$1" in
            describe) printf '%s\\n' '{"protocol": 1, "kind": "\(kind)", "summary": "test plugin \(kind)", "options": \(options)}' ;;
            plan)
            \(body)
            ;;
            esac

            """
        try Data(script.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o755)
    }

    /// The third plugin, written here: `site.hosts` puts `ADDRESS NAME` into /etc/hosts, keeping the
    /// rest of the file (one need round for it). Python, reading what it is given.
    static func writeHostsPlugin(_ directory: String) throws {
        let path = "\(directory)/provision-step-site.hosts"
        try Data(
            """
            #!/usr/bin/env python3
            import json, sys
            if sys.argv[1] == "describe":
                json.dump({"protocol": 1, "kind": "site.hosts", "summary": "an /etc/hosts entry", "options": [
                    {"name": "address", "type": "string", "required": True, "help": "IP address"},
                    {"name": "names", "type": "list", "required": True, "help": "host names"}]}, sys.stdout)
                sys.exit(0)
            request = json.load(sys.stdin)
            if "/etc/hosts" not in request["files"]:
                json.dump({"need": ["/etc/hosts"]}, sys.stdout)
                sys.exit(0)
            current = (request["files"]["/etc/hosts"] or {}).get("content", "")
            line = request["options"]["address"] + "\\t" + " ".join(request["options"]["names"])
            lines = [l for l in current.splitlines() if l.split()[:1] != [request["options"]["address"]]]
            json.dump({"files": [{"path": "/etc/hosts", "content": "\\n".join(lines + [line]) + "\\n"}],
                       "exports": {"hosts": {"line": line}}}, sys.stdout)

            """.utf8
        ).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o755)
    }

    @Test func pluginsAreListedWithWhyOnesAreShadowedOrBroken() throws {
        let temp = try TempRoot()
        let mine = try Self.directory(temp, "mine")
        let later = try Self.directory(temp, "later")
        try Self.writeHostsPlugin(mine)
        try Self.writePlugin(mine, kind: "file.content", plan: "echo '{}'")
        try Self.writePlugin(mine, kind: "site.broken", plan: "echo '{}'")
        try Data("#!/bin/sh\necho not json\n".utf8).write(to: URL(fileURLWithPath: mine + "/provision-step-site.broken"))
        try Self.writePlugin(later, kind: "site.motd", plan: "echo '{}'")
        let result = try CLI.run(
            ["plugins", "--json", "--plugin-dir", Self.python, "--plugin-dir", Self.sh, "--plugin-dir", mine],
            environment: ["PROVISION_PLUGIN_PATH": later])
        #expect(result.status == 0, "\(result.stderr)")
        let document = try CLI.json(result.stdout)
        let kinds = try #require(document["kinds"] as? [[String: Any]])
        func entry(_ kind: String, _ source: String) -> [String: Any]? {
            kinds.first { $0["kind"] as? String == kind && $0["source"] as? String == source }
        }
        #expect(entry("file.content", "built-in")?["status"] as? String == "active")
        #expect(kinds.filter { $0["source"] as? String == "built-in" }.count >= 15)
        for kind in ["site.sysctl", "site.motd", "site.hosts"] {
            #expect(entry(kind, "external")?["status"] as? String == "active", "\(kind): \(kinds)")
        }
        let shadowedBuiltin = try #require(entry("file.content", "external"))
        #expect(shadowedBuiltin["status"] as? String == "shadowed")
        #expect((shadowedBuiltin["reason"] as? String)?.contains("built-in step kind") == true)
        let twin = try #require(kinds.first { $0["kind"] as? String == "site.motd" && ($0["path"] as? String)?.hasPrefix(later) == true })
        #expect(twin["status"] as? String == "shadowed")
        #expect((twin["reason"] as? String)?.contains(Self.sh + "/provision-step-site.motd comes first") == true, "\(twin)")
        let broken = try #require(entry("site.broken", "external"))
        #expect(broken["status"] as? String == "broken")
        #expect((broken["reason"] as? String)?.contains("printed no JSON object for describe") == true, "\(broken)")
        #expect((document["search_path"] as? [String])?.prefix(4) == [Self.python, Self.sh, mine, later])

        let text = try CLI.run(["plugins", "--plugin-dir", mine])
        #expect(text.stdout.contains("site.broken (broken)"), "\(text.stdout)")
        let one = try CLI.run(["plugins", "site.sysctl", "--plugin-dir", Self.python])
        #expect(one.status == 0, "\(one.stderr)")
        #expect(one.stdout.contains("settings (mapping, required)"))
        #expect(one.stdout.contains("example:\nsteps:\n  - id: site-sysctl\n    uses: site.sysctl\n    with:\n      name: "))
    }

    @Test func theExamplesPassTheirFixtures() throws {
        for directory in [Self.python, Self.sh] {
            let result = try CLI.run(["plugin", "test", directory])
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            #expect(result.stdout.hasSuffix("4 passed, 0 failed\n"), "\(result.stdout)")
        }
        // A fixture that is wrong fails, and says why.
        let temp = try TempRoot()
        let copy = try Self.directory(temp, "motd")
        try FileManager.default.createDirectory(atPath: copy + "/fixtures", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.sh + "/provision-step-site.motd", toPath: copy + "/provision-step-site.motd")
        try temp.write("/motd/fixtures/wrong.json", #"{"step": "site.motd", "options": {"message": "x"}, "files": {}, "expected": {"/etc/motd": "y\n"}}"#)
        let failing = try CLI.run(["plugin", "test", copy])
        #expect(failing.status == 1)
        #expect(failing.stdout.contains("FAIL wrong\n  /etc/motd: expected \"y\\n\", got \"Welcome to localhost.\\nx\\n\""), "\(failing.stdout)")
    }

    @Test func threePluginsPlanApplyReapplyAndRollBack() throws {
        let temp = try TempRoot(copying: "debian")
        let mine = try Self.directory(temp, "plugins")
        try Self.writeHostsPlugin(mine)
        try temp.write("/etc/hosts", "127.0.0.1\tlocalhost\n10.0.0.2\told-name\n")
        let original = try temp.fingerprint()
        let recipe = "/tmp/provision-plugin-\(UUID().uuidString).yaml"
        defer { unlink(recipe) }
        try Data("""
            name: site
            steps:
              - id: sysctl
                uses: site.sysctl
                with:
                  name: vfio
                  settings: {vm.swappiness: 10, kernel.sysrq: 0}
              - id: motd
                uses: site.motd
                with:
                  message: GPU passthrough host
              - id: hosts
                uses: site.hosts
                with:
                  address: 10.0.0.2
                  names: [guest, guest.lan]
            """.utf8).write(to: URL(fileURLWithPath: recipe))
        let arguments = ["--root", temp.path, "--plugin-dir", Self.python, "--plugin-dir", Self.sh, "--plugin-dir", mine]
        let plan = try CLI.run(["plan", recipe, "--detailed-exitcode"] + arguments)
        #expect(plan.status == 2, "\(plan.stdout)\(plan.stderr)")
        #expect(plan.stdout.contains("+vm.swappiness = 10"), "\(plan.stdout)")
        #expect(plan.stdout.contains("+10.0.0.2\tguest guest.lan"), "\(plan.stdout)")

        let apply = try CLI.run(["apply", recipe, "--json"] + arguments)
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(try CLI.json(apply.stdout)["changed"] as? Int == 3)
        #expect(temp.read("/etc/sysctl.d/60-vfio.conf") == "# Written by provision (site.sysctl).\nkernel.sysrq = 0\nvm.swappiness = 10\n")
        let hostname = temp.read("/etc/hostname")!.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(temp.read("/etc/motd") == "Welcome to \(hostname).\nGPU passthrough host\n")
        #expect(temp.read("/etc/hosts") == "127.0.0.1\tlocalhost\n10.0.0.2\tguest guest.lan\n")

        let again = try CLI.run(["apply", recipe, "--json"] + arguments)
        #expect(try CLI.json(again.stdout)["changed"] as? Int == 0, "\(again.stdout)\(again.stderr)")
        let rollback = try CLI.run(["rollback", "1", "--root", temp.path])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(try temp.fingerprint() == original)
    }

    @Test func anUnknownOptionIsRefusedAtLoadWithItsLine() throws {
        let temp = try TempRoot(copying: "debian")
        try temp.write("/r.yaml", "name: typo\nsteps:\n  - uses: site.motd\n    with:\n      mesage: hello\n")
        let result = try CLI.run(["plan", temp.real("/r.yaml"), "--root", temp.path, "--plugin-dir", Self.sh])
        #expect(result.status == 1)
        #expect(result.stderr.contains("r.yaml:5:7: site.motd has no option \"mesage\" (options: message)"), "\(result.stderr)")
        let missing = try CLI.run(["plan", temp.real("/r.yaml"), "--root", temp.path])
        #expect(missing.stderr.contains("unknown step kind \"site.motd\""), "\(missing.stderr)")
    }

    /// Runs a one-step recipe of `kind` with `apply`: it must fail, naming the plugin, the step's
    /// line and `expected`, and leave the root as it was.
    func refused(_ kind: String, _ expected: [String], in plugins: String, timeout: Int? = nil) throws -> (CLI.Result, TimeInterval) {
        let temp = try TempRoot(copying: "debian")
        let original = try temp.fingerprint()
        let recipe = "/tmp/provision-plugin-\(UUID().uuidString).yaml"
        try Data("name: bad\nsteps:\n  - id: bad\n    uses: \(kind)\n\(timeout.map { "    timeout: \($0)\n" } ?? "")".utf8)
            .write(to: URL(fileURLWithPath: recipe))
        defer { unlink(recipe) }
        let started = Date()
        let result = try CLI.run(["apply", recipe, "--root", temp.path, "--plugin-dir", plugins])
        let elapsed = Date().timeIntervalSince(started)
        #expect(result.status == 1, "\(kind): \(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("\((recipe as NSString).lastPathComponent):3:5: step bad (\(kind)): plugin \(plugins)/provision-step-\(kind)"), "\(result.stderr)")
        for text in expected { #expect(result.stderr.contains(text), "\(kind): \(text) in \(result.stderr)") }
        #expect(try temp.fingerprint(excludingHistory: false) == original, "\(kind) changed the root")
        return (result, elapsed)
    }

    @Test(.timeLimit(.minutes(3))) func misbehavingPluginsAreStoppedAndNamed() throws {
        let temp = try TempRoot()
        let plugins = try Self.directory(temp, "plugins")
        let outside = temp.real("/outside")
        // Writes: its own directory and /usr are read-only, the machine's /tmp is not there at all.
        try Self.writePlugin(plugins, kind: "test.writer", plan: """
            failed=0
            for target in "$(dirname "$0")/escape" /usr/escape /etc/escape /escape; do
                if echo x > "$target" 2>/dev/null; then echo "wrote $target" >&2; else failed=$((failed + 1)); fi
            done
            mkdir -p "$(dirname \(outside))" && echo x > \(outside) && echo "own /tmp is writable" >&2
            printf '{"error": {"message": "%s of 4 writes failed"}}\\n' "$failed"
            """)
        try Self.writePlugin(plugins, kind: "test.garbage", plan: "echo 'hello, world'")
        try Self.writePlugin(plugins, kind: "test.exit3", plan: "echo 'cannot decide: no site config' >&2; exit 3")
        try Self.writePlugin(plugins, kind: "test.segfault", plan: "echo 'about to crash' >&2; kill -SEGV $$")
        try Self.writePlugin(plugins, kind: "test.sleeper", plan: "sleep 3600")
        try Self.writePlugin(plugins, kind: "test.flood", plan: "head -c 20000000 /dev/zero")
        try Self.writePlugin(plugins, kind: "test.forker", plan: "sleep 3141592 >/dev/null 2>&1 &\necho '{\"error\": {\"message\": \"left a child behind\"}}'")

        _ = try refused("test.writer", ["refused: 4 of 4 writes failed", "own /tmp is writable"], in: plugins)
        for leftover in [plugins + "/escape", "/usr/escape", outside, "/etc/escape", "/escape"] {
            #expect(!FileManager.default.fileExists(atPath: leftover), "\(leftover) was written")
        }
        _ = try refused("test.garbage", ["printed no JSON object for plan (it began: \"hello, world\\n\")"], in: plugins)
        _ = try refused("test.exit3", ["exited with status 3 during plan", "its stderr ends:\n  cannot decide: no site config"], in: plugins)
        _ = try refused("test.segfault", ["crashed during plan (signal 11, SIGSEGV)", "about to crash"], in: plugins)
        let (_, elapsed) = try refused("test.sleeper", ["did not answer plan within 2 s and was killed"], in: plugins, timeout: 2)
        #expect(elapsed < 20, "the sleeper ran \(elapsed) s")
        _ = try refused("test.forker", ["refused: left a child behind"], in: plugins)
        _ = try refused("test.flood", ["printed more than 16 MiB for plan and was killed"], in: plugins)
        let survivors = try ProcessRunner.run(["pgrep", "-f", "sleep 3141592"])
        #expect(survivors.status == 1, "a background process survived the plan: \(survivors.output)")
    }

    @Test(.timeLimit(.minutes(2))) func aPluginDiesWithProvision() throws {
        let temp = try TempRoot(copying: "debian")
        let plugins = try Self.directory(temp, "plugins")
        try Self.writePlugin(plugins, kind: "test.sleeper", plan: "sleep 2718281 & sleep 2718282")
        let recipe = "/tmp/provision-plugin-\(UUID().uuidString).yaml"
        try Data("name: killed\nsteps:\n  - uses: test.sleeper\n    timeout: 600\n".utf8).write(to: URL(fileURLWithPath: recipe))
        defer { unlink(recipe) }
        let running = try CLI.start(["apply", recipe, "--root", temp.path, "--plugin-dir", plugins])
        var started = false
        for _ in 0..<100 where !started {
            usleep(100_000)
            started = try ProcessRunner.run(["pgrep", "-f", "sleep 2718282"]).status == 0
        }
        #expect(started, "the plugin never started")
        kill(running.pid, SIGKILL)
        _ = running.wait()
        var left = true
        for _ in 0..<50 where left {
            usleep(100_000)
            left = try ProcessRunner.run(["pgrep", "-f", "sleep 271828"]).status == 0
        }
        #expect(!left, "the plugin's processes outlived provision")
    }

    @Test func withoutBubblewrapNoPluginRuns() throws {
        let result = try CLI.run(["plugins", "--json", "--plugin-dir", Self.sh], environment: ["PROVISION_BWRAP": "/nonexistent/bwrap"])
        let kinds = try #require(try CLI.json(result.stdout)["kinds"] as? [[String: Any]])
        let motd = try #require(kinds.first { $0["kind"] as? String == "site.motd" })
        #expect(motd["status"] as? String == "broken")
        #expect((motd["reason"] as? String)?.contains("bubblewrap, which is not installed (apt-get install bubblewrap)") == true, "\(motd)")
    }

    @Test func aPluginCannotReachTheNetwork() throws {
        // A listener on this machine's loopback: the plugin, in its own network namespace, must not reach it.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                try #require(bind(listener, raw, length) == 0 && listen(listener, 4) == 0 && getsockname(listener, raw, &length) == 0)
            }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let temp = try TempRoot()
        let plugins = try Self.directory(temp, "plugins")
        try Self.writePlugin(plugins, kind: "test.network", plan: """
            exec python3 -c '
            import json, socket
            try:
                socket.create_connection(("127.0.0.1", \(port)), timeout=3)
                message = "connected"
            except OSError as error:
                message = "no network: %s" % error.strerror
            print(json.dumps({"error": {"message": message}}))'
            """)
        let (result, _) = try refused("test.network", ["refused: no network: "], in: plugins)
        #expect(!result.stderr.contains("connected"))
        _ = fcntl(listener, F_SETFL, O_NONBLOCK)
        #expect(accept(listener, nil, nil) < 0 && errno == EAGAIN, "the plugin reached the host's loopback")
    }
}
