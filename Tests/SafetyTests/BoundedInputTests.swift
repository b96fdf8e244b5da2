import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension SafetyTests {
    /// §5: input that would make a careless reader hang, allocate without bound, recurse without
    /// bound or backtrack for ever. Each must end within 5 s, below 200 MiB of RSS (the child's own
    /// rusage), with an error naming the file, and with the root exactly as it was, history included.
    @Suite struct BoundedInput {
        static let seconds = 5.0
        static let maxRSSMiB = 200.0
        /// The child runs under prlimit --as: a run-away allocation fails in the child rather than
        /// pushing this shared machine into swap (and still fails the test).
        static let addressSpace = 4 << 30

        struct Case: Sendable, CustomStringConvertible {
            var description: String
            var family = "arch"
            /// Prepares the root (and a scratch directory outside it), returns the CLI arguments after `--root ROOT`
            /// are appended, and the names one of which the error must mention.
            var prepare: @Sendable (TempRoot, TempDirectory) throws -> (arguments: [String], names: [String])
        }

        static func fifo(_ hostPath: String) -> Case {
            Case(description: "FIFO at \(hostPath)") { root, _ in
                let path = root.real(hostPath)
                try? FileManager.default.removeItem(atPath: path)
                try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                guard mkfifo(path, 0o644) == 0 else { throw ProvisionError(.io, "mkfifo \(path) failed") }
                return (["apply", Safety.recipe], [hostPath])
            }
        }

        static func recipe(_ scratch: TempDirectory, _ name: String, _ text: String) throws -> String {
            try scratch.write(name, text)
            return scratch.file(name)
        }

        static let failing: [Case] = [
            fifo("/etc/default/grub"), fifo("/etc/libvirt/qemu.conf"), fifo("/etc/os-release"), fifo("/etc/passwd"), fifo("/proc/cmdline"),
            Case(description: "2 GB sparse /etc/default/grub") { root, _ in
                let truncated = try ProcessRunner.run(["truncate", "-s", "2G", root.real("/etc/default/grub")])
                guard truncated.status == 0 else { throw ProvisionError(.io, truncated.output) }
                return (["apply", Safety.recipe], ["/etc/default/grub"])
            },
            Case(description: "billion laughs recipe (YAML anchors and aliases)") { _, scratch in
                var text = "name: lol\nvars:\n  l0: &l0 \"lol\"\n"
                for level in 1...9 {
                    text += "  l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
                }
                text += "steps:\n  - uses: system.user\n    with:\n      name: lol\n      groups: *l9\n"
                let path = try recipe(scratch, "lol.yaml", text)
                return (["apply", path], [path])
            },
            Case(description: "kernelstub configuration nested 20,000 deep", family: "popos") { root, _ in
                let path = root.real("/etc/kernelstub/configuration")
                var text = try String(contentsOfFile: path, encoding: .utf8)
                let deep = String(repeating: "[", count: 20_000) + String(repeating: "]", count: 20_000)
                text = text.replacingOccurrences(of: "\"default\": {", with: "\"deep\": \(deep),\n  \"default\": {")
                guard text.contains("\"deep\"") else { throw ProvisionError(.io, "popos kernelstub configuration has no \"default\" key") }
                try Data(text.utf8).write(to: URL(fileURLWithPath: path))
                return (["apply", Safety.recipe], ["/etc/kernelstub/configuration"])
            },
            // A pattern whose automaton would have to do more work than the budget allows is refused
            // at its option (a backtracking engine takes minutes here; `^(a+)+$` is simply fast, below).
            Case(description: "file.line match '(a|b)*a(a|b){20}c' over 10,000 lines of a/b") { root, scratch in
                var generator = SystemRandomNumberGenerator()
                let text = (0..<10_000).map { _ in String((0..<80).map { _ in Bool.random(using: &generator) ? "a" : "b" }) }
                    .joined(separator: "\n") + "\n"
                try root.write("/etc/redos.conf", text)
                let path = try recipe(scratch, "redos.yaml", """
                    name: redos
                    steps:
                      - uses: file.line
                        with:
                          path: /etc/redos.conf
                          match: '(a|b)*a(a|b){20}c'
                          line: c

                    """)
                return (["apply", path], [path])
            },
            Case(description: "system.user uid: -5") { _, scratch in
                let path = try recipe(scratch, "uid-negative.yaml", "name: uid\nsteps:\n  - uses: system.user\n    with: {name: qemu, uid: -5}\n")
                return (["apply", path], [path])
            },
            Case(description: "system.user uid: 4294967296") { _, scratch in
                let path = try recipe(scratch, "uid-huge.yaml", "name: uid\nsteps:\n  - uses: system.user\n    with: {name: qemu, uid: 4294967296}\n")
                return (["apply", path], [path])
            },
        ]

        @Test(arguments: failing)
        func refusedQuicklyWithBoundedMemory(_ testCase: Case) throws {
            let root = try TempRoot(copying: testCase.family)
            let scratch = try TempDirectory("provision-input")
            let (arguments, names) = try testCase.prepare(root, scratch)
            let before = Tree.fingerprint(root.path)
            let run = try CLI.measure(arguments + ["--root", root.path], timeout: Self.seconds, addressSpaceLimit: Self.addressSpace)
            print("[bounded] \(testCase): \(run)")
            #expect(!run.timedOut && run.seconds < Self.seconds, "\(testCase): ends within \(Self.seconds) s (\(run))")
            #expect(run.exitedWithError, "\(testCase): fails with an error exit, not a crash or a hang (\(run))")
            #expect(names.contains { run.stderr.contains($0) }, "\(testCase): the error names \(names.joined(separator: " or ")): \(run.stderr)")
            #expect(run.maxRSSMiB < Self.maxRSSMiB, "\(testCase): peak RSS \(run.maxRSSMiB) MiB < \(Self.maxRSSMiB) MiB")
            let after = Tree.fingerprint(root.path)
            let unchanged = after == before
            #expect(unchanged, "\(testCase): the root (history included) is unchanged: \(Tree.differences(before, after))")
        }

        /// `^(a+)+$` hangs a backtracking engine for minutes on 40 a's and a b; the automaton answers
        /// at once, correctly (no line matches, so the line is appended).
        @Test func nestedQuantifierAnswersAtOnce() throws {
            let root = try TempRoot(copying: "arch")
            let scratch = try TempDirectory("provision-input")
            try root.write("/etc/redos.conf", String(repeating: "a", count: 40) + "b\n")
            let path = try Self.recipe(scratch, "redos.yaml", "name: redos\nsteps:\n  - uses: file.line\n    with: {path: /etc/redos.conf, match: '^(a+)+$', line: aaaa}\n")
            let run = try CLI.measure(["apply", path, "--root", root.path], timeout: Self.seconds, addressSpaceLimit: Self.addressSpace)
            print("[bounded] ^(a+)+$: \(run)")
            #expect(run.status == 0 && run.seconds < Self.seconds && run.maxRSSMiB < Self.maxRSSMiB, "\(run)")
            #expect(root.read("/etc/redos.conf") == String(repeating: "a", count: 40) + "b\naaaa\n")
        }

        static func lines(_ count: Int) -> String { (1...count).map { "line \($0) of \(count)" }.joined(separator: "\n") + "\n" }

        static let succeeding: [Case] = [
            Case(description: "plan creating a 10,000-line file (inline content)") { _, scratch in
                // The block scalar's lines, indented below `content: |` (the literal's own indentation is stripped).
                let content = lines(10_000).split(separator: "\n").map { "        " + $0 }.joined(separator: "\n")
                let path = try recipe(scratch, "big-inline.yaml", """
                    name: big
                    steps:
                      - uses: file.content
                        with:
                          path: /etc/big-10000.conf
                          content: |
                    \(content)

                    """)
                return (["plan", path], ["+line 10000 of 10000", "+line 1 of 10000"])
            },
            Case(description: "plan creating a 20,000-line file (source file)") { _, scratch in
                try scratch.write("big-20000.txt", lines(20_000))
                let path = try recipe(scratch, "big-source.yaml", """
                    name: big
                    steps:
                      - uses: file.content
                        with:
                          path: /etc/big-20000.conf
                          source: big-20000.txt

                    """)
                return (["plan", path], ["+line 20000 of 20000", "+line 1 of 20000"])
            },
        ]

        @Test(arguments: succeeding)
        func bigNewFilesArePlannedQuickly(_ testCase: Case) throws {
            let root = try TempRoot(copying: testCase.family)
            let scratch = try TempDirectory("provision-input")
            let (arguments, expected) = try testCase.prepare(root, scratch)
            let before = Tree.fingerprint(root.path)
            let run = try CLI.measure(arguments + ["--root", root.path], timeout: Self.seconds, addressSpaceLimit: Self.addressSpace)
            print("[bounded] \(testCase): \(run)")
            #expect(run.status == 0, "\(testCase): plan succeeds (\(run))")
            #expect(!run.timedOut && run.seconds < Self.seconds, "\(testCase): ends within \(Self.seconds) s (\(run))")
            #expect(run.maxRSSMiB < Self.maxRSSMiB, "\(testCase): peak RSS \(run.maxRSSMiB) MiB < \(Self.maxRSSMiB) MiB")
            for line in expected { #expect(run.stdout.contains(line), "\(testCase): the diff shows \(line)") }
            let after = Tree.fingerprint(root.path)
            let unchanged = after == before
            #expect(unchanged, "\(testCase): plan writes nothing: \(Tree.differences(before, after))")
        }
    }
}
