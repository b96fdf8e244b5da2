import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionVerify

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Compare the host with the last recorded state: drift, an interrupted run, a pending reboot, failed handlers.",
        discussion: "Exit 0 when every tracked file is as recorded and no run was interrupted, 3 when the host drifted.")

    @OptionGroup var global: GlobalOptions

    struct Document: Encodable {
        var status: HostStatus
        var rebootRequired: Bool
        var rebootMissing: [String]

        enum CodingKeys: String, CodingKey {
            case root, run, commit, tracked, drift, recovery, clean, pendingHandlers, lastApplied, rebootRequired, rebootMissing
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(status.root, forKey: .root)
            try container.encodeIfPresent(status.run, forKey: .run)
            try container.encodeIfPresent(status.commit, forKey: .commit)
            try container.encode(status.tracked, forKey: .tracked)
            try container.encode(status.drift, forKey: .drift)
            try container.encodeIfPresent(status.recovery, forKey: .recovery)
            try container.encode(status.clean, forKey: .clean)
            try container.encode(status.pendingHandlers, forKey: .pendingHandlers)
            try container.encodeIfPresent(status.lastApplied, forKey: .lastApplied)
            try container.encode(rebootRequired, forKey: .rebootRequired)
            try container.encode(rebootMissing, forKey: .rebootMissing)
        }
    }

    func run() throws {
        var drifted = false
        let console = global.console
        try runReporting(console) {
            let engine = try global.engine()
            let (status, applied) = try engine.status()
            let missing = Verifier.pendingReboot(root: engine.root, after: applied)
            drifted = !status.clean
            if global.json {
                Output.printJSON(Document(status: status, rebootRequired: !missing.isEmpty, rebootMissing: missing))
                return
            }
            var out = "status \(engine.root.path): "
            if let run = status.run {
                out += "last recorded run \(run) (\(status.commit.map { String($0.prefix(10)) } ?? "")), \(status.tracked) tracked file(s)\n"
            } else {
                out += "no history, nothing tracked\n"
            }
            for entry in status.drift { out += console.paint("drift:", .yellow) + " \(entry.path) (\(entry.change))\n" }
            for entry in status.drift { out += console.diff(entry.diff) }
            if let recovery = status.recovery {
                out += console.paint("interrupted:", .yellow) + " \(recovery.action.rawValue) run \(recovery.run) did not finish; the next apply or rollback puts back "
                    + "\(recovery.paths.count) file(s) from history\n"
            }
            if !missing.isEmpty {
                out += console.paint("reboot required:", .yellow) + " the running kernel was booted without \(missing.joined(separator: " ")) "
                    + "(put on the kernel command line by run \(applied.map { String($0.run) } ?? "?"))\n"
            }
            for handler in status.pendingHandlers { out += "pending handler (failed, runs with the next apply): \(handler.joined(separator: " "))\n" }
            out += status.clean
                ? console.paint("clean:", .green) + " the host is as recorded\n"
                : console.paint("drifted:", .red) + " the host differs from the last recorded state\n"
            console.out(out)
        }
        if drifted { throw ExitCode(3) }
    }
}
