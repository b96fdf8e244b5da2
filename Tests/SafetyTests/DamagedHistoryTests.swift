import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension SafetyTests {
    /// §7: a history with a part missing or broken is reported as damaged, by name, and is never
    /// silently replaced by a fresh one (which would lose every recorded pre-state).
    @Suite struct DamagedHistory {
        enum Damage: String, CaseIterable, Sendable, CustomStringConvertible {
            case branchDeleted = "refs/heads/main deleted"
            case headDeleted = "HEAD deleted"
            case tipObjectTruncated = "tip commit's loose object truncated to 0 bytes"
            var description: String { rawValue }
        }

        /// Damages the history; returns the names one of which the message must contain.
        static func damage(_ damage: Damage, _ history: String) throws -> [String] {
            switch damage {
            case .branchDeleted:
                try FileManager.default.removeItem(atPath: history + "/refs/heads/main")
                return ["refs/heads/main"]
            case .headDeleted:
                try FileManager.default.removeItem(atPath: history + "/HEAD")
                return ["HEAD"]
            case .tipObjectTruncated:
                let tip = try Safety.git(history, ["rev-parse", "main"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                let object = "objects/\(tip.prefix(2))/\(tip.dropFirst(2))"
                guard truncate(history + "/" + object, 0) == 0 else { throw ProvisionError(.io, "truncate \(object) failed") }
                return [String(tip.prefix(7)), object]
            }
        }

        @Test(arguments: Damage.allCases)
        func damagedHistoryIsReportedAndNotReplaced(_ damage: Damage) throws {
            let (root, _) = try Safety.applied(Safety.family("arch"))
            let names = try Self.damage(damage, root.historyPath)
            let history = Tree.fingerprint(root.historyPath)
            let host = Tree.hostFingerprint(root.path)

            for command in [["history"], ["apply", Safety.recipe]] {
                let run = try CLI.measure(command + ["--root", root.path])
                let what = "\(damage): \(command[0])"
                #expect(run.exitedWithError, "\(what) fails: \(run)")
                #expect(run.stderr.contains("damaged"), "\(what) says the history is damaged: \(run.stderr)")
                #expect(names.contains { run.stderr.contains($0) }, "\(what) names \(names.joined(separator: " or ")): \(run.stderr)")
                let after = Tree.fingerprint(root.historyPath)
                let historyKept = after == history
                #expect(historyKept, "\(what) leaves the history as it found it (no new root commit): \(Tree.differences(history, after))")
                let hostNow = Tree.hostFingerprint(root.path)
                let hostKept = hostNow == host
                #expect(hostKept, "\(what) changes no host file: \(Tree.differences(host, hostNow))")
            }
        }
    }
}
