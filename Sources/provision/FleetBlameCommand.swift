import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionFleet

struct FleetBlameCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blame",
        abstract: "Per host, each line of a tracked file with the run, step, user and date that last set it (from STATE/fleet.git).",
        discussion: """
            Read from the fleet's copy of every host's history, as the last fleet run fetched it: hosts may be offline, and \
            edits made on a host since are not seen (provision fleet status finds those).
            """)

    @Argument(help: "Host path (absolute, or relative to the root).") var path: String
    @OptionGroup var fleet: FleetOptions

    struct Document: Encodable {
        var schema = 1
        var path: String
        var hosts: [String: BlameReport]
        var untracked: [String]
    }

    func run() throws {
        try runReporting(json: fleet.json) {
            let absolute = path.hasPrefix("/") ? path : "/" + path
            let (_, hosts) = try fleet.hosts()
            let store = try FleetStore(path: FleetState.repositoryPath(stateDirectory: fleet.stateDirectory()))
            var reports: [String: BlameReport] = [:]
            var untracked: [String] = []
            for host in hosts {
                if let report = try store.blame(host: host.name, path: absolute) { reports[host.name] = report } else { untracked.append(host.name) }
            }
            if fleet.json { return FleetOutput.printJSON(Document(path: absolute, hosts: reports, untracked: untracked)) }
            for host in hosts {
                guard let report = reports[host.name] else { continue }
                emit("\(host.name): \(absolute) as run \(report.recorded.run.map(String.init) ?? "?") recorded it (\(report.recorded.commit.prefix(10)))")
                emit(BlameCommand.render(report.lines), terminator: "")
            }
            if !untracked.isEmpty { emit("not tracked in fleet.git: \(untracked.joined(separator: ", "))") }
        }
    }
}
