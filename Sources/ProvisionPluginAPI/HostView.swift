import Foundation

/// The read-only view plugins plan against: the host as it is, overlaid with the changes that
/// earlier steps of the same run have planned. Paths are host paths ("/etc/default/grub").
public final class HostView {
    /// Not for plugins: reading the root past the overlay would plan against a stale host.
    let root: HostRoot
    /// Facts gathered from the root, plus what earlier steps exported.
    public private(set) var facts: Value
    /// Which step exported each top-level fact ("select-gpu (gpu.select)"), for errors.
    private var exporters: [String: String] = [:]
    private var overlay: [String: FileState] = [:]
    private var cache: [String: FileState] = [:]

    public init(root: HostRoot, facts: Value) {
        self.root = root
        self.facts = facts
    }

    /// The root as it is, with its facts: for commands that only read (`provision devices`).
    public convenience init(root: HostRoot) throws {
        self.init(root: root, facts: try Facts.gather(root))
    }

    public var isLiveHost: Bool { root.isLiveHost }

    /// Where a host path is on this machine: for handlers that run on the host (`virsh define`
    /// takes the real file) and for messages.
    public func realPath(_ hostPath: String) -> String { root.real(hostPath) }

    /// The state of a path, symlinks resolved inside the root.
    public func file(_ path: String) throws -> FileState {
        try state(resolved: try root.resolve(try HostRoot.normalize(path)))
    }

    /// The text of a file, nil when absent; an error when it is not UTF-8.
    public func text(_ path: String) throws -> String? {
        guard let data = try file(path).content else { return nil }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ProvisionError(.invalidInput, "\(path) is not UTF-8 text")
        }
        return text
    }

    public func exists(_ path: String) -> Bool { (try? file(path).exists) ?? false }

    /// Whether anything (file, directory, device, sysfs attribute) is at the path, without reading
    /// it: some sysfs files (a device's `rom`) may not be read casually.
    public func entryExists(_ path: String) -> Bool {
        guard let resolved = try? root.resolve(HostRoot.normalize(path)) else { return false }
        return root.status(resolved) != nil
    }

    /// The last component of a symlink's target ("nvidia" for …/drivers/nvidia), or nil.
    public func linkName(_ path: String) -> String? {
        guard let normalized = try? HostRoot.normalize(path) else { return nil }
        let parent = (normalized as NSString).deletingLastPathComponent
        guard let resolvedParent = try? root.resolve(parent) else { return nil }
        let link = (resolvedParent == "/" ? "" : resolvedParent) + "/" + (normalized as NSString).lastPathComponent
        guard let target = root.linkTarget(link) else { return nil }
        return (target as NSString).lastPathComponent
    }

    /// Whether a directory exists (overlay files count as making their directory exist).
    public func isDirectory(_ path: String) -> Bool {
        guard let resolved = try? root.resolve(path) else { return false }
        if root.isDirectory(resolved) { return true }
        return overlay.contains { $0.key.hasPrefix(resolved + "/") && $0.value.exists }
    }

    /// Names in a directory, including files earlier steps will create and minus those they remove.
    public func list(_ directory: String) -> [String] {
        guard let resolved = try? root.resolve(directory) else { return [] }
        var names = Set(root.list(resolved))
        for (path, state) in overlay where (path as NSString).deletingLastPathComponent == resolved {
            let name = (path as NSString).lastPathComponent
            if state.exists { names.insert(name) } else { names.remove(name) }
        }
        return names.sorted()
    }

    /// Numeric id of a user in the root's own /etc/passwd (not this machine's).
    public func userID(_ name: String) throws -> UInt32 { try lookupID(name, in: "/etc/passwd", what: "user") }

    /// Numeric id of a group in the root's own /etc/group.
    public func groupID(_ name: String) throws -> UInt32 { try lookupID(name, in: "/etc/group", what: "group") }

    /// Name for a numeric id in the root's own passwd/group file, if listed.
    public func name(forID id: UInt32, inFile file: String) -> String? {
        guard let text = try? self.text(file) else { return id == 0 ? "root" : nil }
        for line in text.split(byte: "\n") {
            let fields = line.split(byte: ":", omittingEmptySubsequences: false)
            if fields.count > 2, UInt32(fields[2]) == id { return fields[0] }
        }
        return id == 0 ? "root" : nil
    }

    private func lookupID(_ name: String, in file: String, what: String) throws -> UInt32 {
        if let numeric = UInt32(name) { return numeric }
        if let text = try text(file) {
            for line in text.split(byte: "\n") {
                let fields = line.split(byte: ":", omittingEmptySubsequences: false)
                if fields.count > 2, fields[0] == name, let id = UInt32(fields[2]) { return id }
            }
        }
        if name == "root" { return 0 }
        throw ProvisionError(.invalidInput, "no \(what) \"\(name)\" in \(file) of the root")
    }

    func state(resolved: String) throws -> FileState {
        if let planned = overlay[resolved] { return planned }
        if let known = cache[resolved] { return known }
        let current = try root.readState(resolved)
        cache[resolved] = current
        return current
    }

    /// The state on disk, ignoring the overlay.
    func original(resolved: String) throws -> FileState {
        if let known = cache[resolved] { return known }
        let current = try root.readState(resolved)
        cache[resolved] = current
        return current
    }

    func stage(_ resolved: String, _ state: FileState) { overlay[resolved] = state }

    /// The same view (overlay and all) with other facts: to plan a step again without what an
    /// earlier step exported (`--step`'s dependencies).
    func copy(facts: Value) -> HostView {
        let view = HostView(root: root, facts: facts)
        view.overlay = overlay
        view.cache = cache
        view.exporters = exporters
        return view
    }

    func export(_ values: [String: Value], by step: String) {
        guard case .map(var entries) = facts else { return }
        for (key, value) in values {
            entries[key] = value
            exporters[key] = step
        }
        facts = .map(entries)
    }

    /// The fact an earlier step exported, decoded into the exporting module's type; nil when no
    /// step exported it. A missing field or one of the wrong type is an error naming the step that
    /// exported it, never a silent default.
    public func fact<F: StepFact>(_ type: F.Type) throws -> F? {
        guard let value = facts.lookup([Substring(F.key)]) else { return nil }
        do {
            return try value.decode(F.self)
        } catch {
            let source = exporters[F.key].map { "step \($0)" } ?? "the root's facts"
            throw ProvisionError(.invalidInput, "facts.\(F.key) exported by \(source) is not a \(F.self): \(Value.describe(error))")
        }
    }
}
