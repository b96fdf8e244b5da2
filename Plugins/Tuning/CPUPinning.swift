import Foundation
import ProvisionPluginAPI
import ProvisionDevices
import ProvisionEdit
import ProvisionLibvirt

/// `libvirt.cpu-pinning`: the guest's vCPUs pinned one to one to whole host cores chosen from the
/// root's own topology (`PinPlan`), its emulator and I/O threads on the cores the host keeps, and a
/// guest CPU topology that matches, so the guest schedules SMT siblings as siblings. Optionally a
/// libvirt hook keeps the host's own processes off the guest's cores while it runs.
public struct CPUPinning: StepPlugin {
    public init() {}
    public let kind = "libvirt.cpu-pinning"
    public let summary = "Pin a guest's vCPUs to whole host cores (GPU's NUMA node, one L3 group), emulator on the host's cores, matching topology."
    public let options: [OptionSpec] = DomainDocument.options + [
        OptionSpec(
            "vcpus", .string, default: "auto",
            help: "how many vCPUs (a multiple of the threads per core), or auto: the L3 groups the host does not use (Zen CCDs), "
                + "else every core the host does not keep"),
        OptionSpec("host_cpus", .int, default: "1", help: "how many cores (with their SMT siblings) stay with the host"),
        OptionSpec(
            "isolate", .choice(["none", "hook"]), default: "none",
            help: "hook: a libvirt hook (qemu.d, libvirt 6.5+) confines system.slice, user.slice and init.scope to the host's cores "
                + "while the guest runs"),
        OptionSpec("gpu", .string, default: "facts.gpu.address", help: "PCI address whose NUMA node the guest's cores come from"),
    ]

    static let hookDirectory = "/etc/libvirt/hooks/qemu.d"

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let host = step.host
        var document = try DomainDocument(options, host: host)
        let topology = try CPUTopology.read(host)
        var notices: [Notice] = []

        let gpu = try options.string("gpu") ?? GPUFacts.read(host)?.address
        var gpuNode: Int?
        if let gpu {
            guard gpu.range(of: #"^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$"#, options: .regularExpression) != nil else {
                throw options.error("gpu", "\"\(gpu)\" is not a PCI address like 0000:01:00.0")
            }
            gpuNode = try CPUTopology.numaNode(ofPCI: gpu, host)
            if topology.nodes.count > 1 && gpuNode == nil {
                notices.append(Notice(.warning, "\(gpu) reports no NUMA node: the guest's cores may be on another node than its GPU"))
            }
        } else if topology.nodes.count > 1 {
            notices.append(Notice(.warning, "no GPU selected (no gpu.select step, no gpu option): the guest's cores may be on another node than its GPU"))
        }
        let vcpusText = try options.string("vcpus", default: "auto")
        guard vcpusText == "auto" || Int(vcpusText) != nil else {
            throw options.error("vcpus", "vcpus must be a number or auto, found \"\(vcpusText)\"")
        }
        let pins: PinPlan
        do {
            pins = try PinPlan.choose(
                topology, vcpus: Int(vcpusText), hostCores: try options.int("host_cpus") ?? 1, gpuNode: gpuNode)
        } catch let refusal as PinPlan.Refusal {
            throw options.error(refusal.option, refusal.message)
        }
        let amd = host.facts.lookup(["cpu", "vendor"])?.scalarText == "amd"
        try Self.edit(&document, pins, amd: amd)

        let guestList = CPUList.format(pins.vcpuPins)
        let hostList = CPUList.format(pins.hostCPUs)
        notices.append(Notice(
            .info,
            "vCPUs 0-\(pins.vcpuPins.count - 1) pinned to host CPUs \(pins.vcpuPins.map(String.init).joined(separator: ",")) "
                + "(\(pins.cores * pins.dies) cores x \(pins.threads) thread\(pins.threads == 1 ? "" : "s")"
                + "\(pins.dies > 1 ? ", \(pins.dies) L3 groups shown as dies" : "")"
                + "\(pins.node.map { ", NUMA node \($0)" } ?? "")); the host keeps \(hostList)"))

        let result = try document.plan(options, host: host)
        var files = result.files
        notices += result.notices
        let hook = "\(Self.hookDirectory)/provision-isolate-cpus-\(document.name)"
        if try options.string("isolate", default: "none") == "hook" {
            let script = Self.hookScript(domain: document.name, hostCPUs: hostList, allCPUs: CPUList.format(topology.cpus), guestCPUs: guestList)
            if !host.exists(hook) {
                notices.append(Notice(
                    .warning, "libvirtd looks for hooks only when it starts: restart it (systemctl restart libvirtd) before starting \(document.name)"))
            }
            files.append(DesiredFile(path: hook, state: .present(Data(script.utf8), mode: 0o755)))
        } else if host.exists(hook) {
            files.append(DesiredFile(path: hook, state: .absent))
        }
        let exports: [String: Value] = [
            "pinning": .map(["guest_cpus": .string(guestList), "host_cpus": .string(hostList), "vcpus": .int(pins.vcpuPins.count)])
        ]
        return StepPlan(files: files, handlers: result.handlers, notices: notices, exports: exports)
    }

    /// `<vcpu>`, `<cputune>`, `<cpu><topology>` (and `topoext` on AMD), `<numatune>` on a
    /// several-node host; everything else in the domain stays as it is.
    static func edit(_ document: inout DomainDocument, _ pins: PinPlan, amd: Bool) throws {
        let count = pins.vcpuPins.count
        if let vcpus = document.element(["vcpus"]), vcpus.children("vcpu").count != count {
            throw ProvisionError(
                .invalidInput,
                "the domain lists \(vcpus.children("vcpu").count) vCPUs in <vcpus>; remove that element (or make it \(count)) to pin \(count)",
                at: document.location(of: vcpus))
        }
        let vcpu = try document.ensure(["vcpu"])
        try document.setAttributes(vcpu, [("placement", "static")])
        try document.setText(document.element(["vcpu"])!, String(count))

        try document.ensure(["cputune"])
        func pin(_ name: String, _ key: String?, _ id: String?, cpuset: String) throws {
            let existing = document.element(["cputune"])!.children(name).first { key == nil || $0.attribute(key!) == id }
            if let existing {
                try document.setAttributes(existing, [("cpuset", cpuset)])
            } else {
                let attributes = key.map { [($0, id!)] } ?? []
                try document.insert(XMLFragment(name, attributes + [("cpuset", cpuset)]), into: ["cputune"])
            }
        }
        for (index, cpu) in pins.vcpuPins.enumerated() { try pin("vcpupin", "vcpu", String(index), cpuset: String(cpu)) }
        while let stale = document.element(["cputune"])!.children("vcpupin").first(where: { Int($0.attribute("vcpu") ?? "") ?? 0 >= count }) {
            try document.remove(stale)
        }
        // Scheduling and cache settings of vCPUs that no longer exist would make libvirt refuse the domain.
        for name in ["vcpusched", "cachetune"] {
            func beyond(_ element: XMLElement) -> [Int]? {
                guard let list = element.attribute("vcpus").flatMap(CPUList.parse), list.contains(where: { $0 >= count }) else { return nil }
                return list.filter { $0 < count }
            }
            while let element = document.element(["cputune"])!.children(name).first(where: { beyond($0) != nil }) {
                let kept = beyond(element)!
                if kept.isEmpty { try document.remove(element) } else { try document.setAttributes(element, [("vcpus", CPUList.format(kept))]) }
            }
        }
        let hostList = CPUList.format(pins.hostCPUs)
        try pin("emulatorpin", nil, nil, cpuset: hostList)
        for thread in iothreadIDs(document) { try pin("iothreadpin", "iothread", String(thread), cpuset: hostList) }

        let topology = [("sockets", "1"), ("dies", String(pins.dies)), ("cores", String(pins.cores)), ("threads", String(pins.threads))]
        if let existing = document.element(["cpu", "topology"]) {
            // libvirt 10 adds clusters; one cluster per die is what the pins describe.
            let clusters: [(String, String)] = existing.attribute("clusters") != nil ? [("clusters", "1")] : []
            try document.setAttributes(existing, topology + clusters)
        } else if document.element(["cpu"]) == nil {
            try document.insert(
                XMLFragment("cpu", [("mode", "host-passthrough"), ("check", "none"), ("migratable", "on")], [XMLFragment("topology", topology)]),
                into: [])
        } else {
            try document.insert(XMLFragment("topology", topology), into: ["cpu"])
        }
        if amd && pins.threads > 1 {
            // Without topoext an AMD guest does not see SMT siblings as such.
            if let feature = document.element(["cpu"])!.children("feature").first(where: { $0.attribute("name") == "topoext" }) {
                try document.setAttributes(feature, [("policy", "require")])
            } else {
                try document.insert(XMLFragment("feature", [("policy", "require"), ("name", "topoext")]), into: ["cpu"])
            }
        }
        if let node = pins.node {
            // Memory from the GPU's node too, where it can be had (preferred: hugepages reserved at
            // boot are split across the nodes).
            let memory = try document.ensure(["numatune", "memory"])
            try document.setAttributes(memory, [("mode", "preferred"), ("nodeset", String(node))])
        }
    }

    /// The guest's I/O threads: `<iothreadids>` when listed, else ids 1…N of `<iothreads>N`.
    static func iothreadIDs(_ document: DomainDocument) -> [Int] {
        let listed = document.element(["iothreadids"])?.children("iothread").compactMap { $0.attribute("id").flatMap { Int($0) } } ?? []
        if !listed.isEmpty { return listed }
        let count = Int(document.element(["iothreads"])?.text.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
        return count > 0 ? Array(1...count) : []
    }

    /// A libvirt qemu hook (libvirt runs every script in qemu.d with GUEST OPERATION SUB-OPERATION):
    /// on prepare the host's slices and init are confined to the host's CPUs, on release given
    /// every CPU back. A failure is logged, never fatal: the guest starts either way.
    static func hookScript(domain: String, hostCPUs: String, allCPUs: String, guestCPUs: String) -> String {
        let quoted = "'" + domain.replacingOccurrences(of: "'", with: "'\\''") + "'"
        return """
            #!/bin/sh
            # Written by provision (libvirt.cpu-pinning): while the guest \(domain) runs, the host's own processes keep to
            # CPUs \(hostCPUs), leaving \(guestCPUs) to the guest; every CPU is given back when it stops.
            # libvirt runs this with: GUEST OPERATION SUB-OPERATION EXTRA.
            [ "$1" = \(quoted) ] || exit 0
            case "$2/$3" in
            prepare/begin) cpus='\(hostCPUs)' ;;
            release/end) cpus='\(allCPUs)' ;;
            *) exit 0 ;;
            esac
            for unit in system.slice user.slice init.scope; do
                systemctl set-property --runtime -- "$unit" AllowedCPUs="$cpus" || echo "provision hook: could not set AllowedCPUs=$cpus on $unit" >&2
            done
            exit 0

            """
    }
}
