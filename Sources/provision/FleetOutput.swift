import Foundation
import ProvisionCore
import ProvisionFleet

/// What `fleet plan|apply|rollback|status --json` prints: one document for the whole fleet.
struct FleetDocument: Encodable {
    var schema = 1
    var action: String
    var fleetRun: Int?
    var recipe: String?
    var stoppedEarly: Bool
    var hosts: [FleetHostReport]
    var recap: [String: FleetRecapLine]
}

struct FleetRecapLine: Encodable {
    var ok = 0
    var changed = 0
    var unreachable = 0
    var failed = 0
    var skipped = 0
}

enum FleetOutput {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    static func printJSON<T: Encodable>(_ value: T) {
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }

    /// The recap counts, as Ansible's PLAY RECAP counts tasks: here, a host's steps.
    static func recap(_ report: FleetHostReport) -> FleetRecapLine {
        var line = FleetRecapLine()
        let outcome = report.outcome
        switch outcome.status {
        case .unreachable: line.unreachable = 1
        case .skipped: line.skipped = 1
        case .failed:
            line.failed = 1
            line.ok = outcome.stepsOK
            line.changed = outcome.stepsChanged
        case .ok, .changed:
            line.ok = max(outcome.stepsOK, 1)
            line.changed = outcome.status == .changed ? max(outcome.stepsChanged, 1) : 0
        }
        return line
    }

    /// One line per host as it finishes.
    static func line(_ report: FleetHostReport, action: String, width: Int) -> String {
        let outcome = report.outcome
        var text = outcome.host.padding(toLength: max(width, outcome.host.count), withPad: " ", startingAt: 0) + "  "
        text += outcome.status.rawValue.uppercased()
        var details: [String] = []
        if let run = outcome.run { details.append("run \(run)") }
        if outcome.changedFiles > 0 { details.append(action == "status" ? "\(outcome.changedFiles) file(s) drifted" : "\(outcome.changedFiles) file(s)") }
        if outcome.rebootRequired { details.append("reboot required") }
        if outcome.recoveryPending == true { details.append("recovery pending (the next apply or rollback there recovers)") }
        if outcome.status == .failed, let recorded = outcome.recorded { details.append(recorded ? "its run was recorded" : "nothing recorded") }
        if let pushed = report.pushedBinary { details.append("provision copied to \(pushed)") }
        if !details.isEmpty { text += "  " + details.joined(separator: ", ") }
        text += String(format: "  (%.1f s)", outcome.seconds)
        if let error = outcome.error { text += "\n    " + error.replacingOccurrences(of: "\n", with: "\n    ") }
        return text
    }

    static func recapText(_ reports: [FleetHostReport], title: String) -> String {
        let width = reports.map(\.outcome.host.count).max() ?? 0
        var text = "\n\(title)\n"
        for report in reports {
            let line = recap(report)
            text += report.outcome.host.padding(toLength: width, withPad: " ", startingAt: 0)
            text += " : ok=\(line.ok)  changed=\(line.changed)  unreachable=\(line.unreachable)  failed=\(line.failed)  skipped=\(line.skipped)\n"
        }
        return text
    }

    static func recapMap(_ reports: [FleetHostReport]) -> [String: FleetRecapLine] {
        Dictionary(uniqueKeysWithValues: reports.map { ($0.outcome.host, recap($0)) })
    }
}

/// Runs a fleet action and prints it; returns the reports and whether batches stopped early.
func runFleet(
    _ options: ProvisionFleet.FleetOptions, targets: [FleetTarget], state: FleetState, store: FleetStore, json: Bool
) throws -> (reports: [FleetHostReport], stopped: Bool) {
    let runner = try FleetRunner(options: options, state: state, store: store)
    let width = targets.map(\.name.count).max() ?? 0
    let action = options.action
    let name: String = {
        switch action {
        case .plan: "plan"
        case .apply: "apply"
        case .rollback: "rollback"
        case .status: "status"
        }
    }()
    if !json {
        emit("\(name) on \(targets.count) host(s), \(min(options.forks, targets.count)) at a time")
    }
    return runner.run(targets) { report in
        guard !json else { return }
        emit(FleetOutput.line(report, action: name, width: width))
    }
}

extension FleetTarget {
    /// The run target for an inventory host: its connection, and as recipe variables those of its
    /// variables the recipe declares, with --var over them.
    init(_ host: FleetHost, declared: Set<String>?, overrides: [String: String]) throws {
        var variables = try host.recipeArguments(declared: declared)
        for (key, value) in overrides { variables[key] = value }
        self.init(
            name: host.name, address: host.address, port: host.port, user: host.user, identityFile: host.privateKeyFile,
            sshArguments: host.sshArguments, become: host.become, becomeUser: host.becomeUser, root: host.root,
            provisionPath: host.provisionPath, variables: variables)
    }
}

/// Fleet output goes straight to the descriptor: host lines appear as hosts finish, in order with
/// everything else, whether stdout is a terminal or a pipe.
func emit(_ text: String, terminator: String = "\n") {
    FileHandle.standardOutput.write(Data((text + terminator).utf8))
}
