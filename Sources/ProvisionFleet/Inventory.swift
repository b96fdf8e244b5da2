import Foundation
import ProvisionCore

/// A group of an inventory, as Ansible builds it: direct hosts and child groups in the order the
/// file names them, the variables written in the inventory file itself, and what orders group
/// variables (`depth`: the longest path from `all`; `ansible_group_priority`, default 1).
public struct InventoryGroup: Sendable {
    public let name: String
    public internal(set) var hosts: [String] = []
    public internal(set) var children: [String] = []
    public internal(set) var parents: [String] = []
    /// Variables given in the inventory file (`vars:` or `[NAME:vars]`), not from group_vars/.
    public internal(set) var vars: [String: InventoryValue] = [:]
    public internal(set) var priority = 1
    public internal(set) var depth = 0
    /// `hosts` as a set: membership checks stay O(1) for groups of many thousand hosts.
    var hostSet: Set<String> = []

    init(name: String) { self.name = name }
}

/// An Ansible inventory (YAML or INI) with its `group_vars/` and `host_vars/` directories, resolved
/// as Ansible resolves them, so a fleet run sees the hosts and variables `ansible-inventory --list`
/// shows for the same file.
///
/// Variable precedence, lowest first (Ansible's default `VARIABLE_PRECEDENCE`; each later source
/// replaces a variable as a whole, maps included, as with `hash_behaviour = replace`):
///  1. `all`'s variables in the inventory file;
///  2. every other group the host belongs to (directly or through `children`), in the inventory
///     file, in the order (depth, `ansible_group_priority`, name): a child group is deeper than its
///     parent, so child beats parent, and between groups of one depth the later name wins;
///  3. `group_vars/all` (file or directory);
///  4. `group_vars/GROUP` for the same groups in the same order;
///  5. the host's variables in the inventory file (inline `k=v`, `hosts: NAME: {…}`, the `:PORT` of
///     its name as `ansible_port`);
///  6. `host_vars/HOST`.
/// So any group_vars file beats any variable written in the inventory file for a group, and a host's
/// own variables beat every group's. Inside a `group_vars/NAME/` directory the files are read in
/// name order, later ones winning. Jinja templates (`{{ … }}`) are kept as text, not rendered.
public struct Inventory: Sendable {
    public enum Format: String, Sendable {
        case yaml, ini
    }

    /// The inventory file as given.
    public let path: String
    public let format: Format
    /// Every group by name, `all` and `ungrouped` included.
    public private(set) var groups: [String: InventoryGroup] = [:]
    /// Group names in the order they were declared (`all`, `ungrouped` first).
    public private(set) var groupNames: [String] = []
    /// Host names in the order they first appear.
    public private(set) var hostNames: [String] = []
    /// Each host's own variables from the inventory file.
    public private(set) var inlineHostVars: [String: [String: InventoryValue]] = [:]
    /// Variables from `group_vars/NAME…` and `host_vars/NAME…`, merged per name (files in order).
    public private(set) var groupVarsFiles: [String: [String: InventoryValue]] = [:]
    public private(set) var hostVarsFiles: [String: [String: InventoryValue]] = [:]
    /// The groups each host was put in directly, in order.
    var directGroups: [String: [String]] = [:]
    /// What Ansible would warn about (skipped keys, a group and a host of one name…).
    public private(set) var warnings: [String] = []

    /// Inventory files and vars files are read whole; anything larger is refused.
    public static let maxFileBytes = 16 << 20

    init(path: String, format: Format) {
        self.path = path
        self.format = format
        for name in ["all", "ungrouped"] { addGroup(name) }
        try! addChild("all", "ungrouped")
    }

    // MARK: loading

    /// Reads an inventory file and the `group_vars/` and `host_vars/` beside it. The format comes
    /// from the name as Ansible's plugins decide it: `.yml`, `.yaml` and `.json` are YAML; a name
    /// without an extension is YAML when it parses as a YAML mapping, otherwise INI; any other
    /// name is INI.
    public static func load(path: String) throws -> Inventory {
        let text = try readText(path, what: "inventory")
        let ext = (path as NSString).pathExtension.lowercased()
        var inventory: Inventory
        if ["yml", "yaml", "json"].contains(ext) {
            inventory = try InventoryYAMLReader(file: path).read(text)
        } else if ext.isEmpty, let yaml = try? InventoryYAMLReader(file: path).read(text) {
            inventory = yaml
        } else {
            inventory = try InventoryINIReader(file: path).read(text)
        }
        try inventory.reconcile()
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().resolvingSymlinksInPath().path
        try inventory.loadVarsDirectories(in: directory)
        return inventory
    }

    /// An inventory from text (tests, stdin); `directory` is where group_vars/ and host_vars/ are
    /// looked for (none when nil).
    public static func parse(_ text: String, format: Format, file: String, varsDirectory directory: String? = nil) throws -> Inventory {
        var inventory: Inventory
        switch format {
        case .yaml: inventory = try InventoryYAMLReader(file: file).read(text)
        case .ini: inventory = try InventoryINIReader(file: file).read(text)
        }
        try inventory.reconcile()
        if let directory { try inventory.loadVarsDirectories(in: directory) }
        return inventory
    }

    static func readText(_ path: String, what: String) throws -> String {
        // Bounded, never blocking on a FIFO, regular files only: as the core reads local files.
        let data = try Fetch.localFile(path, maxBytes: maxFileBytes)
        guard let text = String(data: data, encoding: .utf8) else {
            throw ProvisionError(.invalidInput, "\(what) \(path) is not UTF-8 text")
        }
        if text.hasPrefix("$ANSIBLE_VAULT") {
            throw ProvisionError(
                .invalidInput, "\(what) \(path) is encrypted with ansible-vault, which provision does not read",
                at: SourceLocation(file: path, line: 1, column: 1))
        }
        return text
    }

    // MARK: building (the operations Ansible's parsers use)

    mutating func addGroup(_ name: String) {
        guard groups[name] == nil else { return }
        groups[name] = InventoryGroup(name: name)
        groupNames.append(name)
    }

    /// Adds the host if new (its port, if any, becomes `ansible_port` then) and makes it a member of `group`.
    mutating func addHost(_ name: String, group: String?, port: Int?) {
        if inlineHostVars[name] == nil {
            hostNames.append(name)
            inlineHostVars[name] = port.map { ["ansible_port": .int($0)] } ?? [:]
        }
        if let group, groups[group] != nil, groups[group]!.hostSet.insert(name).inserted {
            groups[group]!.hosts.append(name)
            directGroups[name, default: []].append(group)
        }
    }

    mutating func setGroupVariable(_ group: String, _ name: String, _ value: InventoryValue) throws {
        if name == "ansible_group_priority" {
            switch value {
            case .int(let number): groups[group]?.priority = number
            case .string(let text) where Int(text.trimmingCharacters(in: .whitespaces)) != nil:
                groups[group]?.priority = Int(text.trimmingCharacters(in: .whitespaces))!
            default: throw InventoryIssue("ansible_group_priority of group \(group) must be a number, found \(value)")
            }
            return
        }
        groups[group]?.vars[name] = value
    }

    mutating func setHostVariable(_ host: String, _ name: String, _ value: InventoryValue) {
        inlineHostVars[host, default: [:]][name] = value
    }

    /// `child` (a group, or else a host) under `group`; a loop of groups is an error.
    mutating func addChild(_ group: String, _ child: String) throws {
        guard groups[group] != nil else { throw InventoryIssue("\(group) is not a known group") }
        if groups[child] != nil {
            guard group != child else { throw InventoryIssue("group \(group) cannot be its own child") }
            guard !groups[group]!.children.contains(child) else { return }
            if ancestors(of: group).contains(child) {
                throw InventoryIssue("adding group \(child) as a child of \(group) makes a loop of groups")
            }
            groups[group]!.children.append(child)
            if !groups[child]!.parents.contains(group) { groups[child]!.parents.append(group) }
        } else if inlineHostVars[child] != nil {
            addHost(child, group: group, port: nil)
        } else {
            throw InventoryIssue("\(child) is not a known host nor group")
        }
    }

    mutating func addWarning(_ message: String) { warnings.append(message) }

    /// Ansible's reconcile step: every group hangs under `all`; `ungrouped` holds exactly the hosts
    /// in no other group; depths are set.
    mutating func reconcile() throws {
        for name in groupNames where name != "all" && groups[name]!.parents.isEmpty {
            try addChild("all", name)
        }
        for host in hostNames {
            let direct = directGroups[host] ?? []
            let mine = Set(direct).union(direct.flatMap(ancestors(of:)))
            if mine.contains("ungrouped") {
                if !mine.subtracting(["all", "ungrouped"]).isEmpty {
                    groups["ungrouped"]!.hosts.removeAll { $0 == host }
                    groups["ungrouped"]!.hostSet.remove(host)
                    directGroups[host]?.removeAll { $0 == "ungrouped" }
                }
            } else if mine.isEmpty || mine == ["all"] {
                addHost(host, group: "ungrouped", port: nil)
            }
        }
        var depth: [String: Int] = ["all": 0]
        func longest(_ name: String, _ seen: Set<String>) -> Int {
            if let known = depth[name] { return known }
            let parents = groups[name]!.parents.filter { !seen.contains($0) }
            let value = (parents.map { longest($0, seen.union([name])) }.max() ?? -1) + 1
            depth[name] = value
            return value
        }
        for name in groupNames { groups[name]!.depth = longest(name, []) }
        for name in Set(groupNames).intersection(hostNames).sorted() {
            warnings.append("found both a group and a host named \(name)")
        }
    }

    // MARK: vars directories

    mutating func loadVarsDirectories(in directory: String) throws {
        for (subdirectory, names, isGroup) in [("group_vars", groupNames, true), ("host_vars", hostNames, false)] {
            let base = directory + "/" + subdirectory
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: base, isDirectory: &isDirectory) else { continue }
            guard isDirectory.boolValue else {
                warnings.append("\(base) is not a directory: skipped")
                continue
            }
            for name in names where !name.hasPrefix("/") {
                var merged: [String: InventoryValue] = [:]
                var found = false
                for file in Self.varsFiles(base, name) {
                    let text = try Self.readText(file, what: "vars file")
                    guard let value = try InventoryYAMLReader(file: file).readVarsFile(text) else { continue }
                    found = true
                    merged.merge(value) { _, new in new }
                }
                guard found else { continue }
                if isGroup { groupVarsFiles[name] = merged } else { hostVarsFiles[name] = merged }
            }
        }
    }

    /// Ansible's lookup: the first of NAME, NAME.yml, NAME.yaml, NAME.json that exists; a directory
    /// stands for every file below it (name order, depth first; hidden files, `~` backups and other
    /// extensions skipped).
    static func varsFiles(_ base: String, _ name: String) -> [String] {
        let extensions = [".yml", ".yaml", ".json"]
        for candidate in [name] + extensions.map({ name + $0 }) {
            let path = base + "/" + candidate
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            return isDirectory.boolValue ? filesBelow(path, extensions: extensions) : [path]
        }
        return []
    }

    private static func filesBelow(_ directory: String, extensions: [String]) -> [String] {
        let entries = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
        var found: [String] = []
        for entry in entries where !entry.hasPrefix(".") && !entry.hasSuffix("~") {
            let path = directory + "/" + entry
            let ext = (entry as NSString).pathExtension.isEmpty ? "" : "." + (entry as NSString).pathExtension
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if isDirectory.boolValue {
                if ext.isEmpty { found += filesBelow(path, extensions: extensions) }
            } else if ext.isEmpty || extensions.contains(ext) {
                found.append(path)
            }
        }
        return found
    }

    // MARK: queries

    /// Every group a host is in, directly or through children, `all` included.
    public func groups(of host: String) -> [String] {
        let direct = directGroups[host] ?? []
        var result: [String] = []
        for name in direct + direct.flatMap(ancestors(of:)) where !result.contains(name) { result.append(name) }
        if !result.contains("all") && inlineHostVars[host] != nil { result.append("all") }
        return result
    }

    /// The hosts of a group and of its descendants (the group's own first, then its children's,
    /// level by level), each once.
    public func hosts(in group: String) -> [String] {
        guard groups[group] != nil else { return [] }
        var order = [group]
        var seen: Set<String> = [group]
        var level = [group]
        while !level.isEmpty {
            var next: [String] = []
            for name in level {
                for child in groups[name]!.children where seen.insert(child).inserted {
                    next.append(child)
                    order.append(child)
                }
            }
            level = next
        }
        var result: [String] = []
        var taken: Set<String> = []
        for name in order {
            for host in groups[name]!.hosts where taken.insert(host).inserted { result.append(host) }
        }
        return result
    }

    /// A host's variables after every source is merged, in the precedence described on the type.
    public func variables(of host: String) -> [String: InventoryValue] {
        let memberships = groups(of: host).filter { $0 != "all" }.compactMap { groups[$0] }.sorted { a, b in
            if a.depth != b.depth { return a.depth < b.depth }
            if a.priority != b.priority { return a.priority < b.priority }
            return a.name.unicodeScalars.lexicographicallyPrecedes(b.name.unicodeScalars)
        }
        var result = groups["all"]?.vars ?? [:]
        for group in memberships { result.merge(group.vars) { _, new in new } }
        result.merge(groupVarsFiles["all"] ?? [:]) { _, new in new }
        for group in memberships { result.merge(groupVarsFiles[group.name] ?? [:]) { _, new in new } }
        result.merge(inlineHostVars[host] ?? [:]) { _, new in new }
        result.merge(hostVarsFiles[host] ?? [:]) { _, new in new }
        return result
    }

    func ancestors(of group: String) -> [String] {
        var result: [String] = []
        var pending = groups[group]?.parents ?? []
        while let next = pending.first {
            pending.removeFirst()
            guard !result.contains(next) else { continue }
            result.append(next)
            pending += groups[next]?.parents ?? []
        }
        return result
    }
}

/// A problem found while building the inventory; the reader adds the file and line.
struct InventoryIssue: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
