import Foundation
import ProvisionPluginAPI
import ProvisionEdit
import ProvisionInitrd
import ProvisionLibvirt

/// `looking-glass`: the guest's framebuffer mirrored to the host through shared memory (IVSHMEM),
/// sized for the resolution. `kvmfr`: the kvmfr module's /dev/kvmfr0 (its size in modprobe.d, loaded
/// at boot, given to the user by udev, let through libvirt's cgroup ACL and AppArmor) handed to
/// QEMU as a memory backend; `shm`: libvirt's own `<shmem>` on /dev/shm/looking-glass, created for
/// the user by tmpfiles.d. Either way the memory balloon goes (it fights VFIO's pinned memory).
public struct LookingGlass: StepPlugin {
    public init() {}
    public let kind = "looking-glass"
    public let summary = "Looking Glass shared memory sized for a resolution: kvmfr (/dev/kvmfr0) or /dev/shm, wired into the guest."
    public let options: [OptionSpec] = DomainDocument.options + [
        OptionSpec("resolution", .string, default: "1920x1080", help: "the guest's largest resolution, WIDTHxHEIGHT"),
        OptionSpec("hdr", .bool, default: "false", help: "HDR frames (8 bytes a pixel instead of 4)"),
        OptionSpec("via", .choice(["kvmfr", "shm"]), default: "kvmfr", help: "kvmfr (the kernel module's /dev/kvmfr0) or shm (/dev/shm/looking-glass)"),
        OptionSpec("user", .string, default: "the root's one login user", help: "who runs the Looking Glass client (owns the shared memory)"),
        OptionSpec("group", .string, default: "kvm", help: "group of the shared memory (QEMU's user is in it)"),
        OptionSpec("qemu_conf", .path, default: "/etc/libvirt/qemu.conf", help: "kvmfr: where /dev/kvmfr0 joins cgroup_device_acl"),
    ]

    static let device = "/dev/kvmfr0"
    static let shmFile = "/dev/shm/looking-glass"
    static let modprobeFile = "/etc/modprobe.d/kvmfr.conf"
    static let modulesLoadFile = "/etc/modules-load.d/kvmfr.conf"
    static let udevRule = "/etc/udev/rules.d/99-kvmfr.rules"
    static let tmpfilesFile = "/etc/tmpfiles.d/10-looking-glass.conf"
    static let appArmorAbstraction = "/etc/apparmor.d/abstractions/libvirt-qemu"
    static let appArmorLocal = "/etc/apparmor.d/local/abstractions/libvirt-qemu"
    /// The first words of every file this step writes.
    static let signature = "# Written by provision (looking-glass)"
    /// The memory backend's id, which the ivshmem device names.
    static let backendID = "looking-glass"

    /// The shared memory Looking Glass needs: two frames of width x height at 4 bytes a pixel (8
    /// with HDR), plus 10 MiB, rounded up to a power of two MiB.
    public static func sizeMiB(width: Int, height: Int, hdr: Bool) -> Int {
        let bytes = width * height * (hdr ? 8 : 4) * 2 + (10 << 20)
        let mib = (bytes + (1 << 20) - 1) >> 20
        var size = 1
        while size < mib { size <<= 1 }
        return size
    }

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let host = step.host
        var document = try DomainDocument(options, host: host)
        let resolution = try options.string("resolution", default: "1920x1080")
        let parts = resolution.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 2, let width = parts[0], let height = parts[1], (1...16_384).contains(width), (1...16_384).contains(height) else {
            throw options.error("resolution", "resolution must be WIDTHxHEIGHT such as 2560x1440, found \"\(resolution)\"")
        }
        let hdr = try options.bool("hdr", default: false)
        let size = Self.sizeMiB(width: width, height: height, hdr: hdr)
        let user = try owner(options, host: host)
        let group = try options.string("group", default: "kvm")
        guard Self.isPlainName(group) else { throw options.error("group", "\"\(group)\" is not a group name") }
        do { _ = try host.groupID(group) } catch let error as ProvisionError { throw options.error("group", error.message) }
        let via = try options.string("via", default: "kvmfr")
        let what = "\(width)x\(height)\(hdr ? " HDR" : "")"
        var notices = [Notice(.info, "\(size) MiB of shared memory for \(what) (\(via))")]
        var files: [DesiredFile] = []
        var handlers: [HandlerAction] = []

        try Self.disableMemoryBalloon(&document)
        // What this step wrote for the other variant goes.
        let ours = via == "kvmfr" ? [Self.tmpfilesFile] : [Self.modprobeFile, Self.modulesLoadFile, Self.udevRule]
        for path in ours where try host.text(path)?.hasPrefix(Self.signature) == true {
            files.append(DesiredFile(path: path, state: .absent))
        }
        if via == "kvmfr" {
            try Self.removeShmem(&document)
            try Self.kvmfrArguments(&document, bytes: size << 20)
            let header = "\(Self.signature): \(size) MiB for \(what), owned by \(user).\n"
            let modprobe = header + "options kvmfr static_size_mb=\(size)\n"
            files += [
                DesiredFile(path: Self.modprobeFile, state: .present(Data(modprobe.utf8), mode: 0o644)),
                DesiredFile(path: Self.modulesLoadFile, state: .present(Data((header + "kvmfr\n").utf8), mode: 0o644)),
                DesiredFile(
                    path: Self.udevRule,
                    state: .present(Data((header + "SUBSYSTEM==\"kvmfr\", OWNER=\"\(user)\", GROUP=\"\(group)\", MODE=\"0660\"\n").utf8), mode: 0o644)),
            ]
            files += try qemuConf(options, host: host)
            let inventory = KernelInventory.read(host)
            if inventory.missingEverywhere("kvmfr") {
                notices.append(Notice(
                    .warning,
                    "kvmfr is not installed for any kernel in the root: it is out of tree, build it with DKMS from the Looking Glass "
                        + "source (or your distribution's looking-glass-module package)"))
            }
            if let rebuild = try Self.initramfsRebuild(host) {
                handlers.append(HandlerAction(argv: rebuild, notifiedBy: [Self.modprobeFile]))
            }
            notices.append(Notice(
                .warning,
                "start \(document.name) only once kvmfr is loaded (after a reboot, or modprobe kvmfr): a guest started before makes "
                    + "\(Self.device) a plain file, which then has to be removed"))
        } else {
            try Self.removeKvmfrArguments(&document)
            try Self.shmem(&document, sizeMiB: size)
            let tmpfiles = "\(Self.signature): the shared memory for \(what), owned by \(user).\n"
                + "f \(Self.shmFile) 0660 \(user) \(group) -\n"
            files.append(DesiredFile(path: Self.tmpfilesFile, state: .present(Data(tmpfiles.utf8), mode: 0o644)))
        }
        files += try appArmor(via == "kvmfr" ? Self.device : Self.shmFile, host: host)

        let result = try document.plan(options, host: host)
        return StepPlan(
            files: result.files + files, handlers: result.handlers + handlers, notices: notices + result.notices,
            exports: ["looking_glass": .map(["size_mb": .int(size), "via": .string(via)])])
    }

    /// The user option, else the root's one login user (uid 1000 and up, a login shell).
    private func owner(_ options: StepOptions, host: HostView) throws -> String {
        if let user = try options.string("user") {
            guard Self.isPlainName(user) else { throw options.error("user", "\"\(user)\" is not a user name") }
            do { _ = try host.userID(user) } catch let error as ProvisionError { throw options.error("user", error.message) }
            return user
        }
        let logins = (try host.text("/etc/passwd") ?? "").split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 7, let uid = Int(fields[2]), (1000..<60_000).contains(uid), Self.isPlainName(String(fields[0])),
                !["nologin", "false"].contains(fields[6].split(separator: "/").last.map(String.init) ?? "")
            else { return nil }
            return String(fields[0])
        }
        guard logins.count == 1 else {
            throw ProvisionError(
                .invalidInput,
                logins.isEmpty
                    ? "no login user in the root's /etc/passwd to own the shared memory: name one with user:"
                    : "several login users (\(logins.joined(separator: ", "))): name the one who runs the Looking Glass client with user:",
                at: options.stepLocation)
        }
        return logins[0]
    }

    /// A name a udev rule and a tmpfiles.d line can carry as it is.
    static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix("-") && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
    }

    /// qemu.conf's cgroup_device_acl with /dev/kvmfr0, libvirt's defaults kept (setting the list
    /// replaces them).
    private func qemuConf(_ options: StepOptions, host: HostView) throws -> [DesiredFile] {
        let path = try options.path("qemu_conf") ?? "/etc/libvirt/qemu.conf"
        guard let original = try host.text(path) else {
            throw ProvisionError(.invalidInput, "\(path) does not exist in the root (is libvirt installed?)", at: options.location(of: "qemu_conf"))
        }
        var conf = LibvirtConf(original, file: host.realPath(path))
        let existing = try conf.list("cgroup_device_acl")
        var acl = existing ?? QemuConf.defaultACL
        for device in QemuConf.defaultACL + [Self.device] where !acl.contains(device) { acl.append(device) }
        guard existing != acl else { return [] }
        try conf.set("cgroup_device_acl", to: LibvirtConf.renderList(acl))
        return [DesiredFile(path: path, state: .present(Data(conf.text.utf8)))]
    }

    /// AppArmor confines each guest's QEMU with a profile that includes libvirt's qemu abstraction
    /// and its local additions: the shared memory joins those, when the root has AppArmor's libvirt
    /// abstraction at all.
    private func appArmor(_ path: String, host: HostView) throws -> [DesiredFile] {
        guard host.exists(Self.appArmorAbstraction) else { return [] }
        let rule = "\(path) rw,"
        let original = try host.text(Self.appArmorLocal)
        var lines = (original ?? "").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard !lines.contains(where: { $0.trimmingCharacters(in: .whitespaces) == rule }) else { return [] }
        if original == nil { lines.append("# Site-specific additions to libvirt's QEMU abstraction; Looking Glass added by provision.") }
        lines.append(rule)
        return [DesiredFile(path: Self.appArmorLocal, state: .present(Data((lines.joined(separator: "\n") + "\n").utf8), mode: original == nil ? 0o644 : nil))]
    }

    /// The initramfs's rebuild command when it loads kvmfr itself (then it carries the old size).
    static func initramfsRebuild(_ host: HostView) throws -> [String]? {
        guard let (generator, _) = try? InitrdGenerators.resolve("auto", host: host, at: SourceLocation(file: "", line: 0, column: 0)) else {
            return nil
        }
        for path in generator.configFiles(host) {
            let text = try host.text(path) ?? ""
            let words = text.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }
                .flatMap { $0.split(whereSeparator: { " \t\"'()=+".contains($0) }) }
            if words.contains("kvmfr") { return generator.rebuild }
        }
        return nil
    }

    // MARK: the domain

    static func disableMemoryBalloon(_ document: inout DomainDocument) throws {
        let balloons = document.element(["devices"])?.children("memballoon") ?? []
        if balloons.count == 1 && balloons[0].attribute("model") == "none" && balloons[0].children.isEmpty { return }
        while let balloon = document.element(["devices"])?.children("memballoon").first { try document.remove(balloon) }
        try document.ensure(["devices"])
        try document.insert(XMLFragment("memballoon", [("model", "none")]), into: ["devices"])
    }

    /// The ivshmem-plain device on a memory backend over /dev/kvmfr0 (QEMU 6.2+ JSON syntax), of
    /// exactly the module's size.
    static func kvmfrArguments(_ document: inout DomainDocument, bytes: Int) throws {
        let device = #"{"driver":"ivshmem-plain","id":"shmem-looking-glass","memdev":"\#(backendID)"}"#
        let backend = #"{"qom-type":"memory-backend-file","id":"\#(backendID)","mem-path":"\#(Self.device)","size":\#(bytes),"share":true}"#
        if let existing = document.qemuArgumentElements.first(where: { isBackend($0.attribute("value") ?? "") }) {
            if existing.attribute("value") != backend { try document.setAttributes(existing, [("value", backend)]) }
        } else {
            try document.appendQemuArguments(["-object", backend])
        }
        if !document.qemuArguments.contains(where: isDevice) { try document.appendQemuArguments(["-device", device]) }
    }

    static func isBackend(_ value: String) -> Bool { value.contains(#""id":"\#(backendID)""#) && value.contains("memory-backend-file") }
    static func isDevice(_ value: String) -> Bool { value.contains(#""memdev":"\#(backendID)""#) }

    static func removeKvmfrArguments(_ document: inout DomainDocument) throws {
        while let index = document.qemuArgumentElements.firstIndex(where: { isBackend($0.attribute("value") ?? "") || isDevice($0.attribute("value") ?? "") }) {
            try document.remove(document.qemuArgumentElements[index])
            if index > 0, ["-object", "-device"].contains(document.qemuArgumentElements[index - 1].attribute("value")) {
                try document.remove(document.qemuArgumentElements[index - 1])
            }
        }
        while let prefix = document.qemuPrefix, let empty = document.root.children("\(prefix):commandline").first(where: { $0.children.isEmpty }) {
            try document.remove(empty)
        }
        try document.dropUnusedQemuNamespace()
    }

    /// `<shmem name='looking-glass'>` of the size; one that says anything else is replaced.
    static func shmem(_ document: inout DomainDocument, sizeMiB: Int) throws {
        let existing = document.element(["devices"])?.children("shmem").filter { $0.attribute("name") == backendID } ?? []
        if existing.count == 1, existing[0].child("model")?.attribute("type") == "ivshmem-plain",
            let size = existing[0].child("size"), DomainDocument.kibibytes(size.text, unit: size.attribute("unit")) == UInt64(sizeMiB) << 10
        {
            return
        }
        try removeShmem(&document)
        try document.ensure(["devices"])
        let fragment = XMLFragment(
            "shmem", [("name", backendID)],
            [XMLFragment("model", [("type", "ivshmem-plain")]), XMLFragment("size", [("unit", "M")], text: String(sizeMiB))])
        try document.insert(fragment, into: ["devices"])
    }

    static func removeShmem(_ document: inout DomainDocument) throws {
        while let shmem = document.element(["devices"])?.children("shmem").first(where: { $0.attribute("name") == backendID }) {
            try document.remove(shmem)
        }
    }
}
