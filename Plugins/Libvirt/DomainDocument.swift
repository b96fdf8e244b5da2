import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// A guest's domain XML for steps of other modules (CPU pinning, hugepages, Looking Glass): found,
/// read and defined the way `libvirt.domain` does it, and edited with the same splicing editor and
/// libvirt's own element order, so every byte a step does not mean to change stays, and `virsh
/// define` re-writing the file moves nothing.
public struct DomainDocument {
    /// The options every domain-editing step takes, as libvirt.domain has them.
    public static let options: [OptionSpec] = [
        OptionSpec("domain", .string, required: true, help: "the guest's name"),
        OptionSpec("path", .path, default: "/etc/libvirt/qemu/DOMAIN.xml", help: "the domain XML"),
        OptionSpec(
            "connect", .string, default: "qemu:///system on the live host when libvirtd's socket is there",
            help: "libvirt URI to `virsh define` the result through"),
    ]

    public let name: String
    public let path: String
    public let original: String
    public private(set) var xml: XMLText
    let file: String

    /// Reads the domain a step's `domain` (and `path`) options name.
    public init(_ options: StepOptions, host: HostView) throws {
        let name = try options.requiredString("domain")
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
            throw options.error("domain", "\"\(name)\" is not a libvirt domain name")
        }
        let path = try options.path("path") ?? "/etc/libvirt/qemu/\(name).xml"
        guard let text = try host.text(path) else {
            throw ProvisionError(
                .notFound,
                "domain \"\(name)\" is not defined in this root (no \(path)); create the guest first (virt-manager or virt-install), then re-run",
                at: options.location(of: "domain"))
        }
        try self.init(name: name, path: path, text: text, file: host.realPath(path))
    }

    init(name: String, path: String, text: String, file: String) throws {
        self.name = name
        self.path = path
        self.original = text
        self.file = file
        xml = try XMLText(text, file: file)
        guard xml.root.name == "domain" else {
            throw ProvisionError(.invalidInput, "not a libvirt domain: the root element is <\(xml.root.name)>", at: location(of: xml.root))
        }
    }

    public var text: String { xml.text }
    public var root: XMLElement { xml.root }
    public var changed: Bool { xml.text != original }

    /// The element at `path` below <domain> (first match at each level), if any.
    public func element(_ path: [String]) -> XMLElement? {
        var current = xml.root
        for name in path {
            guard let next = current.child(name) else { return nil }
            current = next
        }
        return current
    }

    /// The element at `path`, created (each missing level in libvirt's order) when absent.
    @discardableResult
    public mutating func ensure(_ path: [String]) throws -> XMLElement {
        var parentPath: [String] = []
        for name in path {
            if element(parentPath + [name]) == nil {
                try insert(XMLFragment(name), into: parentPath)
            }
            parentPath.append(name)
        }
        return element(path)!
    }

    /// Inserts `fragment` as a child of the element at `parentPath` where libvirt writes it.
    public mutating func insert(_ fragment: XMLFragment, into parentPath: [String]) throws {
        guard let parent = element(parentPath) else {
            throw ProvisionError(.invalidInput, "no <\(parentPath.joined(separator: "/"))> in the domain", at: location(of: xml.root))
        }
        if let order = LibvirtOrder.children[parentPath.last ?? "domain"] {
            try xml.insert(fragment, into: parent, order: order)
        } else {
            try xml.insert(fragment, into: parent, after: parent.children.last)
        }
    }

    public mutating func setAttributes(_ element: XMLElement, _ values: [(String, String)]) throws {
        try xml.setAttributes(element, values)
    }

    public mutating func setText(_ element: XMLElement, _ value: String) throws {
        if element.text != value || !element.children.isEmpty { try xml.setText(element, value) }
    }

    public mutating func remove(_ element: XMLElement) throws { try xml.remove(element) }

    public func location(of element: XMLElement) -> SourceLocation { SourceLocation(file: file, line: element.line, column: 1) }

    // MARK: qemu:commandline

    static let qemuNamespace = "http://libvirt.org/schemas/domain/qemu/1.0"

    /// The prefix the document binds to libvirt's qemu namespace, if any.
    public var qemuPrefix: String? {
        xml.root.attributes.first { $0.name.hasPrefix("xmlns:") && $0.value == Self.qemuNamespace }.map { String($0.name.dropFirst(6)) }
    }

    /// Every `<qemu:arg value=…>` in order.
    public var qemuArguments: [String] { qemuArgumentElements.compactMap { $0.attribute("value") } }

    /// Appends arguments to the last `<qemu:commandline>` (made, with the namespace, when missing).
    public mutating func appendQemuArguments(_ arguments: [String]) throws {
        guard !arguments.isEmpty else { return }
        if qemuPrefix == nil {
            if xml.root.attributes.contains(where: { $0.name == "xmlns:qemu" }) {
                throw ProvisionError(
                    .invalidInput, "the prefix qemu is bound to another namespace than \(Self.qemuNamespace)", at: location(of: xml.root))
            }
            try xml.setAttribute(xml.root, "xmlns:qemu", Self.qemuNamespace)
        }
        let prefix = qemuPrefix!
        for argument in arguments {
            let fragment = XMLFragment("\(prefix):arg", [("value", argument)])
            if let commandline = xml.root.children("\(prefix):commandline").last {
                try xml.insert(fragment, into: commandline, after: commandline.children.last)
            } else {
                try xml.insert(XMLFragment("\(prefix):commandline", [], [fragment]), into: xml.root, after: xml.root.children.last)
            }
        }
    }

    /// Drops the qemu namespace once no element uses it, as libvirt does when it writes the file.
    public mutating func dropUnusedQemuNamespace() throws {
        guard let prefix = qemuPrefix, !xml.root.children.contains(where: { $0.name.hasPrefix("\(prefix):") }) else { return }
        try xml.removeAttribute(xml.root, "xmlns:\(prefix)")
    }

    /// The `<qemu:arg>` elements, to change one's value in place.
    public var qemuArgumentElements: [XMLElement] {
        guard let prefix = qemuPrefix else { return [] }
        return xml.root.children("\(prefix):commandline").flatMap { $0.children("\(prefix):arg") }
    }

    // MARK: the result

    /// The file (when it changed) and how libvirt learns of it: `virsh define` on a live host (or
    /// with `connect:`), else a notice that libvirtd reads it when it next starts.
    public func plan(_ options: StepOptions, host: HostView) throws -> (files: [DesiredFile], handlers: [HandlerAction], notices: [Notice]) {
        guard changed else { return ([], [], []) }
        let files = [DesiredFile(path: path, state: .present(Data(text.utf8)))]
        if let uri = try Self.connectURI(options, host: host) {
            let define = HandlerAction(
                argv: ["virsh", "--connect", uri, "define", "--validate", host.realPath(path)], notifiedBy: [path], onHost: true,
                rewrites: [path])
            return (files, [define], [])
        }
        return (files, [], [Notice(.info, "\(path) edited offline: libvirt reads it when libvirtd next starts")])
    }

    static func connectURI(_ options: StepOptions, host: HostView) throws -> String? {
        if let uri = try options.string("connect") {
            guard uri.contains(":"), !uri.contains(where: \.isWhitespace) else { throw options.error("connect", "\"\(uri)\" is not a libvirt URI") }
            return uri
        }
        return host.isLiveHost && host.entryExists("/run/libvirt/libvirt-sock") ? "qemu:///system" : nil
    }

    /// A size in libvirt's units (`<memory unit='KiB'>`, `<size unit='M'>`) in KiB; nil when the
    /// unit is not one libvirt accepts.
    public static func kibibytes(_ value: String, unit: String?) -> UInt64? {
        guard let number = UInt64(value.trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
        let bytes: UInt64
        switch unit ?? "KiB" {
        case "b", "bytes": bytes = 1
        case "KB": bytes = 1000
        case "k", "KiB": bytes = 1024
        case "MB": bytes = 1_000_000
        case "M", "MiB": bytes = 1 << 20
        case "GB": bytes = 1_000_000_000
        case "G", "GiB": bytes = 1 << 30
        case "TB": bytes = 1_000_000_000_000
        case "T", "TiB": bytes = 1 << 40
        default: return nil
        }
        let (total, overflow) = number.multipliedReportingOverflow(by: bytes)
        return overflow ? nil : (total + 1023) / 1024
    }
}

extension LibvirtOrder {
    /// libvirt's virDomainCputuneDefFormat.
    static let cputune = [
        "shares", "global_period", "global_quota", "period", "quota", "emulator_period", "emulator_quota", "iothread_period",
        "iothread_quota", "vcpupin", "emulatorpin", "iothreadpin", "vcpusched", "iothreadsched", "emulatorsched", "cachetune",
        "memorytune",
    ]

    /// virDomainMemoryBackingFormat.
    static let memoryBacking = ["hugepages", "nosharepages", "locked", "source", "access", "allocation", "discard"]

    static let numatune = ["memory", "memnode"]

    /// The order of each parent's children that tuning steps insert into.
    static let children: [String: [String]] = [
        "domain": domain, "features": features, "hyperv": hyperv, "kvm": kvm, "cpu": cpu, "devices": devices, "hostdev": hostdev,
        "cputune": cputune, "memoryBacking": memoryBacking, "numatune": numatune,
    ]
}
