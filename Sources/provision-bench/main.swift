// Benchmark (not a test): apply, no-op re-run, plan and rollback on copies of the Arch snapshot
// with a recipe touching 8 files, then the same with 10,000 runs already in history.
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

/// Grows a root's history with apply + rollback pairs.
func fill(_ engine: Engine, runs: Int) throws -> Double {
    try milliseconds {
        for _ in 0..<(runs / 2) {
            _ = try engine.apply(recipe)
            _ = try engine.rollback()
        }
    }
}

// Two roots, one with a short history and one with a long one, measured alternately so that
// whatever else the machine (and its file system) is doing weighs on both alike.
let longRoot = freshRoot()
let fillTime = try fill(engine(longRoot), runs: historyRuns)
let shortRoot = freshRoot()
_ = try fill(engine(shortRoot), runs: 100)
var short = Figures()
var long = Figures()
for _ in 0..<iterations {
    try measure(shortRoot, &short)
    try measure(longRoot, &long)
}
let objectFiles = (try? FileManager.default.subpathsOfDirectory(atPath: longRoot + "/var/lib/provision/history.git/objects").count) ?? 0
shell(["rm", "-rf", longRoot, shortRoot])

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
