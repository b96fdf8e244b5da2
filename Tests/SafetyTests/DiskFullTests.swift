import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

extension SafetyTests {
    /// §3: `apply` on a copy of the snapshot in a tmpfs just big enough for the copy, then a little
    /// bigger, … up to big enough for the whole run. Every size ends either recorded and complete,
    /// or refused with a message and the host as it was. The mounts live in a private mount namespace.
    @Suite struct DiskFull {
        enum Outcome: Sendable {
            case recorded
            case refused
            case copyDidNotFit
            /// What went wrong (counted), and the details.
            case bad(String, String)

            var key: String {
                switch self {
                case .recorded: return "exit 0, run recorded"
                case .refused: return "refused, host untouched"
                case .copyDidNotFit: return "snapshot copy did not fit"
                case .bad(let tag, _): return "BAD: " + tag
                }
            }
        }

        static let page = 4096

        @Test func applyOnAFullDiskIsRecordedOrRefusedCleanly() throws {
            let family = Safety.family("arch")
            let snapshot = Package.path("snapshots/\(family.name)")
            let original = Tree.hostFingerprint(snapshot)
            let (_, applied) = try Safety.applied(family)
            let namespace = try MountNamespace()

            // How much the copy takes, and the whole run, on tmpfs.
            let probe = try TempDirectory("provision-diskfull")
            try namespace.mountTmpfs(probe.path, bytes: 64 << 20)
            let copied = try namespace.run(["cp", "-a", snapshot + "/.", probe.path])
            try #require(copied.status == 0, "copy into the probe tmpfs: \(copied)")
            let copyBytes = namespace.usedBytes(probe.path)
            let full = try namespace.run([CLI.binary, "apply", Safety.recipe, "--root", probe.path] + family.vars)
            try #require(full.status == 0, "apply on a roomy tmpfs: \(full)")
            let runBytes = namespace.usedBytes(probe.path)
            namespace.unmount(probe.path)
            try #require(copyBytes > 0 && runBytes > copyBytes, "tmpfs usage: copy \(copyBytes), after the run \(runBytes)")

            // About 60 sizes from "the copy barely fits" to "the whole run fits with room to spare":
            // the run's peak is above what it leaves behind (the space it reserves for its commit and
            // for putting files back is given back before the commit), so the sweep goes 256 KiB past.
            let start = (copyBytes + Self.page - 1) / Self.page * Self.page
            let end = runBytes + 256 * 1024
            let step = max(Self.page, ((end - start) / 60 + Self.page - 1) / Self.page * Self.page)
            let sizes = Array(stride(from: start, through: end, by: step))

            let (outcomes, seconds) = timed {
                Parallel.map(sizes, workers: 2) { size in
                    Self.apply(size: size, family: family, snapshot: snapshot, original: original, applied: applied, namespace: namespace)
                }
            }
            var counts: [String: Int] = [:]
            for outcome in outcomes { counts[outcome.key, default: 0] += 1 }
            print("""
                [disk full] \(sizes.count) tmpfs sizes from \(start / 1024) KiB to \(sizes.last! / 1024) KiB in \(step / 1024) KiB steps \
                (copy \(copyBytes / 1024) KiB, whole run \(runBytes / 1024) KiB), \(String(format: "%.1f", seconds)) s: \
                \(counts.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))
                """)
            var bad: [String] = []
            for (size, outcome) in zip(sizes, outcomes) {
                if case .bad(let tag, let detail) = outcome { bad.append("tmpfs of \(size / 1024) KiB: \(tag): \(detail)") }
            }
            if !bad.isEmpty { print(Safety.summary(bad)) }
            #expect(bad.count == 0, "sizes where apply ended neither recorded nor refused cleanly:\n\(Safety.summary(bad))")
            #expect(counts["exit 0, run recorded", default: 0] > 0, "the largest sizes fit the whole run")
        }

        static func apply(
            size: Int, family: Safety.Family, snapshot: String, original: [String: String], applied: [String: String],
            namespace: MountNamespace
        ) -> Outcome {
            do {
                let mount = try TempDirectory("provision-diskfull")
                try namespace.mountTmpfs(mount.path, bytes: size)
                defer { namespace.unmount(mount.path) }
                let copy = try namespace.run(["cp", "-a", snapshot + "/.", mount.path])
                if copy.status != 0 { return .copyDidNotFit }
                let run = try namespace.run([CLI.binary, "apply", Safety.recipe, "--root", mount.path] + family.vars)
                let here = namespace.path(mount.path)
                let history = Safety.history(mount.path)
                let git = { (arguments: [String]) in try namespace.run(["git", "--git-dir", history] + arguments) }
                if run.timedOut || run.signal != 0 { return .bad("killed or timed out", "\(run)") }
                if run.status == 0 {
                    var problems: [(String, String)] = []
                    let action = try git(["log", "-1", "--format=%(trailers:key=Provision-Action,valueonly)"])
                    let tip = action.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                    if tip != "apply" {
                        problems.append(("exit 0 but the run is not recorded", "history's tip is \(tip.isEmpty ? action.output : tip), not the apply"))
                    }
                    let fsck = try git(["fsck", "--strict", "--no-progress"])
                    if fsck.status != 0 { problems.append(("exit 0 but git fsck fails", String(fsck.output.prefix(200)))) }
                    let now = Tree.hostFingerprint(here)
                    if now != applied { problems.append(("exit 0 but host differs from an uninterrupted apply", Tree.differences(applied, now))) }
                    return problems.isEmpty ? .recorded : .bad(problems.map(\.0).joined(separator: " + "), problems.map(\.1).joined(separator: "; "))
                }
                var problems: [(String, String)] = []
                if run.stderr.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { problems.append(("no message", "exit \(run.status), stderr empty")) }
                let now = Tree.hostFingerprint(here)
                if now != original {
                    problems.append(("exit \(run.status) with the host changed but not recorded", Tree.differences(original, now)))
                }
                if Tree.exists(namespace.path(history)) {
                    let fsck = try git(["fsck", "--strict", "--no-progress"])
                    if fsck.status != 0 {
                        problems.append(("history left behind fails git fsck", fsck.output.split(separator: "\n").prefix(3).joined(separator: " | ")))
                    }
                }
                guard !problems.isEmpty else { return .refused }
                return .bad(problems.map(\.0).joined(separator: " + "), problems.map(\.1).joined(separator: "; ") + "; stderr: \(run.stderr.split(separator: "\n").first ?? "")")
            } catch {
                return .bad("harness error", "\(error)")
            }
        }
    }
}
