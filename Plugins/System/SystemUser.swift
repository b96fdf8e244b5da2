import Foundation
import ProvisionCore

/// `system.user`: a system account for QEMU (the guide's `useradd -r -M -d / -s nologin` plus the
/// input group), written into the root's own passwd, group, shadow and gshadow through the core, so
/// it is planned, diffed, recorded and rolled back like any other file. Existing lines are kept
/// byte for byte; a user that exists is brought to the asked uid/home/shell/comment.
public struct SystemUser: StepPlugin {
    public init() {}
    public let kind = "system.user"
    public let summary = "Ensure a system user (and its group) exists, in the given supplementary groups."
    public let options: [OptionSpec] = [
        OptionSpec("name", .string, required: true, help: "user name"),
        OptionSpec("uid", .int, default: "the highest free id below 1000", help: "user id (and id of its own group when free)"),
        OptionSpec("groups", .stringList, help: "supplementary groups that must exist already, e.g. [input]"),
        OptionSpec("home", .string, default: "/", help: "home directory (not created)"),
        OptionSpec("shell", .string, default: "the root's nologin, as its system users spell it", help: "login shell"),
        OptionSpec("comment", .string, default: "", help: "the GECOS field"),
    ]

    struct Table {
        var lines: [[String]]
        var terminated: Bool

        init(_ text: String?) {
            let raw = text ?? ""
            var parts = raw.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            terminated = raw.isEmpty || raw.hasSuffix("\n")
            if raw.hasSuffix("\n") || raw.isEmpty { parts.removeLast() }
            lines = parts.map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
        }

        /// The table as text; a file that lacked a final newline keeps lacking it unless lines were added.
        var text: String { lines.map { $0.joined(separator: ":") }.joined(separator: "\n") + (lines.isEmpty || !terminated ? "" : "\n") }

        mutating func append(_ fields: [String]) {
            lines.append(fields)
            terminated = true
        }

        func index(of name: String) -> Int? { lines.firstIndex { $0.first == name } }

        func ids(_ field: Int) -> Set<Int> { Set(lines.compactMap { $0.count > field ? Int($0[field]) : nil }) }

        mutating func addMember(_ user: String, to group: String, field: Int) -> Bool {
            guard let index = index(of: group) else { return false }
            while lines[index].count <= field { lines[index].append("") }
            var members = lines[index][field].split(separator: ",").map(String.init)
            if !members.contains(user) {
                members.append(user)
                lines[index][field] = members.joined(separator: ",")
            }
            return true
        }
    }

    /// nologin as the root's own system users have it (Arch writes /usr/bin/nologin, Debian
    /// /usr/sbin/nologin, older roots /sbin/nologin), else the first that exists.
    static func nologin(_ host: HostView) -> String {
        let candidates = ["/usr/sbin/nologin", "/usr/bin/nologin", "/sbin/nologin"]
        let passwd = ((try? host.text("/etc/passwd")) ?? nil) ?? ""
        let used = candidates.map { candidate in (candidate, passwd.split(separator: "\n").filter { $0.hasSuffix(":" + candidate) }.count) }
        if let (shell, count) = used.max(by: { $0.1 < $1.1 }), count > 0 { return shell }
        return candidates.first { host.exists($0) } ?? candidates[0]
    }

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let host = step.host
        let name = try options.requiredString("name")
        guard name.range(of: "^[a-z_][a-z0-9_-]{0,31}$", options: .regularExpression) != nil else {
            throw options.error("name", "\"\(name)\" is not a valid user name (lower-case letters, digits, _ and -, at most 32)")
        }
        let home = try options.string("home", default: "/")
        let shell = try options.string("shell") ?? Self.nologin(host)
        let comment = try options.string("comment", default: "")
        for (option, value) in [("home", home), ("shell", shell), ("comment", comment)] where value.contains(":") || value.contains("\n") {
            throw options.error(option, "\(option) may not contain : or a line break")
        }
        guard let passwdText = try host.text("/etc/passwd"), let groupText = try host.text("/etc/group") else {
            throw ProvisionError(.invalidInput, "the root has no /etc/passwd or /etc/group", at: options.stepLocation)
        }
        var passwd = Table(passwdText), group = Table(groupText)
        let usedUIDs = passwd.ids(2), usedGIDs = group.ids(2)

        let uid: Int
        if let index = passwd.index(of: name), let existing = Int(passwd.lines[index][2]) {
            uid = try options.int("uid") ?? existing
        } else if let asked = try options.int("uid") {
            guard !usedUIDs.contains(asked) else { throw options.error("uid", "uid \(asked) belongs to another user in /etc/passwd") }
            uid = asked
        } else {
            guard let free = (100..<1000).reversed().first(where: { !usedUIDs.contains($0) }) else {
                throw ProvisionError(.invalidInput, "no free system uid below 1000", at: options.stepLocation)
            }
            uid = free
        }
        let gid: Int
        if let index = group.index(of: name), let existing = Int(group.lines[index][2]) {
            gid = existing
        } else {
            gid = !usedGIDs.contains(uid) ? uid : ((100..<1000).reversed().first { !usedGIDs.contains($0) } ?? uid)
            group.append([name, "x", String(gid), ""])
        }
        let entry = [name, "x", String(uid), String(gid), comment, home, shell]
        if let index = passwd.index(of: name) {
            var line = passwd.lines[index]
            while line.count < 7 { line.append("") }
            line[2] = entry[2]; line[4] = comment; line[5] = home; line[6] = shell
            passwd.lines[index] = line
        } else {
            passwd.append(entry)
        }
        let supplementary = try options.stringList("groups") ?? []
        for name_ in supplementary where !group.addMember(name, to: name_, field: 3) {
            throw options.error("groups", "group \"\(name_)\" does not exist in the root's /etc/group")
        }

        var files: [(String, String, String)] = [("/etc/passwd", passwdText, passwd.text), ("/etc/group", groupText, group.text)]
        if let shadowText = try host.text("/etc/shadow") {
            var shadow = Table(shadowText)
            if shadow.index(of: name) == nil { shadow.append([name, "!", "", "", "", "", "", "", ""]) }
            files.append(("/etc/shadow", shadowText, shadow.text))
        }
        if let gshadowText = try host.text("/etc/gshadow") {
            var gshadow = Table(gshadowText)
            if gshadow.index(of: name) == nil { gshadow.append([name, "!", "", ""]) }
            for name_ in supplementary { _ = gshadow.addMember(name, to: name_, field: 3) }
            files.append(("/etc/gshadow", gshadowText, gshadow.text))
        }
        let desired = files.filter { $0.1 != $0.2 }.map { DesiredFile(path: $0.0, state: .present(Data($0.2.utf8))) }
        return StepPlan(
            files: desired, exports: ["user": .map(["name": .string(name), "uid": .int(uid), "gid": .int(gid)])])
    }
}

/// The system steps.
public let systemSteps: [any StepPlugin] = [SystemUser()]
