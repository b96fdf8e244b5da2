import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// The edits a passthrough guest needs, applied to a libvirt domain XML as text: every edit checks
/// first whether the document already says it, so a second run changes nothing, and each new
/// element goes where libvirt writes it.
struct DomainEdit {
    enum InputRelay: Equatable {
        /// `<input type='evdev'>`; grabToggle only when the host's libvirt knows it (7.6+).
        case evdev(grabToggle: String?)
        /// `-object input-linux` through `<qemu:commandline>`, for libvirt before 7.4.
        case qemuArgs
        case none
    }

    static let qemuNamespace = "http://libvirt.org/schemas/domain/qemu/1.0"

    var hostdevs: [PCIAddress] = []
    /// Option ROM for the first hostdev (the GPU function).
    var rom: String?
    var input: InputRelay = .none
    var keyboards: [String] = []
    var mice: [String] = []
    var nvidia = false
    var vendorID = "1234567890ab"
    var hideHypervisor = false
    var requireUEFI = false
    var removeVirtualDisplay = false

    func apply(to original: String, file: String) throws -> (text: String, notices: [Notice]) {
        var doc = try XMLText(original, file: file)
        guard doc.root.name == "domain" else {
            throw ProvisionError(.invalidInput, "not a libvirt domain: the root element is <\(doc.root.name)>", at: at(doc.root, file))
        }
        var notices: [Notice] = []
        let os = doc.root.child("os")
        if !Self.isUEFI(os) {
            let message = "the domain boots with BIOS, not UEFI: most GPUs' option ROMs only initialise under UEFI (OVMF); "
                + "recreate the guest with firmware='efi' (virt-install --boot uefi)"
            if requireUEFI { throw ProvisionError(.invalidInput, message, at: at(os ?? doc.root, file)) }
            notices.append(Notice(.warning, message))
        }
        let q35 = os?.child("type")?.attribute("machine")?.contains("q35") == true

        if nvidia {
            try element(&doc, ["features", "kvm", "hidden"], orders: [LibvirtOrder.domain, LibvirtOrder.features, LibvirtOrder.kvm]) {
                try $0.setAttribute($1, "state", "on")
            }
            try element(&doc, ["features", "hyperv", "vendor_id"], orders: [LibvirtOrder.domain, LibvirtOrder.features, LibvirtOrder.hyperv]) {
                try $0.setAttributes($1, [("state", "on"), ("value", vendorID)])
            }
            if q35 {
                try element(&doc, ["features", "ioapic"], orders: [LibvirtOrder.domain, LibvirtOrder.features]) {
                    try $0.setAttribute($1, "driver", "kvm")
                }
            }
        }
        if hideHypervisor {
            try hideHypervisorBit(&doc)
        }
        try element(&doc, ["devices"], orders: [LibvirtOrder.domain]) { _, _ in }
        for (index, address) in hostdevs.enumerated() {
            try hostdev(&doc, address, rom: index == 0 ? rom : nil)
        }
        switch input {
        case .evdev(let toggle): try evdevInputs(&doc, grabToggle: toggle, notices: &notices)
        case .qemuArgs: try qemuArgInputs(&doc, file: file, notices: &notices)
        case .none: break
        }
        if removeVirtualDisplay { try removeDisplay(&doc) }
        return (doc.text, notices)
    }

    // MARK: features and cpu

    /// Makes sure the element at `path` exists (creating the missing tail in libvirt's order), then
    /// lets `update` adjust it.
    private func element(
        _ doc: inout XMLText, _ path: [String], orders: [[String]], update: (inout XMLText, XMLElement) throws -> Void
    ) throws {
        var parent = doc.root
        for (depth, name) in path.enumerated() {
            if let existing = parent.child(name) {
                parent = existing
                continue
            }
            try doc.insert(XMLFragment(name), into: parent, order: orders[depth])
            parent = Self.find(Array(path[...depth]), in: doc.root)!
        }
        try update(&doc, parent)
    }

    static func find(_ path: [String], in root: XMLElement) -> XMLElement? {
        var current = root
        for name in path {
            guard let next = current.child(name) else { return nil }
            current = next
        }
        return current
    }

    private func hideHypervisorBit(_ doc: inout XMLText) throws {
        guard let cpu = doc.root.child("cpu") else {
            let fragment = XMLFragment("cpu", [("mode", "host-passthrough")], [XMLFragment("feature", [("policy", "disable"), ("name", "hypervisor")])])
            try doc.insert(fragment, into: doc.root, order: LibvirtOrder.domain)
            return
        }
        if let feature = cpu.children("feature").first(where: { $0.attribute("name") == "hypervisor" }) {
            try doc.setAttribute(feature, "policy", "disable")
        } else {
            try doc.insert(XMLFragment("feature", [("policy", "disable"), ("name", "hypervisor")]), into: cpu, order: LibvirtOrder.cpu)
        }
    }

    // MARK: devices

    private func devices(_ doc: XMLText) -> XMLElement { doc.root.child("devices")! }

    private func hostdev(_ doc: inout XMLText, _ address: PCIAddress, rom: String?) throws {
        guard let existing = existingHostdev(doc, address) else {
            var children = [XMLFragment("source", [], [XMLFragment("address", address.libvirtAttributes)])]
            if let rom { children.append(XMLFragment("rom", [("bar", "on"), ("file", rom)])) }
            let fragment = XMLFragment("hostdev", [("mode", "subsystem"), ("type", "pci"), ("managed", "yes")], children)
            try doc.insert(fragment, into: devices(doc), order: LibvirtOrder.devices)
            return
        }
        // An existing hostdev keeps its managed= (managed='no' is a deliberate choice).
        guard let rom else { return }
        if let romElement = existing.child("rom") {
            try doc.setAttributes(romElement, [("bar", "on"), ("file", rom)])
        } else {
            try doc.insert(XMLFragment("rom", [("bar", "on"), ("file", rom)]), into: existing, order: LibvirtOrder.hostdev)
        }
    }

    private func existingHostdev(_ doc: XMLText, _ address: PCIAddress) -> XMLElement? {
        devices(doc).children("hostdev").first { hostdev in
            hostdev.attribute("type") == "pci" && hostdev.child("source")?.child("address").flatMap(PCIAddress.init(libvirt:)) == address
        }
    }

    private func evdevInputs(_ doc: inout XMLText, grabToggle: String?, notices: inout [Notice]) throws {
        let relayed = qemuArgValues(doc)
        for device in keyboards + mice {
            if relayed.contains(where: { $0.contains("evdev=\(device)") }) {
                notices.append(Notice(.info, "\(device) is already relayed by a qemu:commandline input-linux object; left as it is"))
                continue
            }
            let keyboard = keyboards.contains(device)
            var attributes = [("dev", device)]
            if keyboard {
                // libvirt's own attribute order.
                attributes.append(("grab", "all"))
                if let grabToggle { attributes.append(("grabToggle", grabToggle)) }
                attributes.append(("repeat", "on"))
            }
            if let source = evdevInput(doc, device)?.child("source") {
                try doc.setAttributes(source, attributes)
                continue
            }
            let fragment = XMLFragment("input", [("type", "evdev")], [XMLFragment("source", attributes)])
            try doc.insert(fragment, into: devices(doc), order: LibvirtOrder.devices)
        }
    }

    private func evdevInput(_ doc: XMLText, _ device: String) -> XMLElement? {
        devices(doc).children("input").first { $0.attribute("type") == "evdev" && $0.child("source")?.attribute("dev") == device }
    }

    // MARK: qemu:commandline

    /// The prefix the document binds to libvirt's qemu namespace, if any.
    private func qemuPrefix(_ doc: XMLText) -> String? {
        doc.root.attributes.first { $0.name.hasPrefix("xmlns:") && $0.value == Self.qemuNamespace }.map { String($0.name.dropFirst(6)) }
    }

    private func qemuArgValues(_ doc: XMLText) -> [String] {
        guard let prefix = qemuPrefix(doc) else { return [] }
        return doc.root.children("\(prefix):commandline").flatMap { $0.children("\(prefix):arg") }.compactMap { $0.attribute("value") }
    }

    private func qemuArgInputs(_ doc: inout XMLText, file: String, notices: inout [Notice]) throws {
        var values = qemuArgValues(doc)
        let wanted = (keyboards + mice).filter { device in
            let native = evdevInput(doc, device) != nil
            if native { notices.append(Notice(.info, "\(device) is already relayed by <input type='evdev'>; left as it is")) }
            return !native && !values.contains { $0.contains("evdev=\(device)") }
        }
        guard !wanted.isEmpty else { return }
        if qemuPrefix(doc) == nil {
            if doc.root.attributes.contains(where: { $0.name == "xmlns:qemu" }) {
                throw ProvisionError(
                    .invalidInput, "the prefix qemu is bound to another namespace than \(Self.qemuNamespace)",
                    at: at(doc.root, file))
            }
            try doc.setAttribute(doc.root, "xmlns:qemu", Self.qemuNamespace)
        }
        let prefix = qemuPrefix(doc)!
        var arguments: [XMLFragment] = []
        for device in wanted {
            let keyboard = keyboards.contains(device)
            let base = keyboard ? "kbd" : "mouse"
            var number = 0
            while values.contains(where: { $0.contains("id=\(base)\(number),") }) { number += 1 }
            var object = "input-linux,id=\(base)\(number),evdev=\(device)"
            if keyboard { object += ",grab_all=on,repeat=on" }
            values.append(object)
            arguments += [XMLFragment("\(prefix):arg", [("value", "-object")]), XMLFragment("\(prefix):arg", [("value", object)])]
        }
        if doc.root.children("\(prefix):commandline").isEmpty {
            try doc.insert(XMLFragment("\(prefix):commandline", [], arguments), into: doc.root, after: doc.root.children.last)
        } else {
            for argument in arguments {
                let commandline = doc.root.children("\(prefix):commandline").last!
                try doc.insert(argument, into: commandline, after: commandline.children.last)
            }
        }
    }

    // MARK: virtual display

    private func removeDisplay(_ doc: inout XMLText) throws {
        func isVirtualDisplay(_ element: XMLElement) -> Bool {
            switch element.name {
            case "graphics", "video", "sound": return true
            // libvirt itself adds <audio type='none'/> to a guest without graphics.
            case "audio": return element.attribute("type") != "none"
            case "channel", "redirdev": return element.attribute("type") == "spicevmc"
            default: return false
            }
        }
        while let element = devices(doc).children.first(where: isVirtualDisplay) {
            try doc.remove(element)
        }
    }

    // MARK: helpers

    /// UEFI: `<os firmware='efi'>` (firmware auto-selection) or a pflash loader (OVMF/edk2 paths).
    static func isUEFI(_ os: XMLElement?) -> Bool {
        guard let os else { return false }
        if os.attribute("firmware") == "efi" { return true }
        guard let loader = os.child("loader") else { return false }
        let path = loader.text.lowercased()
        return loader.attribute("type") == "pflash" || path.contains("ovmf") || path.contains("edk2")
    }

    private func at(_ element: XMLElement, _ file: String) -> SourceLocation {
        SourceLocation(file: file, line: element.line, column: 1)
    }
}

/// A host PCI address, "0000:01:00.0", as libvirt's hostdev source spells it.
struct PCIAddress: Equatable, CustomStringConvertible {
    var domain: Int
    var bus: Int
    var slot: Int
    var function: Int

    init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let withDomain = parts.count == 3 ? parts : parts.count == 2 ? ["0000"] + parts : []
        guard withDomain.count == 3, withDomain[0].count == 4, withDomain[1].count == 2,
            let domain = Int(withDomain[0], radix: 16), let bus = Int(withDomain[1], radix: 16)
        else { return nil }
        let slotFunction = withDomain[2].split(separator: ".", omittingEmptySubsequences: false)
        guard slotFunction.count == 2, slotFunction[0].count == 2, slotFunction[1].count == 1,
            let slot = Int(slotFunction[0], radix: 16), let function = Int(slotFunction[1], radix: 8), slot < 0x20
        else { return nil }
        self.domain = domain
        self.bus = bus
        self.slot = slot
        self.function = function
    }

    init?(libvirt element: XMLElement) {
        func number(_ name: String) -> Int? {
            guard let text = element.attribute(name) else { return name == "domain" ? 0 : nil }
            return text.hasPrefix("0x") ? Int(text.dropFirst(2), radix: 16) : Int(text)
        }
        guard let domain = number("domain"), let bus = number("bus"), let slot = number("slot"), let function = number("function") else {
            return nil
        }
        (self.domain, self.bus, self.slot, self.function) = (domain, bus, slot, function)
    }

    var libvirtAttributes: [(String, String)] {
        [
            ("domain", String(format: "0x%04x", domain)), ("bus", String(format: "0x%02x", bus)),
            ("slot", String(format: "0x%02x", slot)), ("function", String(format: "0x%x", function)),
        ]
    }

    var description: String { String(format: "%04x:%02x:%02x.%x", domain, bus, slot, function) }
}
