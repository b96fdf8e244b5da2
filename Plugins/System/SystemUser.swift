import Foundation
import ProvisionPluginAPI

/// `system.user`: a system account for QEMU (the guide's `useradd -r -M -d / -s nologin` plus the
/// input group), written into the root's own passwd, group, shadow and gshadow through the core, so
/// it is planned, diffed, recorded and rolled back like any other file. Existing lines are kept
/// byte for byte. An existing system account changes only in the fields the recipe gives; an
/// existing login account (a person's, or root) is only added to the groups, never turned into a
/// system account.
public struct SystemUser: StepPlugin {
    public init() {}
    public let kind = "system.user"
    public let summary =
        "Ensure a system user (and its group) exists, in the given supplementary groups (an existing login user only joins the groups)."
    public let options: [OptionSpec] = [
        OptionSpec("name", .string, required: true, help: "user name"),
        OptionSpec(
            "uid", .int, default: "new user: the highest free id below 1000; existing user: its own",
            help: "user id, 1 to 4294967294 (and id of its own group when free)"),
        OptionSpec("groups", .stringList, help: "supplementary groups that must exist already, e.g. [input]"),
        OptionSpec("home", .string, default: "new user: /; existing user: its own", help: "home directory (not created)"),
        OptionSpec(
            "shell", .string, default: "new user: the root's nologin, as its system users spell it; existing user: its own",
            help: "login shell"),
        OptionSpec("comment", .string, default: "new user: empty; existing user: its own", help: "the GECOS field"),
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

    /// The uids a recipe may ask for: 0 is root, 4294967295 is (uid_t)-1, which chown and
    /// setresuid read as "leave unchanged".
    static let uidRange = 1...4_294_967_294

    /// An account a person logs in with (or root), as opposed to a system account: uid 0, a uid of
    /// 1000 or more, or a shell other than nologin/false. system.user only ever adds such an
    /// account to groups.
    static func isLoginAccount(uid: Int, shell: String) -> Bool {
        uid == 0 || uid >= 1000 || hasLoginShell(shell)
    }

    static func hasLoginShell(_ shell: String) -> Bool {
        let base = shell.split(separator: "/").last.map(String.init) ?? ""
        return base != "nologin" && base != "false"
    }

    /// An id field of the root's passwd or group, or an error naming the file and line.
    static func idField(_ table: Table, _ index: Int, field: Int, file: String, what: String) throws -> Int {
        let fields = table.lines[index]
        let column = fields.prefix(field).reduce(1) { $0 + $1.unicodeScalars.count + 1 }
        let location = SourceLocation(file: file, line: index + 1, column: min(column, fields.joined(separator: ":").unicodeScalars.count + 1))
        guard fields.count > field else {
            throw ProvisionError(.invalidInput, "the line of \(fields[0]) has \(fields.count) fields, too few for a \(what)", at: location)
        }
        guard let id = Int(fields[field]), id >= 0 else {
            throw ProvisionError(.invalidInput, "the \(what) of \(fields[0]) is \"\(fields[field])\", not a number; fix the line by hand", at: location)
        }
        return id
    }

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let host = step.host
        let name = try options.requiredString("name")
        guard name.range(of: "^[a-z_][a-z0-9_-]{0,31}$", options: .regularExpression) != nil else {
            throw options.error("name", "\"\(name)\" is not a valid user name (lower-case letters, digits, _ and -, at most 32)")
        }
        // Only what the recipe gives changes an existing account; the defaults are for new ones.
        let askedUID = try options.int("uid")
        if let askedUID, !Self.uidRange.contains(askedUID) {
            throw options.error(
                "uid", "uid \(askedUID) is out of range: give 1 to 4294967294 (0 is root, 4294967295 is (uid_t)-1), or leave uid out")
        }
        let askedHome = try options.string("home")
        let askedShell = try options.string("shell")
        let askedComment = try options.string("comment")
        for (option, value) in [("home", askedHome), ("shell", askedShell), ("comment", askedComment)]
        where value.map({ $0.contains(":") || $0.contains("\n") }) == true {
            throw options.error(option, "\(option) may not contain : or a line break")
        }
        guard let passwdText = try host.text("/etc/passwd"), let groupText = try host.text("/etc/group") else {
            throw ProvisionError(.invalidInput, "the root has no /etc/passwd or /etc/group", at: options.stepLocation)
        }
        var passwd = Table(passwdText), group = Table(groupText)
        let usedUIDs = passwd.ids(2), usedGIDs = group.ids(2)
        let supplementary = try options.stringList("groups") ?? []
        var notices: [Notice] = []

        let uid: Int
        let gid: Int
        var created = false
        if let index = passwd.index(of: name) {
            let current = try Self.idField(passwd, index, field: 2, file: "/etc/passwd", what: "uid")
            gid = try Self.idField(passwd, index, field: 3, file: "/etc/passwd", what: "gid")
            var line = passwd.lines[index]
            while line.count < 7 { line.append("") }
            if Self.isLoginAccount(uid: current, shell: line[6]) {
                let kind = current == 0 || Self.hasLoginShell(line[6]) ? "an existing login user" : "an existing user outside the system range"
                for (option, now, asked) in [("uid", String(current), askedUID.map(String.init)), ("home", line[5], askedHome), ("shell", line[6], askedShell)] {
                    guard let asked, asked != now else { continue }
                    throw options.error(
                        option,
                        "\(name) is \(kind) (uid \(current)): system.user will not change its \(option) from \(now) to \(asked), "
                            + "which would make it a system account; leave \"\(option)\" out, or choose another user name")
                }
                let added = supplementary.isEmpty ? "added to no group" : "only added to group \(supplementary.joined(separator: ", "))"
                notices.append(Notice(.info, "\(name) is \(kind) (uid \(current)): \(added); its home, shell and comment are left as they are"))
                uid = current
            } else {
                if let askedUID, askedUID != current, usedUIDs.contains(askedUID) {
                    throw options.error("uid", "uid \(askedUID) belongs to another user in /etc/passwd")
                }
                uid = askedUID ?? current
                line[2] = String(uid)
                if let askedComment { line[4] = askedComment }
                if let askedHome { line[5] = askedHome }
                if let askedShell { line[6] = askedShell }
                passwd.lines[index] = line
            }
        } else {
            if let askedUID {
                guard !usedUIDs.contains(askedUID) else { throw options.error("uid", "uid \(askedUID) belongs to another user in /etc/passwd") }
                uid = askedUID
            } else {
                guard let free = (100..<1000).reversed().first(where: { !usedUIDs.contains($0) }) else {
                    throw ProvisionError(.invalidInput, "no free system uid below 1000", at: options.stepLocation)
                }
                uid = free
            }
            if let index = group.index(of: name) {
                gid = try Self.idField(group, index, field: 2, file: "/etc/group", what: "gid")
            } else {
                gid = !usedGIDs.contains(uid) ? uid : ((100..<1000).reversed().first { !usedGIDs.contains($0) } ?? uid)
                group.append([name, "x", String(gid), ""])
            }
            passwd.append([name, "x", String(uid), String(gid), askedComment ?? "", askedHome ?? "/", askedShell ?? Self.nologin(host)])
            created = true
        }
        for name_ in supplementary where !group.addMember(name, to: name_, field: 3) {
            throw options.error("groups", "group \"\(name_)\" does not exist in the root's /etc/group")
        }

        var files: [(String, String, String)] = [("/etc/passwd", passwdText, passwd.text), ("/etc/group", groupText, group.text)]
        if created, let shadowText = try host.text("/etc/shadow") {
            var shadow = Table(shadowText)
            if shadow.index(of: name) == nil { shadow.append([name, "!", "", "", "", "", "", "", ""]) }
            files.append(("/etc/shadow", shadowText, shadow.text))
        }
        if let gshadowText = try host.text("/etc/gshadow") {
            var gshadow = Table(gshadowText)
            if created && gshadow.index(of: name) == nil { gshadow.append([name, "!", "", ""]) }
            for name_ in supplementary { _ = gshadow.addMember(name, to: name_, field: 3) }
            files.append(("/etc/gshadow", gshadowText, gshadow.text))
        }
        let desired = files.filter { $0.1 != $0.2 }.map { DesiredFile(path: $0.0, state: .present(Data($0.2.utf8))) }
        return StepPlan(
            files: desired, notices: notices, exports: ["user": .map(["name": .string(name), "uid": .int(uid), "gid": .int(gid)])])
    }
}

/// The system steps.
public let systemSteps: [any StepPlugin] = [SystemUser()]
