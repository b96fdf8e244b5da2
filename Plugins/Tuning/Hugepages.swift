import Foundation
import ProvisionBootloader
import ProvisionPluginAPI
import ProvisionEdit
import ProvisionLibvirt

/// `hugepages`: the guest's memory backed by huge pages, reserved for it before the host's memory
/// fragments: at boot through the kernel command line (whichever boot loader the root uses), or at
/// runtime through sysctl (2 MiB pages; 1 GiB pages at runtime often cannot be found). The guest's
/// domain is told to use them.
public struct Hugepages: StepPlugin {
    public init() {}
    public let kind = "hugepages"
    public let summary = "Reserve huge pages for a guest (at boot via the kernel command line, or sysctl at runtime) and back its memory with them."
    public let options: [OptionSpec] = [
        OptionSpec("size", .choice(["2M", "1G"]), default: "1G", help: "page size"),
        OptionSpec("count", .int, help: "how many pages (instead of memory)"),
        OptionSpec("memory", .string, default: "auto", help: "memory to reserve: auto (the domain's <memory>) or a size such as 16G or 16384M"),
        OptionSpec("at", .choice(["boot", "runtime"]), default: "boot", help: "boot: kernel command line; runtime: /etc/sysctl.d (2M pages)"),
    ] + DomainDocument.options.map { option in
        var optional = option
        optional.required = false
        optional.help += " (optional: without it only the pages are reserved)"
        return optional
    } + KernelParameters.options

    static let sysctlFile = "/etc/sysctl.d/60-provision-hugepages.conf"
    static let tmpfilesFile = "/etc/tmpfiles.d/60-provision-hugepages.conf"
    /// What the host keeps at least, besides the pages.
    static let hostReserveKiB: UInt64 = 1 << 20

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let host = step.host
        let size = try options.string("size", default: "1G")
        let pageKiB: UInt64 = size == "1G" ? 1 << 20 : 2048
        let document = options.has("domain") ? try DomainDocument(options, host: host) : nil
        var notices: [Notice] = []

        let pages = try pageCount(options, document: document, pageKiB: pageKiB, notices: &notices)
        let total = pages * pageKiB
        if let memTotal = try Self.memTotal(host) {
            guard total + Self.hostReserveKiB <= memTotal else {
                throw options.error(
                    options.has("count") ? "count" : options.has("domain") && !options.has("memory") ? "domain" : "memory",
                    "\(pages) pages of \(size) (\(Self.describe(total))) would leave this host less than \(Self.describe(Self.hostReserveKiB)) "
                        + "of its \(Self.describe(memTotal)) (MemTotal in /proc/meminfo): give the guest less memory")
            }
        } else {
            notices.append(Notice(.warning, "no /proc/meminfo in the root: whether \(Self.describe(total)) of pages fit is not checked"))
        }

        var plan: StepPlan
        if try options.string("at", default: "boot") == "boot" {
            plan = try KernelParameters.plan(add: ["default_hugepagesz=\(size)", "hugepagesz=\(size)", "hugepages=\(pages)"], step: step)
            if host.list("/sys/devices/system/node").filter({ $0.hasPrefix("node") }).count > 1 {
                plan.notices.append(Notice(.info, "pages reserved at boot are split evenly across the NUMA nodes"))
            }
        } else {
            plan = try runtime(size: size, pages: pages, host: host, notices: &notices)
        }
        plan.notices = notices + plan.notices

        if var domain = document {
            if let element = domain.element(["memory"]), let memory = DomainDocument.kibibytes(element.text, unit: element.attribute("unit")),
                memory > total
            {
                plan.notices.append(Notice(
                    .warning, "\(domain.name) has \(Self.describe(memory)) of memory but the pages hold \(Self.describe(total)): "
                        + "it cannot start on them; reserve more (memory: auto)"))
            }
            try Self.backMemory(&domain, pageKiB: pageKiB)
            let result = try domain.plan(options, host: host)
            plan.files += result.files
            plan.handlers += result.handlers
            plan.notices += result.notices
        }
        plan.exports["hugepages"] = .map(["size": .string(size), "count": .int(Int(pages))])
        return plan
    }

    private func pageCount(_ options: StepOptions, document: DomainDocument?, pageKiB: UInt64, notices: inout [Notice]) throws -> UInt64 {
        if let count = try options.int("count") {
            guard !options.has("memory") else { throw options.error("memory", "give count or memory, not both") }
            guard count >= 1 else { throw options.error("count", "count must be at least 1") }
            return UInt64(count)
        }
        let memory = try options.string("memory", default: "auto")
        let kib: UInt64
        if memory == "auto" {
            guard let document else {
                throw ProvisionError(.invalidInput, "hugepages needs count, memory, or a domain whose memory to reserve", at: options.stepLocation)
            }
            guard let element = document.element(["memory"]),
                let value = DomainDocument.kibibytes(element.text, unit: element.attribute("unit"))
            else {
                throw ProvisionError(.invalidInput, "the domain has no <memory> size to reserve pages for", at: document.location(of: document.root))
            }
            kib = value
            if kib % pageKiB != 0 {
                notices.append(Notice(
                    .warning, "the domain's memory (\(Self.describe(kib))) is not a whole number of \(Self.describe(pageKiB)) pages: QEMU will refuse it; "
                        + "make it a multiple"))
            }
        } else {
            let digits = memory.prefix { $0.isNumber }
            guard let value = DomainDocument.kibibytes(String(digits), unit: String(memory.dropFirst(digits.count))), value > 0 else {
                throw options.error("memory", "memory must be auto or a size such as 16G or 16384M, found \"\(memory)\"")
            }
            kib = value
        }
        return (kib + pageKiB - 1) / pageKiB
    }

    /// 2 MiB pages through sysctl.d (systemd-sysctl sets them at boot); 1 GiB pages, which sysctl
    /// cannot name, through tmpfiles.d writing the size's own sysfs count.
    private func runtime(size: String, pages: UInt64, host: HostView, notices: inout [Notice]) throws -> StepPlan {
        var plan = StepPlan()
        let path: String
        let text: String
        let apply: [String]
        if size == "2M" {
            path = Self.sysctlFile
            text = "# Written by provision (hugepages): \(pages) pages of 2 MiB, reserved when systemd-sysctl runs at boot.\n"
                + "vm.nr_hugepages = \(pages)\n"
            apply = ["sysctl", "-p", path]
        } else {
            notices.append(Notice(
                .warning,
                "1G pages at runtime: the kernel needs \(pages) free, aligned 1 GiB blocks, which a running host seldom has; "
                    + "at: boot reserves them before memory fragments"))
            path = Self.tmpfilesFile
            text = "# Written by provision (hugepages): \(pages) pages of 1 GiB, asked for when systemd-tmpfiles runs at boot.\n"
                + "w /sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages - - - - \(pages)\n"
            apply = ["systemd-tmpfiles", "--create", path]
        }
        plan.files = [DesiredFile(path: path, state: .present(Data(text.utf8), mode: 0o644))]
        if host.isLiveHost {
            plan.handlers = [HandlerAction(argv: apply, notifiedBy: [path])]
        } else {
            plan.notices.append(Notice(.info, "\(path) takes effect at the root's next boot"))
        }
        return plan
    }

    /// `<memoryBacking><hugepages><page size unit/>`, in KiB as libvirt writes it back.
    static func backMemory(_ document: inout DomainDocument, pageKiB: UInt64) throws {
        let wanted = [("size", String(pageKiB)), ("unit", "KiB")]
        guard let hugepages = document.element(["memoryBacking", "hugepages"]) else {
            try document.ensure(["memoryBacking"])
            try document.insert(XMLFragment("hugepages", [], [XMLFragment("page", wanted)]), into: ["memoryBacking"])
            return
        }
        let pages = hugepages.children("page")
        if pages.contains(where: { DomainDocument.kibibytes($0.attribute("size") ?? "", unit: $0.attribute("unit")) == pageKiB }) { return }
        switch pages.count {
        case 0: try document.insert(XMLFragment("page", wanted), into: ["memoryBacking", "hugepages"])
        case 1 where pages[0].attribute("nodeset") == nil: try document.setAttributes(pages[0], wanted)
        default:
            throw ProvisionError(
                .invalidInput, "the domain already asks for pages of other sizes per NUMA node; edit <memoryBacking> by hand",
                at: document.location(of: hugepages))
        }
    }

    /// MemTotal from ROOT/proc/meminfo, in KiB.
    static func memTotal(_ host: HostView) throws -> UInt64? {
        guard let text = try host.text("/proc/meminfo") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let value = UInt64(fields[1]) { return value }
        }
        throw ProvisionError(.invalidInput, "no MemTotal line", at: SourceLocation(file: host.realPath("/proc/meminfo"), line: 1, column: 1))
    }

    static func describe(_ kib: UInt64) -> String {
        if kib % (1 << 20) == 0 { return "\(kib >> 20) GiB" }
        if kib >= 1 << 20 { return String(format: "%.1f GiB", Double(kib) / Double(1 << 20)) }
        return "\(kib >> 10) MiB"
    }
}
