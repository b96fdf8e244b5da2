import Foundation
import ProvisionCore

#if canImport(Glibc)
import Glibc
#endif

/// What a fleet command asks every host to do.
public enum FleetAction: Sendable {
    case plan
    case apply(noHandlers: Bool)
    /// Roll back, on each host, the host run a fleet run made there (hosts absent from the map
    /// are skipped).
    case rollback(runs: [String: Int], force: Bool)
    case status

    var name: String {
        switch self {
        case .plan: "plan"
        case .apply: "apply"
        case .rollback: "rollback"
        case .status: "status"
        }
    }

    var records: Bool {
        switch self {
        case .apply, .rollback: true
        case .plan, .status: false
        }
    }
}

/// `--serial`: hosts per batch, a number or a percentage of the hosts (at least 1).
public enum FleetSerial: Sendable, Equatable {
    case count(Int)
    case percent(Int)

    public init?(_ text: String) {
        if text.hasSuffix("%"), let value = Int(text.dropLast()), (1...100).contains(value) {
            self = .percent(value)
        } else if let value = Int(text), value >= 1 {
            self = .count(value)
        } else {
            return nil
        }
    }

    func size(of total: Int) -> Int {
        switch self {
        case .count(let value): max(1, value)
        case .percent(let value): max(1, total * value / 100)
        }
    }
}

public struct FleetOptions: Sendable {
    public var action: FleetAction
    /// The recipe sent to every host (plan, apply).
    public var recipe: (path: String, data: Data)?
    public var forks = 5
    public var serial: FleetSerial?
    /// Later batches stop once a batch's failed share exceeds this (Ansible's rule: exceeded, not reached).
    public var maxFailPercent: Int?
    public var connectTimeout = 10
    /// Per host, for the whole command there.
    public var runTimeout: TimeInterval = 3600
    /// The self-contained build pushed to hosts that lack this version (default: this executable).
    public var binary: String

    public init(action: FleetAction, binary: String) {
        self.action = action
        self.binary = binary
    }
}

/// One host's result: the outcome the recap counts, and the host's own JSON document.
public struct FleetHostReport: Sendable, Codable {
    public var outcome: FleetHostOutcome
    /// What provision printed there with --json (apply, plan, rollback or status).
    public var document: InventoryValue?
    /// For status: whether the host answered, and what it said (drift, pending recovery, last run).
    public var pushedBinary: String?
}

/// Runs one action across hosts: `forks` at a time, in `serial` batches, each host over its own
/// multiplexed SSH connection running the provision there on its own root (so every host keeps
/// its own history, lock and recovery), then fetches each host's history into fleet.git.
public final class FleetRunner: @unchecked Sendable {
    let options: FleetOptions
    let state: FleetState
    let store: FleetStore
    private let storeLock = NSLock()
    private let binaryHash: String
    private let binaryLock = NSLock()
    private var binaryData: Data?
    static let pushDirectory = "/var/lib/provision/bin"

    public init(options: FleetOptions, state: FleetState, store: FleetStore) throws {
        self.options = options
        self.state = state
        self.store = store
        binaryHash = try state.contentHash(of: options.binary)
    }

    /// The build's bytes, read once and only when a host needs a copy. The host checks them against
    /// the hash the remote name carries (a file changed since it was hashed is refused there).
    private func buildToPush() throws -> Data {
        try binaryLock.withLock {
            if let binaryData { return binaryData }
            guard let data = FileManager.default.contents(atPath: options.binary) else {
                throw ProvisionFleetError("cannot read the provision build to push: \(options.binary)")
            }
            binaryData = data
            return data
        }
    }

    /// Where the pushed build lives on a host: named by version and content hash, so a host runs
    /// exactly this build and a new one never overwrites a running one.
    var remoteBinary: String { "\(Self.pushDirectory)/provision-\(provisionVersion)-\(binaryHash.prefix(16))" }

    /// Runs every host; `finished` is called (serially) as each one ends. Returns the reports in
    /// the order of `targets`, and whether later batches were stopped by --max-fail-percent.
    public func run(_ targets: [FleetTarget], finished: @escaping @Sendable (FleetHostReport) -> Void) -> (reports: [FleetHostReport], stopped: Bool) {
        var reports: [String: FleetHostReport] = [:]
        let batchSize = options.serial?.size(of: targets.count) ?? max(1, targets.count)
        var stopped = false
        var index = 0
        while index < targets.count {
            let batch = Array(targets[index..<min(targets.count, index + batchSize)])
            index += batch.count
            if stopped {
                for target in batch {
                    var outcome = FleetHostOutcome(host: target.name, status: .skipped)
                    outcome.error = "not run: an earlier batch failed more than --max-fail-percent allows"
                    let report = FleetHostReport(outcome: outcome)
                    reports[target.name] = report
                    finished(report)
                }
                continue
            }
            let results = runBatch(batch, finished: finished)
            for report in results { reports[report.outcome.host] = report }
            if let limit = options.maxFailPercent {
                let failed = results.filter { $0.outcome.status == .failed || $0.outcome.status == .unreachable }.count
                if failed > 0, Double(failed) * 100 / Double(batch.count) > Double(limit) { stopped = true }
            }
        }
        return (targets.compactMap { reports[$0.name] }, stopped)
    }

    private func runBatch(_ batch: [FleetTarget], finished: @escaping @Sendable (FleetHostReport) -> Void) -> [FleetHostReport] {
        let queue = WorkQueue(batch)
        let threads = min(max(1, options.forks), batch.count)
        let group = DispatchGroup()
        for _ in 0..<threads {
            group.enter()
            let thread = Thread { [self] in
                while let target = queue.next() {
                    let report = runHost(target)
                    queue.finish(report, finished)
                }
                group.leave()
            }
            thread.stackSize = 4 << 20
            thread.start()
        }
        group.wait()
        return queue.results
    }

    // MARK: one host

    func runHost(_ target: FleetTarget) -> FleetHostReport {
        let started = Date()
        var report = FleetHostReport(outcome: FleetHostOutcome(host: target.name, status: .failed))
        let connection = SSHConnection(target: target, state: state, connectTimeout: options.connectTimeout)
        defer {
            connection.close()
            report.outcome.seconds = (Date().timeIntervalSince(started) * 100).rounded() / 100
        }
        if case .rollback(let runs, _) = options.action, runs[target.name] == nil {
            report.outcome.status = .skipped
            report.outcome.error = "that fleet run recorded no run on this host"
            return report
        }
        do {
            try connection.open()
            let binary: String
            if let installed = target.provisionPath {
                binary = installed
            } else {
                binary = remoteBinary
                if try ensureBinary(connection) { report.pushedBinary = binary }
            }
            let before = options.action.records ? try storeTip(target.name) : nil
            let result = try execute(connection, binary: binary, target: target)
            let document = try? JSONDecoder().decode(InventoryValue.self, from: result.stdout)
            report.document = document
            let succeeded: Bool
            switch options.action {
            case .status: succeeded = (result.status == 0 || result.status == 3) && document != nil
            case .plan: succeeded = (result.status == 0 || result.status == 2) && document != nil
            default: succeeded = result.status == 0 && document != nil
            }
            if succeeded {
                summarize(document!, into: &report.outcome)
            } else {
                report.outcome.status = .failed
                report.outcome.error = failureText(result, document: document)
            }
            if options.action.records {
                try fetchHistory(connection, binary: binary, target: target, before: before, into: &report.outcome)
                if !succeeded { try lastKnownState(connection, binary: binary, target: target, into: &report.outcome) }
            }
        } catch let error as Unreachable {
            report.outcome.status = .unreachable
            report.outcome.error = error.description
        } catch {
            report.outcome.status = .failed
            report.outcome.error = "\(error)"
        }
        return report
    }

    private func storeTip(_ host: String) throws -> String? {
        storeLock.lock()
        defer { storeLock.unlock() }
        return try store.tip(host: host)
    }

    /// True when the build had to be copied. The copy goes to a temporary name beside its final
    /// one, is checked against its SHA-256 there, and is renamed into place; then it must run.
    private func ensureBinary(_ connection: SSHConnection) throws -> Bool {
        let path = remoteBinary
        let probe = try connection.run(["sh", "-c", "test -x \"$1\"", "sh", path], timeout: 60)
        if probe.status == 0 { return false }
        let install = """
            set -e
            umask 022
            mkdir -p "$(dirname "$1")"
            t=$(mktemp "$(dirname "$1")/.provision-push.XXXXXX")
            trap 'rm -f "$t"' EXIT
            cat > "$t"
            set -- "$1" "$2" "$(sha256sum "$t" | cut -d' ' -f1)"
            if [ "$2" != "$3" ]; then echo "the copy's SHA-256 is $3, not $2" >&2; exit 98; fi
            chmod 0755 "$t"
            mv -f "$t" "$1"
            trap - EXIT
            "$1" --version >/dev/null
            """
        let result = try connection.run(["sh", "-c", install, "sh", path, binaryHash], input: try buildToPush(), timeout: 600)
        guard result.status == 0 else {
            throw ProvisionFleetError("could not install provision at \(path): \(result.stderrTail(3).nonEmpty ?? "exit \(result.status)")")
        }
        return true
    }

    private func execute(_ connection: SSHConnection, binary: String, target: FleetTarget) throws -> Subprocess.Result {
        let variables = target.variables
        let varArguments = variables.keys.sorted().flatMap { ["--var", "\($0)=\(variables[$0]!)"] }
        switch options.action {
        case .status:
            return try connection.run([binary, "status", "--root", target.root, "--json"], timeout: options.runTimeout)
        case .rollback(let runs, let force):
            return try connection.run(
                [binary, "rollback", String(runs[target.name]!), "--root", target.root, "--json"] + (force ? ["--force"] : []),
                timeout: options.runTimeout)
        case .plan, .apply:
            guard let recipe = options.recipe else { throw ProvisionFleetError("no recipe") }
            var arguments = [options.action.name, "@RECIPE@", "--root", target.root, "--json"] + varArguments
            if case .apply(let noHandlers) = options.action, noHandlers { arguments.append("--no-handlers") }
            if case .plan = options.action { arguments.append("--detailed-exitcode") }
            // The recipe travels on standard input into a private temporary directory, keeping its
            // file name (run records name it).
            let script = """
                d=$(mktemp -d "${TMPDIR:-/tmp}/provision-fleet.XXXXXX") || exit 125
                trap 'rm -rf "$d"' EXIT
                r="$d/$1"; b=$2; shift 2
                cat > "$r" || exit 125
                for a do shift; [ "$a" = @RECIPE@ ] && a=$r; set -- "$@" "$a"; done
                "$b" "$@"
                """
            let name = (recipe.path as NSString).lastPathComponent
            return try connection.run(["sh", "-c", script, "sh", name, binary] + arguments, input: recipe.data, timeout: options.runTimeout)
        }
    }

    private func summarize(_ document: InventoryValue, into outcome: inout FleetHostOutcome) {
        let steps = document["steps"]?.array ?? []
        outcome.stepsOK = steps.filter { ["ok", "changed"].contains($0["status"]?.string ?? "") }.count
        outcome.stepsChanged = steps.filter { $0["status"]?.string == "changed" }.count
        outcome.changedFiles = document["files"]?.array?.count ?? 0
        outcome.rebootRequired = document["reboot_required"]?.bool ?? false
        outcome.run = document["run"]?.int
        outcome.commit = document["commit"]?.string
        switch options.action {
        case .status:
            let clean = (document["drift"]?.array?.isEmpty ?? true) && (document["recovery"]?.isNull ?? true)
            outcome.status = clean ? .ok : .changed
            outcome.recoveryPending = !(document["recovery"]?.isNull ?? true)
            outcome.changedFiles = document["drift"]?.array?.count ?? 0
        case .rollback:
            outcome.status = outcome.changedFiles > 0 ? .changed : .ok
        case .plan, .apply:
            let changed = (document["changed"]?.int ?? 0) > 0 || outcome.stepsChanged > 0
            outcome.status = changed ? .changed : .ok
        }
    }

    private func failureText(_ result: Subprocess.Result, document: InventoryValue?) -> String {
        if result.timedOut { return "no answer within \(Int(options.runTimeout)) s (stopped); the run may have been cut short there" }
        if let message = document?["error"]?["message"]?.string ?? document?["error"]?.string { return message }
        let tail = result.stderrTail(4)
        let status = result.status > 128 && result.status < 160 ? "killed by signal \(result.status - 128)" : "exit \(result.status)"
        return tail.isEmpty ? "provision ended with \(status)" : "\(tail) (\(status))"
    }

    /// The host's history into fleet.git; what the fleet run made there is the run the new tip
    /// records, if the tip moved.
    private func fetchHistory(_ connection: SSHConnection, binary: String, target: FleetTarget, before: String?, into outcome: inout FleetHostOutcome)
        throws
    {
        let haves = before.map { ["--have", $0] } ?? []
        let result = try connection.run([binary, "history", "bundle", "--root", target.root] + haves, timeout: options.runTimeout)
        guard result.status == 0 else {
            if String(decoding: result.stderr, as: UTF8.self).contains("no history") { return }
            let note = "its history could not be fetched: \(result.stderrTail(2))"
            outcome.error = outcome.error.map { $0 + "; " + note } ?? note
            return
        }
        storeLock.lock()
        defer { storeLock.unlock() }
        try store.store(bundle: result.stdout, host: target.name)
        // Recorded: the host's newest commit is a run this fleet run made (a killed run may have
        // left only its pre-state commit, which is not a run).
        let tip = try store.tip(host: target.name)
        let newest = try store.runs(host: target.name, limit: 1).first
        outcome.recorded = tip != before && newest?.commit == tip
        if outcome.recorded == true, outcome.run == nil, let newest {
            outcome.run = newest.run
            outcome.commit = newest.commit
        }
    }

    /// After a failure: is a crash recovery pending there (the next apply or rollback does it)?
    private func lastKnownState(_ connection: SSHConnection, binary: String, target: FleetTarget, into outcome: inout FleetHostOutcome) throws {
        let result = try connection.run([binary, "status", "--root", target.root, "--json"], timeout: 120)
        guard let document = try? JSONDecoder().decode(InventoryValue.self, from: result.stdout) else { return }
        outcome.recoveryPending = !(document["recovery"]?.isNull ?? true)
    }
}

/// The hosts of one batch, handed out to worker threads; results and the finished callback under
/// one lock, so lines never interleave.
private final class WorkQueue: @unchecked Sendable {
    private var pending: [FleetTarget]
    private(set) var results: [FleetHostReport] = []
    private let lock = NSLock()

    init(_ targets: [FleetTarget]) { pending = targets.reversed() }

    func next() -> FleetTarget? { lock.withLock { pending.popLast() } }

    func finish(_ report: FleetHostReport, _ finished: (FleetHostReport) -> Void) {
        lock.withLock {
            results.append(report)
            finished(report)
        }
    }
}
