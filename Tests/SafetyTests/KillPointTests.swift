import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The write system calls a kill point may sit on (openat only when it creates).
enum WriteSyscalls {
    static let all = [
        "write", "pwrite64", "writev", "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "unlink",
        "unlinkat", "mkdir", "mkdirat", "rmdir", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat", "fsync", "syncfs",
        "fdatasync", "ftruncate", "setxattr", "fsetxattr", "openat",
    ]
}

/// One invocation to kill at: `strace --inject=SYSCALL:signal=KILL:when=N`.
///
/// strace 6.1 counts invocations for `when=` per system call and per tracee (thread or process).
/// So the walk injects into one system call at a time, and N goes over that call's invocations as
/// the counting run saw them in each tracee: with one tracee (provision does its writes on one
/// thread and, on these snapshots, spawns nothing) this is every invocation exactly once. Every
/// kill run checks that the tracee did die inside the expected call (an openat that creates, for
/// openat); a run that was not killed there is reported as missed.
struct KillPoint: Sendable, CustomStringConvertible {
    var syscall: String
    var n: Int
    /// The call in the counting run, root path replaced by ROOT.
    var call: String
    var description: String { "\(syscall)#\(n)" }
}

struct KillOutcome: Sendable {
    var point: KillPoint
    /// The call the tracee died in, as the kill run logged it.
    var killedIn: String?
    var missed: Bool
    /// Tagged failures ("recovery exit", "root", "fsck", …).
    var failures: [(tag: String, detail: String)]
}

enum KillSweep {
    /// Runs the command once under strace and lists every kill point, in order.
    static func points(_ arguments: [String], root: String, log: String) throws -> (points: [KillPoint], tracees: [String: Int]) {
        let run = try Spawn.run(
            ["strace", "-f", "-s", "96", "-o", log, "-e", "trace=" + WriteSyscalls.all.joined(separator: ",")]
                + ["--", CLI.binary] + arguments, timeout: 120)
        guard run.status == 0 else { throw ProvisionError(.io, "counting run failed: \(run)") }
        let events = StraceLog.parse((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
        var points: [KillPoint] = []
        var tracees: [String: Int] = [:]
        for syscall in WriteSyscalls.all {
            let calls = events.filter { $0.name == syscall }
            let pids = calls.reduce(into: [Int]()) { if !$0.contains($1.pid) { $0.append($1.pid) } }
            tracees[syscall] = pids.count
            var seen = Set<Int>()
            for pid in pids {
                for (offset, event) in calls.filter({ $0.pid == pid }).enumerated() {
                    let n = offset + 1
                    if syscall == "openat" && !event.creates { continue }
                    guard seen.insert(n).inserted else { continue }
                    let call = "\(event.name)(\(event.arguments.joined(separator: ", ")))".replacingOccurrences(of: root, with: "ROOT")
                    points.append(KillPoint(syscall: syscall, n: n, call: String(call.prefix(240))))
                }
            }
        }
        return (points.sorted { ($0.syscall, $0.n) < ($1.syscall, $1.n) }, tracees)
    }

    /// Runs the command under strace, killed with SIGKILL on entering the point's invocation.
    /// Returns the call it died in (nil when it was not killed).
    static func kill(_ arguments: [String], at point: KillPoint, root: String, log: String) throws -> (killedIn: String?, run: Measured) {
        let run = try Spawn.run(
            ["strace", "-f", "-s", "96", "-o", log, "-e", "trace=\(point.syscall)",
                "--inject=\(point.syscall):signal=KILL:when=\(point.n)", "--", CLI.binary] + arguments, timeout: 60)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        defer { unlink(log) }
        guard text.contains("+++ killed by SIGKILL +++"), !run.timedOut else { return (nil, run) }
        let interrupted = StraceLog.parse(text).last { $0.interrupted && $0.name == point.syscall }
        guard let interrupted else { return (nil, run) }
        if point.syscall == "openat" && !interrupted.creates { return (nil, run) }
        let call = "\(interrupted.name)(\(interrupted.arguments.joined(separator: ", ")))".replacingOccurrences(of: root, with: "ROOT")
        return (String(call.prefix(240)), run)
    }

    /// Failures grouped by tag: "tag: N point(s): rename#3, write#12 …", each with its first example.
    static func report(_ outcomes: [KillOutcome], what: String) -> String {
        var byTag: [String: [String]] = [:]
        var example: [String: String] = [:]
        for outcome in outcomes {
            for failure in outcome.failures {
                byTag[failure.tag, default: []].append(outcome.point.description)
                if example[failure.tag] == nil {
                    example[failure.tag] = "e.g. \(what) killed at \(outcome.point) in \(outcome.killedIn ?? outcome.point.call): \(failure.detail.prefix(400))"
                }
            }
        }
        return byTag.sorted { $0.value.count > $1.value.count }.map { tag, points in
            "  \(tag): \(points.count) point(s): \(points.prefix(40).joined(separator: ", "))\(points.count > 40 ? " …" : "")\n"
                + "    \(example[tag] ?? "")"
        }.joined(separator: "\n")
    }
}

/// Tallies both sweeps for the one summary line.
final class KillTally: @unchecked Sendable {
    static let shared = KillTally()
    private let lock = NSLock()
    private var counts: [String: Int] = [:]

    func record(_ sweep: String, _ count: Int) -> String {
        lock.lock()
        defer { lock.unlock() }
        counts[sweep] = count
        let apply = counts["apply"].map(String.init) ?? "(not run)"
        let rollback = counts["rollback"].map(String.init) ?? "(not run)"
        return "kill points covered: apply \(apply), rollback \(rollback)"
    }
}

extension SafetyTests {
    /// §1: SIGKILL at every write system call of an apply and of a rollback; the next run must
    /// recover, leave a root equal to an uninterrupted run's, and a clean history.
    @Suite struct KillPoints {
        /// SAFETY_KILL_FAMILIES=arch,fedora adds families (arch by default: its handlers are skipped
        /// because the tools are not in the root, so every write is provision's own).
        static var families: [Safety.Family] {
            let names = ProcessInfo.processInfo.environment["SAFETY_KILL_FAMILIES"]?.split(separator: ",").map(String.init) ?? ["arch"]
            return names.map(Safety.family)
        }

        @Test func applyKilledAtEveryWritePoint() throws {
            try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/strace"), "strace is needed (scripts/install-deps.sh)")
            var total = 0
            for family in Self.families {
                let original = Tree.hostFingerprint(Package.path("snapshots/\(family.name)"))
                let (_, appliedPrint) = try Safety.applied(family)
                let counting = try TempRoot(copying: family.name)
                let logs = try TempDirectory("provision-strace")
                let (points, tracees) = try KillSweep.points(
                    ["apply", Safety.recipe, "--root", counting.path] + family.vars, root: counting.path, log: logs.file("count.log"))
                try #require(!points.isEmpty, "the counting run saw write calls")
                let (outcomes, seconds) = timed {
                    Parallel.map(points, workers: 2) { point in
                        Self.applyKilled(at: point, family: family, original: original, applied: appliedPrint, logs: logs.path)
                    }
                }
                total += points.count
                let failed = outcomes.filter { !$0.failures.isEmpty }
                let missed = outcomes.filter(\.missed).map(\.point.description)
                let perSyscall = Dictionary(grouping: points, by: \.syscall).map { "\($0.key) \($0.value.count)" }.sorted()
                print("""
                    [kill sweep] apply on \(family): \(points.count) kill points (\(perSyscall.joined(separator: ", "))), \
                    tracees per call \(tracees.filter { $0.value > 0 }.map { "\($0.key):\($0.value)" }.sorted().joined(separator: " ")), \
                    \(failed.count) failing, \(String(format: "%.1f", seconds)) s
                    """)
                if !missed.isEmpty {
                    // Object ids carry the commit time, so whether libgit2 needs a new objects/xx
                    // directory (and so the count of later calls) can differ from the counting run.
                    print("  not killed in the expected call (the run had fewer such calls than the counting run): \(missed.joined(separator: ", "))")
                }
                if !failed.isEmpty { print(KillSweep.report(outcomes, what: "apply")) }
                #expect(failed.count == 0, "apply on \(family): \(failed.count) of \(points.count) kill points fail:\n\(KillSweep.report(outcomes, what: "apply"))")
            }
            print(KillTally.shared.record("apply", total))
        }

        @Test func rollbackKilledAtEveryWritePoint() throws {
            try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/strace"), "strace is needed (scripts/install-deps.sh)")
            var total = 0
            for family in Self.families {
                let original = Tree.hostFingerprint(Package.path("snapshots/\(family.name)"))
                let (template, appliedPrint) = try Safety.applied(family)
                let counting = try TempRoot(copyingDirectory: template.path)
                let logs = try TempDirectory("provision-strace")
                let (points, tracees) = try KillSweep.points(
                    ["rollback", "--root", counting.path], root: counting.path, log: logs.file("count.log"))
                try #require(!points.isEmpty, "the counting run saw write calls")
                let templatePath = template.path
                let (outcomes, seconds) = timed {
                    Parallel.map(points, workers: 2) { point in
                        Self.rollbackKilled(at: point, template: templatePath, original: original, applied: appliedPrint, logs: logs.path)
                    }
                }
                total += points.count
                let failed = outcomes.filter { !$0.failures.isEmpty }
                let missed = outcomes.filter(\.missed).map(\.point.description)
                let perSyscall = Dictionary(grouping: points, by: \.syscall).map { "\($0.key) \($0.value.count)" }.sorted()
                print("""
                    [kill sweep] rollback on \(family): \(points.count) kill points (\(perSyscall.joined(separator: ", "))), \
                    tracees per call \(tracees.filter { $0.value > 0 }.map { "\($0.key):\($0.value)" }.sorted().joined(separator: " ")), \
                    \(failed.count) failing, \(String(format: "%.1f", seconds)) s
                    """)
                if !missed.isEmpty {
                    // Object ids carry the commit time, so whether libgit2 needs a new objects/xx
                    // directory (and so the count of later calls) can differ from the counting run.
                    print("  not killed in the expected call (the run had fewer such calls than the counting run): \(missed.joined(separator: ", "))")
                }
                if !failed.isEmpty { print(KillSweep.report(outcomes, what: "rollback")) }
                #expect(failed.count == 0, "rollback on \(family): \(failed.count) of \(points.count) kill points fail:\n\(KillSweep.report(outcomes, what: "rollback"))")
            }
            print(KillTally.shared.record("rollback", total))
        }

        /// Apply killed at `point` on a fresh copy; apply again; compare; roll back; compare.
        static func applyKilled(
            at point: KillPoint, family: Safety.Family, original: [String: String], applied: [String: String], logs: String
        ) -> KillOutcome {
            var outcome = KillOutcome(point: point, killedIn: nil, missed: false, failures: [])
            do {
                let root = try TempRoot(copying: family.name)
                let arguments = ["apply", Safety.recipe, "--root", root.path] + family.vars
                let killed = try KillSweep.kill(arguments, at: point, root: root.path, log: logs + "/\(point).\(UUID().uuidString).log")
                outcome.killedIn = killed.killedIn
                outcome.missed = killed.killedIn == nil
                let again = try CLI.measure(arguments)
                guard again.status == 0 else {
                    outcome.failures.append(("next apply fails", again.description))
                    return outcome
                }
                let now = Tree.hostFingerprint(root.path)
                if now != applied {
                    outcome.failures.append(("root differs from an uninterrupted apply", Tree.differences(applied, now)))
                }
                for problem in Safety.leftovers(root: root.path, git: { try Safety.git(root.historyPath, $0) }) {
                    outcome.failures.append(Self.tagged(problem))
                }
                let rollback = try CLI.measure(["rollback", "--root", root.path])
                if rollback.status != 0 {
                    outcome.failures.append(("rollback after recovery fails", rollback.description))
                } else if Tree.hostFingerprint(root.path) != original {
                    outcome.failures.append(
                        ("rollback does not give back the snapshot", Tree.differences(original, Tree.hostFingerprint(root.path))))
                }
            } catch {
                outcome.failures.append(("harness error", "\(error)"))
            }
            return outcome
        }

        /// "lock file(s) left in history: refs/heads/main.lock" -> (tag, detail).
        static func tagged(_ problem: String) -> (tag: String, detail: String) {
            guard let colon = problem.range(of: ": ") else { return (problem, "") }
            return (String(problem[..<colon.lowerBound]), String(problem[colon.upperBound...]))
        }

        /// History's tip is the rollback of run 1, and no journal is pending.
        static func rollbackComplete(_ history: String) -> Bool {
            let trailers = try? Safety.git(history, ["log", "-1", "--format=%(trailers:key=Provision-Action,key=Provision-Undid,valueonly,separator=%x2C)"])
            return trailers?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "rollback,1"
                && !Tree.exists(history + "/provision-journal.json")
        }

        /// Rollback of an applied copy killed at `point`; rollback again; must be the snapshot.
        static func rollbackKilled(
            at point: KillPoint, template: String, original: [String: String], applied: [String: String], logs: String
        ) -> KillOutcome {
            var outcome = KillOutcome(point: point, killedIn: nil, missed: false, failures: [])
            do {
                let root = try TempRoot(copyingDirectory: template)
                let arguments = ["rollback", "--root", root.path]
                let killed = try KillSweep.kill(arguments, at: point, root: root.path, log: logs + "/\(point).\(UUID().uuidString).log")
                outcome.killedIn = killed.killedIn
                outcome.missed = killed.killedIn == nil
                let again = try CLI.measure(arguments)
                // Killed after its commit (printing, removing the journal), the first rollback is
                // complete: the next one may then say there is nothing left to undo.
                if again.status != 0 && !(again.exitedWithError && Self.rollbackComplete(root.historyPath)) {
                    outcome.failures.append(("next rollback fails", again.description))
                    return outcome
                }
                let now = Tree.hostFingerprint(root.path)
                if now == applied {
                    // The next rollback only undid the interrupted one (back to the applied state)
                    // and stopped: the rollback the user asked for is still not done.
                    outcome.failures.append(("next rollback only recovered: root is the applied state, not the snapshot", ""))
                } else if now != original {
                    outcome.failures.append(("root is not the snapshot after the next rollback", Tree.differences(original, now)))
                }
                for problem in Safety.leftovers(root: root.path, git: { try Safety.git(root.historyPath, $0) }) {
                    outcome.failures.append(Self.tagged(problem))
                }
            } catch {
                outcome.failures.append(("harness error", "\(error)"))
            }
            return outcome
        }
    }
}
