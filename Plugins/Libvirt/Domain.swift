import Foundation
import ProvisionPluginAPI
import ProvisionDevices
import ProvisionEdit
import ProvisionROM

/// `libvirt.domain`: turns an existing guest into a passthrough guest: the GPU's functions as
/// managed PCI hostdevs (with the ROM), keyboard and mouse relayed through evdev, and NVIDIA's
/// countermeasures. The file is libvirt's own /etc/libvirt/qemu/NAME.xml, edited in place; on a
/// running host libvirt is then told with `virsh define` (and told again on rollback).
public struct LibvirtDomain: StepPlugin {
    public init() {}
    public let kind = "libvirt.domain"
    public let summary = "Edit a libvirt guest for passthrough: hostdevs + ROM, evdev input relay, NVIDIA countermeasures."

    static let grabToggles = ["ctrl-ctrl", "alt-alt", "shift-shift", "meta-meta", "scrolllock", "ctrl-scrolllock"]
    static let schema = "/usr/share/libvirt/schemas/domaincommon.rng"

    public let options: [OptionSpec] = [
        OptionSpec("domain", .string, required: true, help: "the guest's name"),
        OptionSpec("path", .path, default: "/etc/libvirt/qemu/DOMAIN.xml", help: "the domain XML"),
        OptionSpec(
            "hostdevs", .stringList, default: "facts.gpu.addresses and facts.gpu.group_devices", help: "host PCI addresses to pass through"),
        OptionSpec("rom", .path, default: "facts.rom.path", help: "option ROM for the first hostdev (the GPU)"),
        OptionSpec(
            "input", .choice(["auto", "evdev", "qemu-args", "none"]), default: "auto",
            help: "input relay: <input type='evdev'> (libvirt 7.4+), qemu:commandline input-linux objects, or none; "
                + "auto reads the root's libvirt schema"),
        OptionSpec("keyboards", .stringList, default: "facts.input.keyboards", help: "evdev keyboards (absolute paths)"),
        OptionSpec("mice", .stringList, default: "facts.input.mice", help: "evdev mice (absolute paths)"),
        OptionSpec("grab_toggle", .choice(grabToggles), default: "ctrl-ctrl", help: "keys that switch keyboard and mouse between host and guest"),
        OptionSpec("nvidia", .choice(["auto", "on", "off"]), default: "auto", help: "NVIDIA countermeasures; auto: when facts.gpu.vendor is nvidia"),
        OptionSpec("vendor_id", .string, default: "1234567890ab", help: "Hyper-V vendor id shown to the guest (1 to 12 characters)"),
        OptionSpec("hide_hypervisor", .bool, default: "false", help: "disable the CPU's hypervisor bit"),
        OptionSpec("require_uefi", .bool, default: "false", help: "refuse a BIOS guest instead of warning"),
        OptionSpec("remove_virtual_display", .bool, default: "false", help: "remove graphics, video, sound and SPICE channels"),
        OptionSpec(
            "connect", .string, default: "qemu:///system on the live host when libvirtd's socket is there",
            help: "libvirt URI to `virsh define` the result through"),
    ]

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let host = step.host
        let name = try options.requiredString("domain")
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
            throw options.error("domain", "\"\(name)\" is not a libvirt domain name")
        }
        let path = try options.path("path") ?? "/etc/libvirt/qemu/\(name).xml"
        guard let original = try host.text(path) else {
            throw ProvisionError(
                .notFound,
                "domain \"\(name)\" is not defined in this root (no \(path)); create the guest first (virt-manager or virt-install), then re-run",
                at: options.location(of: "domain"))
        }
        var notices: [Notice] = []
        var edit = DomainEdit()
        edit.hostdevs = try hostdevs(options, host: host)
        if edit.hostdevs.isEmpty {
            notices.append(Notice(.warning, "no GPU to pass through (no gpu.select step and no hostdevs option): no hostdev added"))
        }
        edit.rom = try options.path("rom") ?? ROMFacts.read(host)?.path
        if let rom = edit.rom, !host.exists(rom) {
            throw ProvisionError.missing(rom, "fetch it first with rom.fetch", at: options.location(of: "rom"))
        }
        let input = try InputFacts.read(host)
        edit.keyboards = try devices(options, "keyboards", fallback: input?.keyboards)
        edit.mice = try devices(options, "mice", fallback: input?.mice)
        edit.input = try inputRelay(options, host: host, notices: &notices)
        if edit.input != .none && edit.keyboards.isEmpty && edit.mice.isEmpty {
            notices.append(Notice(.warning, "no keyboard or mouse to relay (none given, and no libvirt.qemu-conf step found any)"))
        }
        switch try options.string("nvidia", default: "auto") {
        case "on": edit.nvidia = true
        case "off": edit.nvidia = false
        default: edit.nvidia = try GPUFacts.read(host)?.vendor == "nvidia"
        }
        edit.vendorID = try options.string("vendor_id", default: edit.vendorID)
        guard (1...12).contains(edit.vendorID.count), edit.vendorID.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "," }),
            edit.vendorID.unicodeScalars.allSatisfy({ $0.value >= 0x21 && $0.value < 0x7F })
        else {
            throw options.error(
                "vendor_id",
                "vendor_id \"\(edit.vendorID)\" must be 1 to 12 printable ASCII characters without commas (it fills the 12-byte "
                    + "CPUID vendor field; libvirt refuses longer), it has \(edit.vendorID.count)")
        }
        edit.hideHypervisor = try options.bool("hide_hypervisor", default: false)
        edit.requireUEFI = try options.bool("require_uefi", default: false)
        edit.removeVirtualDisplay = try options.bool("remove_virtual_display", default: false)

        let result = try edit.apply(to: original, file: host.realPath(path))
        notices += result.notices
        guard result.text != original else { return StepPlan(notices: notices) }
        var handlers: [HandlerAction] = []
        if let uri = try connectURI(options, host: host) {
            // virsh talks to the daemon through its socket: it runs from the host, on the root's file.
            handlers.append(
                HandlerAction(argv: ["virsh", "--connect", uri, "define", "--validate", host.realPath(path)], notifiedBy: [path], onHost: true,
                    rewrites: [path]))
        } else {
            notices.append(Notice(.info, "\(path) edited offline: libvirt reads it when libvirtd next starts"))
        }
        return StepPlan(files: [DesiredFile(path: path, state: .present(Data(result.text.utf8)))], handlers: handlers, notices: notices)
    }

    private func hostdevs(_ options: StepOptions, host: HostView) throws -> [PCIAddress] {
        let texts = try options.stringList("hostdevs")
            ?? (try GPUFacts.read(host)).map { $0.addresses + $0.groupDevices } ?? []
        return try texts.map { text in
            guard let address = PCIAddress(text) else {
                throw options.error("hostdevs", "\"\(text)\" is not a PCI address like 0000:01:00.0")
            }
            return address
        }
    }

    private func devices(_ options: StepOptions, _ name: String, fallback: [String]?) throws -> [String] {
        let list = try options.stringList(name) ?? fallback ?? []
        for device in list {
            guard device.hasPrefix("/"), !device.split(separator: "/").contains(".."), !device.contains(","),
                !device.contains(where: \.isNewline)
            else {
                throw options.error(name, "\"\(device)\" must be an absolute device path like /dev/input/by-id/…-event-kbd")
            }
        }
        return list
    }

    /// evdev needs libvirt 7.4 and grabToggle 7.6: the root's own libvirt schema says which it has.
    private func inputRelay(_ options: StepOptions, host: HostView, notices: inout [Notice]) throws -> DomainEdit.InputRelay {
        let toggle = try options.string("grab_toggle", default: "ctrl-ctrl")
        let schema = try host.text(Self.schema)
        let knowsToggle = schema.map { $0.contains("\"grabToggle\"") } ?? true
        switch try options.string("input", default: "auto") {
        case "none": return .none
        case "qemu-args": return .qemuArgs
        case "evdev": return .evdev(grabToggle: knowsToggle ? toggle : nil)
        default:
            guard let schema else {
                notices.append(
                    Notice(.info, "libvirt's schema is not in this root (\(Self.schema)): assuming libvirt 7.6 or newer for <input type='evdev'>"))
                return .evdev(grabToggle: toggle)
            }
            if !schema.contains("<value>evdev</value>") { return .qemuArgs }
            if !knowsToggle { notices.append(Notice(.info, "this libvirt predates grabToggle (7.6): the keyboard toggles with both Ctrl keys")) }
            return .evdev(grabToggle: knowsToggle ? toggle : nil)
        }
    }

    private func connectURI(_ options: StepOptions, host: HostView) throws -> String? {
        if let uri = try options.string("connect") {
            guard uri.contains(":"), !uri.contains(where: \.isWhitespace) else { throw options.error("connect", "\"\(uri)\" is not a libvirt URI") }
            return uri
        }
        return host.isLiveHost && host.entryExists("/run/libvirt/libvirt-sock") ? "qemu:///system" : nil
    }
}

/// The libvirt steps.
public let libvirtSteps: [any StepPlugin] = [QemuConf(), LibvirtDomain()]
