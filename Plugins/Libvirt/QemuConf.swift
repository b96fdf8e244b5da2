import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// `libvirt.qemu-conf`: /etc/libvirt/qemu.conf runs QEMU as a user that may read the input
/// devices and lets those devices through the cgroup ACL. Setting `cgroup_device_acl` replaces
/// libvirt's default list, so the defaults (/dev/kvm among them) are always kept. Every comment of
/// the file stays; a new setting goes right after its commented-out example.
public struct QemuConf: StepPlugin {
    public init() {}
    public let kind = "libvirt.qemu-conf"
    public let summary = "Set user, group and cgroup_device_acl (libvirt's defaults kept, input devices added) in qemu.conf."
    public let options: [OptionSpec] = [
        OptionSpec("path", .path, default: "/etc/libvirt/qemu.conf", help: "the file"),
        OptionSpec("user", .string, help: "user QEMU runs as"),
        OptionSpec("group", .string, help: "group QEMU runs as"),
        OptionSpec(
            "input_devices", .stringList, default: "auto: ROOT/dev/input/by-id/*-event-kbd and *-event-mouse",
            help: "evdev devices QEMU may open (absolute paths), or auto"),
    ]

    /// libvirt's built-in cgroup_device_acl (qemu.conf's own example).
    public static let defaultACL = ["/dev/null", "/dev/full", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/ptmx", "/dev/kvm", "/dev/userfaultfd"]

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let host = step.host
        let path = try options.path("path") ?? "/etc/libvirt/qemu.conf"
        guard let original = try host.text(path) else {
            throw ProvisionError.missing(path, "is libvirt installed?", at: options.stepLocation)
        }
        var conf = LibvirtConf(original, file: path)
        var notices: [Notice] = []
        for (option, key) in [("user", "user"), ("group", "group")] {
            guard let value = try options.string(option) else { continue }
            guard !value.isEmpty, !value.contains("\""), !value.contains("\n") else {
                throw options.error(option, "\(option) must be a plain user or group name")
            }
            if try conf.string(key) != value { try conf.set(key, to: "\"\(value)\"") }
        }
        let devices = try inputDevices(options, host: host)
        if devices.isEmpty { notices.append(Notice(.warning, "no input devices given or found under /dev/input/by-id")) }
        let existing = try conf.list("cgroup_device_acl")
        var acl = existing ?? Self.defaultACL
        for device in Self.defaultACL + devices where !acl.contains(device) { acl.append(device) }
        if existing != acl { try conf.set("cgroup_device_acl", to: LibvirtConf.renderList(acl)) }

        let keyboards = devices.filter { $0.hasSuffix("-event-kbd") }, mice = devices.filter { !$0.hasSuffix("-event-kbd") }
        let exports = try InputFacts(keyboards: keyboards, mice: mice).export
        let files = conf.text == original ? [] : [DesiredFile(path: path, state: .present(Data(conf.text.utf8)))]
        return StepPlan(files: files, handlers: [], notices: notices, exports: exports)
    }

    func inputDevices(_ options: StepOptions, host: HostView) throws -> [String] {
        if let given = try options.stringList("input_devices"), given != ["auto"] {
            for device in given {
                guard device.hasPrefix("/"), !device.contains("\""), !device.contains("\\\\"),
                    !device.split(separator: "/").contains("..")
                else {
                    throw options.error("input_devices", "\"\(device)\" must be an absolute device path like /dev/input/by-id/…-event-kbd")
                }
            }
            return given
        }
        return host.list("/dev/input/by-id").filter { $0.hasSuffix("-event-kbd") || $0.hasSuffix("-event-mouse") }
            .map { "/dev/input/by-id/\($0)" }
    }
}

