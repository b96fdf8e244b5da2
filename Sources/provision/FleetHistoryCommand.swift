import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionFleet

struct FleetHistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Fleet runs, or with PATH each host's runs that touched it, from STATE/fleet.git (hosts may be offline).")

    @Argument(help: "A host path (/etc/default/grub): list, per host, the runs that changed it.") var path: String?
    @OptionGroup var fleet: FleetOptions
    @Option(name: .customShort("n"), help: "At most this many entries (per host with PATH).") var count: Int?

    struct Document: Encodable {
        var schema = 1
        var fleetRuns: [FleetRunRecord]?
        var hostRuns: [FleetHostRun]?
    }

    func run() throws {
        try runReporting(json: fleet.json) {
            let (_, hosts) = try fleet.hosts()
            let names = Set(hosts.map(\.name))
            let store = try FleetStore(path: FleetState.repositoryPath(stateDirectory: fleet.stateDirectory()))
            if let path {
                let absolute = path.hasPrefix("/") ? path : "/" + path
                var runs: [FleetHostRun] = []
                for host in try store.hosts() where names.contains(host) {
                    runs += try store.runs(host: host, path: absolute, limit: count ?? .max)
                }
                if fleet.json { return FleetOutput.printJSON(Document(hostRuns: runs)) }
                if runs.isEmpty { emit("no host's history in \(store.path) touched \(absolute)") }
                for run in runs {
                    emit("\(run.host)  run \(run.run)  \(run.action)  \(ISO8601DateFormatter().string(from: run.time))  by \(run.user)  \(run.commit.prefix(10))  \(run.summary)")
                }
                return
            }
            var records = try store.records(limit: count ?? .max)
            for index in records.indices { records[index].hosts.removeAll { !names.contains($0.host) } }
            if fleet.json { return FleetOutput.printJSON(Document(fleetRuns: records)) }
            if records.isEmpty { emit("\(store.path) records no fleet run yet") }
            for record in records {
                var counts: [String: Int] = [:]
                for host in record.hosts { counts[host.status.rawValue, default: 0] += 1 }
                let summary = counts.keys.sorted().map { "\(counts[$0]!) \($0)" }.joined(separator: ", ")
                var title = "fleet run \(record.number)  \(ISO8601DateFormatter().string(from: record.finished))  \(record.action)"
                if let recipe = record.recipe { title += " \((recipe as NSString).lastPathComponent)" }
                if let undid = record.undid { title += " (of fleet run \(undid))" }
                emit("\(title)  by \(record.user)@\(record.controller)  \(record.hosts.count) host(s): \(summary)")
                for host in record.hosts {
                    emit("    \(host.host): \(host.status.rawValue)\(host.run.map { " (run \($0))" } ?? "")\(host.error.map { ": \($0.split(separator: "\n").first ?? "")" } ?? "")")
                }
            }
        }
    }
}
