import Foundation
import ProvisionPluginAPI

/// The kernel's CPU list format ("0-5,12-17"), as sysfs writes it and as libvirt and systemd read it.
public enum CPUList {
    /// nil for anything that is not a list of numbers and ranges.
    public static func parse(_ text: String) -> [Int]? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return [] }
        var result: [Int] = []
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let high = Int(bounds.last!), low >= 0, low <= high,
                high < 65_536
            else { return nil }
            result += Array(low...high)
        }
        return Array(Set(result)).sorted()
    }

    /// Ascending, runs of two or more as a-b (what libvirt writes back, so a re-run sees its own text).
    public static func format(_ cpus: [Int]) -> String {
        var runs: [(Int, Int)] = []
        for cpu in Set(cpus).sorted() {
            if let last = runs.last, last.1 == cpu - 1 { runs[runs.count - 1].1 = cpu } else { runs.append((cpu, cpu)) }
        }
        return runs.map { $0.0 == $0.1 ? "\($0.0)" : "\($0.0)-\($0.1)" }.joined(separator: ",")
    }
}

/// The host's CPUs as the kernel describes them under ROOT/sys/devices/system: cores (a core's
/// SMT siblings from `thread_siblings_list`), packages and dies, the L3 cache each core shares
/// (a Zen CCD, or a whole Intel package), NUMA nodes, and on hybrid Intel parts which cores are the
/// efficient ones (the `cpu_atom` PMU lists them).
public struct CPUTopology: Sendable {
    public struct Core: Sendable, Hashable {
        /// Logical CPUs, ascending.
        public var threads: [Int]
        public var package: Int
        public var die: Int
        public var coreID: Int
        public var node: Int
        /// Index into `l3Groups`.
        public var l3: Int
        public var efficient: Bool

        public var first: Int { threads[0] }
    }

    /// Sorted by their first logical CPU.
    public var cores: [Core]
    /// The CPU lists sharing one L3 cache, in the order of their first CPU.
    public var l3Groups: [[Int]]
    public var cpus: [Int] { cores.flatMap(\.threads).sorted() }
    public var nodes: [Int] { Array(Set(cores.map(\.node))).sorted() }
    public var hybrid: Bool { cores.contains(where: \.efficient) }

    static let base = "/sys/devices/system/cpu"

    public static func read(_ host: HostView) throws -> CPUTopology {
        let online: [Int]
        if let text = try host.text("\(base)/online") {
            guard let list = CPUList.parse(text) else { throw malformed(host, "\(base)/online", "a CPU list") }
            online = list
        } else {
            online = host.list(base).compactMap { $0.hasPrefix("cpu") ? Int($0.dropFirst(3)) : nil }.sorted()
        }
        guard !online.isEmpty, host.isDirectory("\(base)/cpu\(online[0])/topology") else {
            throw ProvisionError(
                .notFound,
                "no CPU topology in the root (\(base)/cpu*/topology): run on the host itself, or give the snapshot its sys/devices/system")
        }
        let nodeOf = try nodes(host)
        let efficient = try host.text("/sys/devices/cpu_atom/cpus").map { text -> Set<Int> in
            guard let list = CPUList.parse(text) else { throw malformed(host, "/sys/devices/cpu_atom/cpus", "a CPU list") }
            return Set(list)
        } ?? []

        var cores: [String: Core] = [:]
        var l3Lists: [String: [Int]] = [:]
        var l3Of: [String: String] = [:]
        for cpu in online {
            let directory = "\(base)/cpu\(cpu)"
            func number(_ name: String, required: Bool = true) throws -> Int {
                let path = "\(directory)/topology/\(name)"
                guard let text = try host.text(path) else {
                    if required { throw ProvisionError(.notFound, "\(path) is missing in the root") }
                    return 0
                }
                guard let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw malformed(host, path, "a number") }
                return value
            }
            let siblingsPath = "\(directory)/topology/thread_siblings_list"
            guard let siblingsText = try host.text(siblingsPath) ?? host.text("\(directory)/topology/core_cpus_list") else {
                throw ProvisionError(.notFound, "\(siblingsPath) is missing in the root")
            }
            guard let siblings = CPUList.parse(siblingsText), siblings.contains(cpu) else {
                throw malformed(host, siblingsPath, "a CPU list holding cpu\(cpu)")
            }
            let key = CPUList.format(siblings)
            let l3 = try l3List(host, directory) ?? []
            l3Lists[CPUList.format(l3)] = l3
            if cores[key] == nil {
                cores[key] = Core(
                    threads: siblings.filter(online.contains), package: try number("physical_package_id"), die: try number("die_id", required: false),
                    coreID: try number("core_id"), node: nodeOf[cpu] ?? 0, l3: 0, efficient: efficient.contains(cpu))
                l3Of[key] = CPUList.format(l3)
            }
        }
        // A core without an L3 of its own shares its package's.
        var groups = l3Lists.filter { !$0.value.isEmpty }.values.sorted { $0[0] < $1[0] }
        var result: [Core] = []
        for (key, var core) in cores {
            if let index = groups.firstIndex(where: { CPUList.format($0) == l3Of[key] }) {
                core.l3 = index
            } else {
                let package = cores.values.filter { $0.package == core.package }.flatMap(\.threads).sorted()
                if let index = groups.firstIndex(of: package) { core.l3 = index } else {
                    groups.append(package)
                    core.l3 = groups.count - 1
                }
            }
            result.append(core)
        }
        return CPUTopology(cores: result.sorted { $0.first < $1.first }, l3Groups: groups)
    }

    /// The CPUs sharing this CPU's L3 (the cache index whose level is 3), nil when it has none.
    static func l3List(_ host: HostView, _ directory: String) throws -> [Int]? {
        for index in host.list("\(directory)/cache").filter({ $0.hasPrefix("index") }).sorted() {
            let path = "\(directory)/cache/\(index)"
            guard try host.text("\(path)/level")?.trimmingCharacters(in: .whitespacesAndNewlines) == "3" else { continue }
            guard let text = try host.text("\(path)/shared_cpu_list"), let list = CPUList.parse(text) else {
                throw malformed(host, "\(path)/shared_cpu_list", "a CPU list")
            }
            return list
        }
        return nil
    }

    /// CPU -> NUMA node, from each node's cpulist (no node directories: one node, 0).
    static func nodes(_ host: HostView) throws -> [Int: Int] {
        var result: [Int: Int] = [:]
        for entry in host.list("/sys/devices/system/node") where entry.hasPrefix("node") {
            guard let node = Int(entry.dropFirst(4)) else { continue }
            let path = "/sys/devices/system/node/\(entry)/cpulist"
            guard let text = try host.text(path) else { continue }
            guard let list = CPUList.parse(text) else { throw malformed(host, path, "a CPU list") }
            for cpu in list { result[cpu] = node }
        }
        return result
    }

    /// The NUMA node of a PCI device's slot; nil when the firmware gives none (-1) or the root does
    /// not say.
    public static func numaNode(ofPCI address: String, _ host: HostView) throws -> Int? {
        let path = "/sys/bus/pci/devices/\(address)/numa_node"
        guard let text = try host.text(path) else { return nil }
        guard let node = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw malformed(host, path, "a number") }
        return node >= 0 ? node : nil
    }

    static func malformed(_ host: HostView, _ path: String, _ expected: String) -> ProvisionError {
        ProvisionError(.invalidInput, "not \(expected)", at: SourceLocation(file: host.realPath(path), line: 1, column: 1))
    }
}
