// Benchmark (not a test): apply, no-op re-run, plan and rollback on copies of the Arch snapshot
// with a recipe touching 8 files, then the same with 10,000 runs already in history; the audit
// queries (history -n 20, diff, blame, status) at 100 and 10,000 runs; history size and packing.
// Run with scripts/bench.sh (release build); prints medians in milliseconds.
import Foundation
import ProvisionCore
import ProvisionPlugins

#if canImport(Glibc)
import Glibc
#endif

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
let iterations = Int(ProcessInfo.processInfo.environment["BENCH_ITERATIONS"] ?? "") ?? 30
let historyRuns = Int(ProcessInfo.processInfo.environment["BENCH_HISTORY_RUNS"] ?? "") ?? 10_000

let recipeText = """
    name: bench
    vars:
      ids: "10de:1b80,10de:10f0"
    steps:
      - {id: modprobe, uses: file.content, with: {path: /etc/modprobe.d/vfio.conf, content: "options vfio-pci ids=${ids}\\nsoftdep nvidia pre: vfio-pci\\n"}}
      - {id: modules-load, uses: file.content, with: {path: /etc/modules-load.d/vfio.conf, content: "vfio-pci\\n"}}
      - {id: mkinitcpio, uses: file.line, with: {path: /etc/mkinitcpio.conf, match: "^MODULES=", line: "MODULES=(vfio_pci vfio vfio_iommu_type1)", notify: [mkinitcpio, -P]}}
      - {id: grub, uses: file.line, with: {path: /etc/default/grub, match: "^GRUB_CMDLINE_LINUX_DEFAULT=", line: "GRUB_CMDLINE_LINUX_DEFAULT=\\"quiet intel_iommu=on iommu=pt\\"", notify: [grub-mkconfig, -o, /boot/grub/grub.cfg]}}
      - {id: qemu-conf, uses: file.block, with: {path: /etc/libvirt/qemu.conf, block: "user = \\"root\\"\\ngroup = \\"input\\"\\n"}}
      - {id: xorg, uses: file.absent, with: {path: /etc/X11/xorg.conf.d/20-nvidia.conf}}
      - {id: sysctl, uses: file.content, with: {path: /etc/sysctl.d/80-hugepages.conf, content: "vm.nr_hugepages = 4096\\n", mode: "0644"}}
      - {id: limits, uses: file.content, with: {path: /etc/security/limits.d/95-vfio.conf, content: "@input - memlock unlimited\\n"}}
    """

func shell(_ argv: [String]) {
    let result = try! ProcessRunner.run(argv)
    precondition(result.status == 0, "\(argv): \(result.output)")
}

func freshRoot() -> String {
    let path = "/tmp/provision-bench-\(UUID().uuidString.prefix(8))"
    shell(["cp", "-a", packageRoot + "/snapshots/arch", path])
    // The copy's own metadata must not be charged to the first fsync of the run.
    sync()
    return path
}

func milliseconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000_000
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func engine(_ root: String) -> Engine {
    let engine = try! Engine(root: try! HostRoot(root), registry: builtinRegistry)
    engine.runHandlers = false
    return engine
}

let recipe = try Recipe.parse(recipeText, file: "bench.yaml", registry: builtinRegistry)

// BENCH_FILL_ONLY=DIR: a copy of the snapshot at DIR with BENCH_HISTORY_RUNS runs of the bench
// recipe in its history, for timing the CLI on a long history (scripts/bench.sh); nothing else.
if let directory = ProcessInfo.processInfo.environment["BENCH_FILL_ONLY"] {
    shell(["cp", "-a", packageRoot + "/snapshots/arch", directory])
    let engine = try! Engine(root: try! HostRoot(directory), registry: builtinRegistry)
    engine.runHandlers = false
    for index in 0..<historyRuns { _ = index % 2 == 0 ? try engine.apply(recipe) : try engine.rollback() }
    exit(0)
}

/// BENCH_COMPARE=A,B: apply, no-op and rollback timed alternately on two existing roots (medians).
if let roots = ProcessInfo.processInfo.environment["BENCH_COMPARE"]?.split(separator: ",").map(String.init), roots.count == 2 {
    var times: [[String: [Double]]] = [[:], [:]]
    for _ in 0..<iterations {
        for (index, root) in roots.enumerated() {
            let engine = try! Engine(root: try! HostRoot(root), registry: builtinRegistry)
            engine.runHandlers = false
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try engine.apply(recipe)
            let applied = DispatchTime.now().uptimeNanoseconds
            _ = try engine.apply(recipe)
            let noop = DispatchTime.now().uptimeNanoseconds
            _ = try engine.rollback()
            let end = DispatchTime.now().uptimeNanoseconds
            times[index]["apply", default: []].append(Double(applied - start) / 1e6)
            times[index]["no-op", default: []].append(Double(noop - applied) / 1e6)
            times[index]["rollback", default: []].append(Double(end - noop) / 1e6)
        }
    }
    for (index, root) in roots.enumerated() {
        let values = ["apply", "no-op", "rollback"].map { name -> String in
            let sorted = times[index][name]!.sorted()
            return String(format: "%@ %.2f ms", name, sorted[sorted.count / 2])
        }
        print("\(root): \(values.joined(separator: ", "))")
    }
    exit(0)
}

struct Figures {
    var apply: [Double] = [], noop: [Double] = [], plan: [Double] = [], rollback: [Double] = []
}

/// Times the four operations on `root`, whose history may already be long.
func measure(_ root: String, _ figures: inout Figures) throws {
    let engine = engine(root)
    figures.plan.append(try milliseconds { _ = try engine.plan(recipe) })
    var counts: [Int] = []
    figures.apply.append(try milliseconds { counts.append(try engine.apply(recipe).changes.count) })
    figures.noop.append(try milliseconds { counts.append(try engine.apply(recipe).changes.count) })
    figures.rollback.append(try milliseconds { counts.append(try engine.rollback().changes.count) })
    precondition(counts == [8, 0, 8], "unexpected change counts \(counts)")
}

print("provision benchmark: recipe touching 8 files on a copy of snapshots/arch, \(iterations) iterations, medians")
var fresh = Figures()
for _ in 0..<iterations {
    let root = freshRoot()
    try measure(root, &fresh)
    shell(["rm", "-rf", root])
}

/// Grows a root's history with apply + rollback pairs; returns its time and every automatic
/// packing on the way (after which run, that run's milliseconds, what it packed).
func fill(_ engine: Engine, runs: Int) throws -> (ms: Double, packs: [(run: Int, ms: Double, report: PackReport)]) {
    var packs: [(run: Int, ms: Double, report: PackReport)] = []
    let total = try milliseconds {
        for index in 0..<runs {
            var report: RunReport?
            let time = try milliseconds { report = index % 2 == 0 ? try engine.apply(recipe) : try engine.rollback() }
            if let report, let packed = report.packed { packs.append((report.record.run, time, packed)) }
        }
    }
    return (total, packs)
}

func historyPath(_ root: String) -> String { root + "/var/lib/provision/history.git" }

func setGitConfig(_ root: String, _ key: String, _ value: String) { shell(["git", "--git-dir", historyPath(root), "config", key, value]) }

/// Disk use of a history (allocated blocks, as du says), its loose objects and packs.
func describeHistory(_ root: String) -> String {
    let du = (try? ProcessRunner.run(["du", "-sk", historyPath(root)]).output.split(separator: "\t").first).map(String.init) ?? "?"
    let counts = (try? ProcessRunner.run(["git", "--git-dir", historyPath(root), "count-objects", "-v"]).output) ?? ""
    func field(_ name: String) -> String {
        counts.split(separator: "\n").first { $0.hasPrefix(name + ": ") }.map { String($0.dropFirst(name.count + 2)) } ?? "?"
    }
    let refs = (try? FileManager.default.subpathsOfDirectory(atPath: historyPath(root) + "/refs/tags/run").count) ?? 0
    return "\(du) KiB on disk, \(field("count")) loose objects, \(field("in-pack")) packed in \(field("packs")) pack(s), \(refs) loose run tags"
}

// Two roots, one with a short history and one with a long one, measured alternately so that
// whatever else the machine (and its file system) is doing weighs on both alike.
let longRoot = freshRoot()
let (fillTime, autoPacks) = try fill(engine(longRoot), runs: historyRuns)
let shortRoot = freshRoot()
_ = try fill(engine(shortRoot), runs: 100)

// The audit queries on both roots. blame's first call walks history (cold); later ones start
// from its cache (warm).
struct AuditFigures {
    var history: [Double] = [], diff: [Double] = [], blame: [Double] = [], status: [Double] = [], coldBlame: Double = 0
}
func measureAudit(_ root: String, _ figures: inout AuditFigures) throws {
    let engine = engine(root)
    var counts: [Int] = []
    figures.history.append(try milliseconds { counts.append(try engine.history(HistoryFilter(limit: 20)).count) })
    figures.diff.append(try milliseconds { counts.append(try engine.diff("50").files.count) })
    figures.blame.append(try milliseconds { counts.append(try engine.blame("/etc/default/grub").lines.count) })
    figures.status.append(try milliseconds { counts.append(try engine.status().status.drift.count) })
    precondition(counts[0] == 20 && counts[1] > 0 && counts[2] > 0 && counts[3] == 0, "unexpected audit results \(counts)")
}
var shortAudit = AuditFigures(), longAudit = AuditFigures()
shortAudit.coldBlame = try milliseconds { _ = try engine(shortRoot).blame("/etc/default/grub") }
longAudit.coldBlame = try milliseconds { _ = try engine(longRoot).blame("/etc/default/grub") }
for _ in 0..<iterations {
    try measureAudit(shortRoot, &shortAudit)
    try measureAudit(longRoot, &longAudit)
}
var short = Figures()
var long = Figures()
for _ in 0..<iterations {
    try measure(shortRoot, &short)
    try measure(longRoot, &long)
}
let objectFiles = (try? FileManager.default.subpathsOfDirectory(atPath: longRoot + "/var/lib/provision/history.git/objects").count) ?? 0
let longBeforeGC = describeHistory(longRoot)
let gcReport = try engine(longRoot).gc()
let longAfterGC = describeHistory(longRoot)

// The same number of runs with automatic packing off: what history grew to before this issue.
let unpackedRoot = freshRoot()
_ = try engine(unpackedRoot).apply(recipe)
setGitConfig(unpackedRoot, "gc.auto", "0")
_ = try engine(unpackedRoot).rollback()
_ = try fill(engine(unpackedRoot), runs: historyRuns - 2)
let unpackedBefore = describeHistory(unpackedRoot)
let unpackedGC = try milliseconds { _ = try engine(unpackedRoot).gc() }
let unpackedAfter = describeHistory(unpackedRoot)
shell(["rm", "-rf", longRoot, shortRoot, unpackedRoot])

func ms(_ values: [Double]) -> String { String(format: "%8.2f ms", median(values)) }
func row(_ name: String, _ first: [Double], _ small: [Double], _ large: [Double], goal: Double) -> String {
    let growth = (median(large) - median(small)) / median(small) * 100
    return name.padding(toLength: 16, withPad: " ", startingAt: 0) + ms(first) + "   " + ms(small) + "   " + ms(large)
        + String(format: "   %+6.1f %%   goal <= %.0f ms", growth, goal)
}
print("operation        fresh root      100 runs   \(historyRuns) runs   growth")
print(row("apply", fresh.apply, short.apply, long.apply, goal: 20))
print(row("no-op re-run", fresh.noop, short.noop, long.noop, goal: 10))
print(row("plan", fresh.plan, short.plan, long.plan, goal: 20))
print(row("rollback", fresh.rollback, short.rollback, long.rollback, goal: 20))
var usage = rusage()
getrusage(RUSAGE_SELF.rawValue, &usage)
print(String(format: "fresh root: the first apply creates the history repository. Filling history: %.2f ms per run; %d files under objects/",
    fillTime / Double(historyRuns), objectFiles))
print("peak RSS: \(usage.ru_maxrss / 1024) MiB")

func auditRow(_ name: String, _ small: [Double], _ large: [Double]) -> String {
    let ratio = median(large) / median(small)
    return name.padding(toLength: 16, withPad: " ", startingAt: 0) + ms(small) + "   " + ms(large) + String(format: "   x%.2f   goal <= x2", ratio)
}
print("\naudit query      100 runs   \(historyRuns) runs   ratio")
print(auditRow("history -n 20", shortAudit.history, longAudit.history))
print(auditRow("diff 50", shortAudit.diff, longAudit.diff))
print(auditRow("blame (warm)", shortAudit.blame, longAudit.blame))
print(auditRow("status", shortAudit.status, longAudit.status))
print(String(format: "blame, first call (walks history back to the file's first commit): %.2f ms at 100 runs, %.2f ms at %d runs",
    shortAudit.coldBlame, longAudit.coldBlame, historyRuns))
print("\nautomatic packing while filling \(historyRuns) runs (gc.auto 6700): \(autoPacks.count) time(s)")
for pack in autoPacks {
    print(String(format: "  after run %d: %d loose objects into one pack, that run took %.0f ms in all", pack.run, pack.report.looseBefore, pack.ms))
}
print("history after \(historyRuns) runs with automatic packing: \(longBeforeGC)")
print("after provision history gc: \(longAfterGC) (\(gcReport.bytesBefore / 1024) KiB -> \(gcReport.bytesAfter / 1024) KiB)")
print("history after \(historyRuns) runs without packing (gc.auto 0): \(unpackedBefore)")
print(String(format: "after provision history gc (%.0f ms): %@", unpackedGC, unpackedAfter))
