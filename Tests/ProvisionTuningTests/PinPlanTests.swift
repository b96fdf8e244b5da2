import Foundation
import ProvisionCore
import ProvisionTestSupport
import ProvisionTuning
import Testing

/// The five machines' sysfs layouts (Fixtures/machines, written by scripts/make-sysfs-snapshot.py)
/// read as topologies, and the cores chosen on each checked against the sets a person would pick.
@Suite struct PinPlanTests {
    struct Case: CustomStringConvertible, Sendable {
        var machine: String
        var vcpus: Int?
        var hostCores = 1
        /// Host CPU of each vCPU.
        var pins: String
        var host: String
        var topology: (dies: Int, cores: Int, threads: Int)
        var node: Int?
        var description: String { "\(machine) vcpus \(vcpus.map(String.init) ?? "auto") host_cpus \(hostCores)" }
    }

    static let cases: [Case] = [
        // One L3: the host keeps core 0 and its sibling (0,6), the guest the other five cores.
        Case(machine: "intel-6c12t", vcpus: nil, pins: "1,7,2,8,3,9,4,10,5,11", host: "0,6", topology: (1, 5, 2)),
        Case(machine: "intel-6c12t", vcpus: 8, pins: "1,7,2,8,3,9,4,10", host: "0,5-6,11", topology: (1, 4, 2)),
        Case(machine: "intel-6c12t", vcpus: 6, hostCores: 2, pins: "2,8,3,9,4,10", host: "0-1,5-7,11", topology: (1, 3, 2)),
        // Two CCDs: the host's core 0 is on the first, so the guest gets the whole second one.
        Case(machine: "zen3-16c-2ccd", vcpus: nil, pins: "8,24,9,25,10,26,11,27,12,28,13,29,14,30,15,31", host: "0-7,16-23", topology: (1, 8, 2)),
        Case(machine: "zen3-16c-2ccd", vcpus: 8, pins: "8,24,9,25,10,26,11,27", host: "0-7,12-23,28-31", topology: (1, 4, 2)),
        // Twelve cores do not fit one CCD: all of the second, then the first's lowest free ones.
        Case(
            machine: "zen3-16c-2ccd", vcpus: 24, pins: "1,17,2,18,3,19,4,20,8,24,9,25,10,26,11,27,12,28,13,29,14,30,15,31",
            host: "0,5-7,16,21-23", topology: (1, 12, 2)),
        // Fourteen cores: the second CCD's eight and the first's six free ones; uneven, so one die.
        Case(
            machine: "zen3-16c-2ccd", vcpus: 28, hostCores: 2,
            pins: "2,18,3,19,4,20,5,21,6,22,7,23,8,24,9,25,10,26,11,27,12,28,13,29,14,30,15,31", host: "0-1,16-17", topology: (1, 14, 2)),
        // Eight L3 groups of four cores (Zen 2 CCXs): the host's core 0 is in the first, the guest
        // gets the other seven whole, and sees them as seven dies.
        Case(
            machine: "zen2-threadripper-3970x", vcpus: nil, pins: (4...31).map { "\($0),\($0 + 32)" }.joined(separator: ","),
            host: "0-3,32-35", topology: (7, 4, 2)),
        // The GPU sits on node 1: the guest gets node 1's cores, the host keeps all of node 0.
        Case(
            machine: "xeon-2s-gpu-node1", vcpus: nil,
            pins: (16...31).map { "\($0),\($0 + 32)" }.joined(separator: ","), host: "0-15,32-47", topology: (1, 16, 2), node: 1),
        Case(machine: "xeon-2s-gpu-node1", vcpus: 8, pins: "16,48,17,49,18,50,19,51", host: "0-15,20-47,52-63", topology: (1, 4, 2), node: 1),
        // No SMT: one thread a core.
        Case(machine: "intel-4c-nosmt", vcpus: nil, pins: "1,2,3", host: "0", topology: (1, 3, 1)),
        Case(machine: "intel-4c-nosmt", vcpus: 2, hostCores: 2, pins: "2,3", host: "0-1", topology: (1, 2, 1)),
        // Hybrid: the P-cores go to the guest, the E-cores stay with the host.
        Case(machine: "intel-hybrid-12700k", vcpus: nil, pins: "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", host: "16-19", topology: (1, 8, 2)),
        Case(machine: "intel-hybrid-12700k", vcpus: 8, pins: "0,1,2,3,4,5,6,7", host: "8-19", topology: (1, 4, 2)),
        // More host cores than E-cores: the lowest P-core joins them.
        Case(machine: "intel-hybrid-12700k", vcpus: nil, hostCores: 5, pins: "2,3,4,5,6,7,8,9,10,11,12,13,14,15", host: "0-1,16-19", topology: (1, 7, 2)),
    ]

    static func host(_ machine: String) throws -> HostView {
        try HostView(root: HostRoot(Package.path("Tests/ProvisionTuningTests/Fixtures/machines/\(machine)")))
    }

    static func gpuNode(_ machine: String, _ host: HostView) throws -> Int? {
        let address = host.list("/sys/bus/pci/devices").first { $0.hasSuffix(".0") }!
        return try CPUTopology.numaNode(ofPCI: address, host)
    }

    @Test(arguments: cases)
    func chosenPinsMatchTheExpectedSets(_ test: Case) throws {
        let host = try Self.host(test.machine)
        let plan = try PinPlan.choose(
            CPUTopology.read(host), vcpus: test.vcpus, hostCores: test.hostCores, gpuNode: Self.gpuNode(test.machine, host))
        #expect(plan.vcpuPins.map(String.init).joined(separator: ",") == test.pins)
        #expect(CPUList.format(plan.hostCPUs) == test.host)
        #expect(plan.sockets == 1 && plan.dies == test.topology.dies && plan.cores == test.topology.cores && plan.threads == test.topology.threads)
        #expect(plan.sockets * plan.dies * plan.cores * plan.threads == plan.vcpuPins.count)
        #expect(plan.node == test.node)
        // Whole cores: every guest CPU's siblings are the guest's too.
        let topology = try CPUTopology.read(host)
        let guest = Set(plan.vcpuPins)
        #expect(topology.cores.allSatisfy { core in core.threads.allSatisfy(guest.contains) || core.threads.allSatisfy { !guest.contains($0) } })
    }

    @Test func machinesReadAsTheirSysfsDescribesThem() throws {
        let expected: [String: (cores: Int, cpus: Int, l3: Int, nodes: [Int], hybrid: Bool)] = [
            "intel-6c12t": (6, 12, 1, [0], false), "zen3-16c-2ccd": (16, 32, 2, [0], false), "xeon-2s-gpu-node1": (32, 64, 2, [0, 1], false),
            "intel-4c-nosmt": (4, 4, 1, [0], false), "intel-hybrid-12700k": (12, 20, 1, [0], true),
            "zen2-threadripper-3970x": (32, 64, 8, [0], false),
        ]
        for (machine, want) in expected {
            let topology = try CPUTopology.read(Self.host(machine))
            #expect(topology.cores.count == want.cores, "\(machine)")
            #expect(topology.cpus == Array(0..<want.cpus), "\(machine)")
            #expect(topology.l3Groups.count == want.l3, "\(machine)")
            #expect(topology.nodes == want.nodes, "\(machine)")
            #expect(topology.hybrid == want.hybrid, "\(machine)")
        }
        // Skylake-SP's core ids have gaps; siblings, not ids, make the cores.
        let xeon = try CPUTopology.read(Self.host("xeon-2s-gpu-node1"))
        #expect(xeon.cores.filter { $0.package == 1 }.map(\.coreID) == [0, 1, 2, 3, 4, 8, 9, 10, 11, 16, 17, 18, 19, 20, 24, 25])
    }

    @Test func requestsTheHostCannotMeetAreRefusedInTheOptionsTerms() throws {
        let intel = try CPUTopology.read(Self.host("intel-6c12t"))
        func refusal(_ vcpus: Int?, host: Int = 1, _ topology: CPUTopology) -> PinPlan.Refusal? {
            do {
                _ = try PinPlan.choose(topology, vcpus: vcpus, hostCores: host, gpuNode: nil)
                return nil
            } catch { return error as? PinPlan.Refusal }
        }
        #expect(refusal(7, intel)?.option == "vcpus")
        #expect(refusal(7, intel)?.message.contains("multiple of 2") == true)
        #expect(refusal(12, intel)?.message.contains("the guest can have 5 (10 vCPUs) while the host keeps 1") == true)
        #expect(refusal(nil, host: 6, intel)?.option == "host_cpus")
        #expect(refusal(nil, host: 0, intel)?.option == "host_cpus")
        let hybrid = try CPUTopology.read(Self.host("intel-hybrid-12700k"))
        #expect(refusal(18, hybrid)?.message.contains("among the P-cores") == true)
        let xeon = try CPUTopology.read(Self.host("xeon-2s-gpu-node1"))
        do {
            _ = try PinPlan.choose(xeon, vcpus: 34, hostCores: 1, gpuNode: 1)
            Issue.record("34 vCPUs do not fit node 1")
        } catch let refusal as PinPlan.Refusal {
            #expect(refusal.message.contains("on the GPU's NUMA node 1"))
        }
    }

    @Test func cpuListsReadAndWriteAsTheKernelAndLibvirtDo() {
        #expect(CPUList.parse("0-5,12-17\n") == [0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17])
        #expect(CPUList.parse("3") == [3])
        #expect(CPUList.parse("") == [])
        #expect(CPUList.parse("1-") == nil)
        #expect(CPUList.parse("5-2") == nil)
        #expect(CPUList.parse("a") == nil)
        #expect(CPUList.format([0, 6]) == "0,6")
        #expect(CPUList.format([0, 1, 2, 5, 6, 9]) == "0-2,5-6,9")
    }
}
