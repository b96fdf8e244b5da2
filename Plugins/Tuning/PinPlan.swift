import Foundation

/// Which host CPUs a guest's vCPUs are pinned to, and which the host keeps. Whole cores only (a
/// core's SMT siblings go to the same side), taken from the GPU's NUMA node, never from a hybrid
/// part's efficient cores, and from one L3 group where they fit, so the guest's threads share a
/// cache and never the host's.
public struct PinPlan: Equatable, Sendable {
    /// Host CPU of each vCPU (index = vCPU): a core's threads on consecutive vCPUs.
    public var vcpuPins: [Int]
    /// Everything the guest does not get: the emulator and I/O threads run there, and the host's
    /// own processes while the guest runs (isolate: hook).
    public var hostCPUs: [Int]
    public var sockets = 1
    public var dies: Int
    public var cores: Int
    public var threads: Int
    /// The GPU's node the guest's cores are on, when the host has several.
    public var node: Int?

    /// A request the host cannot satisfy, said in the option's terms.
    public struct Refusal: Error, Equatable {
        public var option: String
        public var message: String
    }

    /// - Parameters:
    ///   - vcpus: nil for auto: on a CPU with several L3 groups on the node (Zen CCDs), the groups
    ///     that hold none of the host's cores; otherwise every core the host does not keep.
    ///   - hostCores: how many cores the host keeps at least (with their siblings).
    ///   - gpuNode: the NUMA node of the GPU's slot, if known.
    public static func choose(_ topology: CPUTopology, vcpus: Int?, hostCores: Int, gpuNode: Int?) throws -> PinPlan {
        let all = topology.cores
        guard hostCores >= 1 else { throw Refusal(option: "host_cpus", message: "host_cpus must be at least 1: the host needs a core") }
        guard hostCores < all.count else {
            throw Refusal(option: "host_cpus", message: "host_cpus \(hostCores) leaves none of this host's \(all.count) cores for the guest")
        }
        let node = gpuNode.flatMap { node in topology.nodes.count > 1 && all.contains { $0.node == node } ? node : nil }
        let preferred = all.filter { (node == nil || $0.node == node) && !$0.efficient }
        let others = all.filter { !preferred.contains($0) }
        // The host keeps the cores the guest would not get anyway (efficient cores, other nodes);
        // only when those are too few does it keep some of the preferred ones, the lowest first.
        let reserved = Array(preferred.prefix(max(0, hostCores - others.count)))
        let pool = preferred.filter { !reserved.contains($0) }
        guard !pool.isEmpty else {
            throw Refusal(option: "host_cpus", message: "host_cpus \(hostCores) leaves no \(topology.hybrid ? "P-" : "")core for the guest")
        }
        let hostL3 = Set((others + reserved).map(\.l3))
        let threadsPerCore = pool.map(\.threads.count).max()!

        var chosen: [CPUTopology.Core]
        if let vcpus {
            guard vcpus >= 1 else { throw Refusal(option: "vcpus", message: "vcpus must be at least 1") }
            guard vcpus % threadsPerCore == 0 else {
                throw Refusal(
                    option: "vcpus",
                    message: "vcpus must be a multiple of \(threadsPerCore): a core's \(threadsPerCore) threads are pinned together (whole cores)")
            }
            let wanted = vcpus / threadsPerCore
            guard wanted <= pool.count else {
                let place = node.map { "on the GPU's NUMA node \($0)" } ?? (topology.hybrid ? "among the P-cores" : "on this host")
                throw Refusal(
                    option: "vcpus",
                    message: "vcpus \(vcpus) needs \(wanted) cores, but \(place) the guest can have \(pool.count) "
                        + "(\(pool.count * threadsPerCore) vCPUs) while the host keeps \(hostCores)")
            }
            // Groups the host does not use first, then by their first CPU.
            let groups = Dictionary(grouping: pool, by: \.l3).values.map { $0.sorted { $0.first < $1.first } }
                .sorted { (hostL3.contains($0[0].l3) ? 1 : 0, $0[0].first) < (hostL3.contains($1[0].l3) ? 1 : 0, $1[0].first) }
            if let fitting = groups.first(where: { $0.count >= wanted }) {
                chosen = Array(fitting.prefix(wanted))
            } else {
                chosen = Array(groups.joined().prefix(wanted))
            }
        } else {
            let apart = pool.filter { !hostL3.contains($0.l3) }
            chosen = apart.isEmpty ? pool : apart
        }
        chosen.sort { $0.first < $1.first }

        let pins = chosen.flatMap(\.threads)
        let guest = Set(pins)
        let sameThreads = chosen.allSatisfy { $0.threads.count == chosen[0].threads.count }
        let perGroup = Dictionary(grouping: chosen, by: \.l3).values.map(\.count)
        // The guest sees one die per L3 group it spans when they split evenly (QEMU gives each die
        // its own L3), else one die.
        let dies = perGroup.count > 1 && Set(perGroup).count == 1 && sameThreads ? perGroup.count : 1
        let threads = sameThreads ? chosen[0].threads.count : 1
        return PinPlan(
            vcpuPins: pins, hostCPUs: topology.cpus.filter { !guest.contains($0) }, dies: dies, cores: pins.count / threads / dies,
            threads: threads, node: node)
    }
}
