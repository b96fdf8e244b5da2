import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// Realistic password hashes (sha512crypt, yescrypt) from random bytes.
enum Hashes {
    static let alphabet = Array("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    static func random(_ count: Int) -> String { String((0..<count).map { _ in alphabet.randomElement()! }) }
    static func sha512() -> String { "$6$\(random(16))$\(random(86))" }
    static func yescrypt() -> String { "$y$j9T$\(random(22))$\(random(43))" }

    /// Second fields of shadow/gshadow lines that are real hashes (not empty, !, *, !!, x or a lock prefix alone).
    static func fields(_ text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count > 1 else { return nil }
            let field = String(fields[1])
            return ["", "!", "*", "!!", "x", "!*"].contains(field) ? nil : field
        }
    }

    /// Gives the root /etc/shadow and /etc/gshadow, with hashes for root, every uid >= 1000 and the
    /// last user, and for the root and input groups. Returns every hash written.
    static func addShadow(_ root: TempRoot) throws -> [String] {
        let passwd = root.read("/etc/passwd") ?? ""
        let users = passwd.split(separator: "\n").map { $0.split(separator: ":", omittingEmptySubsequences: false) }
        var shadow = ""
        for (index, user) in users.enumerated() where user.count > 2 {
            let uid = Int(user[2]) ?? 0
            let hash = user[0] == "root" ? sha512() : uid >= 1000 || index == users.count - 1 ? yescrypt() : "!*"
            shadow += "\(user[0]):\(hash):19700:0:99999:7:::\n"
        }
        let group = root.read("/etc/group") ?? ""
        var gshadow = ""
        for line in group.split(separator: "\n") {
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count > 3 else { continue }
            let hash = fields[0] == "root" || fields[0] == "input" ? sha512() : "!"
            gshadow += "\(fields[0]):\(hash)::\(fields[3])\n"
        }
        try root.write("/etc/shadow", shadow, mode: 0o640)
        try root.write("/etc/gshadow", gshadow, mode: 0o640)
        return fields(shadow) + fields(gshadow)
    }

    /// The secrets (or a recognisable tail of one) found in a text.
    static func leaked(_ secrets: [String], in text: String) -> [String] {
        secrets.filter { text.contains($0) || text.contains(String($0.suffix(16))) }
    }
}

extension SafetyTests {
    /// §6: password hashes never reach any output; history still keeps the real bytes. Existing
    /// users named as the QEMU user are left as they are, and the run says so.
    @Suite struct Secrets {
        @Test(arguments: Safety.families)
        func passwordHashesNeverReachTheOutput(_ family: Safety.Family) throws {
            let recipe = Safety.recipe
            let a = try TempRoot(copying: family.name)
            let b = try TempRoot(copying: family.name)
            let written = try Hashes.addShadow(a)
            var secrets = written
            try b.write("/etc/shadow", a.read("/etc/shadow")!, mode: 0o640)
            try b.write("/etc/gshadow", a.read("/etc/gshadow")!, mode: 0o640)
            try #require(secrets.count >= 3, "\(family): hashes in the copy's shadow and gshadow")

            var outputs: [(command: String, run: Measured, expected: Int32)] = []
            func run(_ name: String, _ root: TempRoot, _ arguments: [String], expect: Int32 = 0) throws {
                outputs.append((name, try CLI.measure(arguments + ["--root", root.path]), expect))
            }
            try run("plan", a, ["plan", recipe] + family.vars)
            try run("plan --json", a, ["plan", recipe, "--json"] + family.vars)
            try run("apply", a, ["apply", recipe] + family.vars)
            try run("apply --json", b, ["apply", recipe, "--json"] + family.vars)
            try run("show 1", a, ["show", "1"])
            try run("show 1 --json", b, ["show", "1", "--json"])
            try run("history", a, ["history"])
            try run("history --json", b, ["history", "--json"])

            // A hand edit of a hash after the apply: rollback refuses with the diff of /etc/shadow.
            let edited = Hashes.sha512()
            secrets.append(edited)
            for root in [a, b] {
                let shadow = root.read("/etc/shadow")!
                let rootHash = Hashes.fields(String(shadow.split(separator: "\n").first { $0.hasPrefix("root:") }!))[0]
                try root.write("/etc/shadow", shadow.replacingOccurrences(of: rootHash, with: edited), mode: 0o640)
            }
            try run("rollback (drift)", a, ["rollback"], expect: 3)
            try run("rollback --json (drift)", b, ["rollback", "--json"], expect: 3)

            for output in outputs {
                #expect(output.run.status == output.expected, "\(family): \(output.command) exits \(output.expected): \(output.run)")
                let leaks = Hashes.leaked(secrets, in: output.run.output)
                #expect(leaks.count == 0, "\(family): `\(output.command)` printed \(leaks.count) password hash(es) from /etc/shadow or /etc/gshadow")
            }
            // History keeps the real bytes (a rollback must restore them).
            let shadow = try Safety.git(b.historyPath, ["show", "main:etc/shadow"])
            let gshadow = try Safety.git(b.historyPath, ["show", "main:etc/gshadow"])
            #expect(shadow.status == 0 && gshadow.status == 0, "\(family): history holds /etc/shadow and /etc/gshadow")
            for secret in written {
                #expect(shadow.stdout.contains(secret) || gshadow.stdout.contains(secret), "\(family): history keeps the hash \(secret.prefix(6))… byte for byte")
            }
        }

        /// An account that exists already is not rewritten into a system user: its passwd and
        /// shadow lines stay byte for byte, it joins `input`, and a notice says so.
        @Test(arguments: ["alex", "root"])
        func existingUserAsQemuUserIsKeptAndTold(_ user: String) throws {
            let root = try TempRoot(copying: "arch")
            var passwd = root.read("/etc/passwd")!
            if !passwd.contains("\nalex:") {
                passwd += "alex:x:1000:1000:Alex:/home/alex:/bin/bash\n"
                try root.write("/etc/passwd", passwd)
            }
            var group = root.read("/etc/group")!
            if !group.contains("\nalex:") {
                group += "alex:x:1000:\n"
                try root.write("/etc/group", group)
            }
            try root.write("/etc/shadow", "root:\(Hashes.sha512()):19700:0:99999:7:::\nalex:\(Hashes.yescrypt()):19700:0:99999:7:::\n", mode: 0o640)
            func line(_ file: String) -> String? {
                root.read(file)?.split(separator: "\n").first { $0.hasPrefix(user + ":") }.map(String.init)
            }
            let passwdLine = line("/etc/passwd"), shadowLine = line("/etc/shadow")

            let apply = try CLI.measure(["apply", Safety.recipe, "--root", root.path, "--json", "--var", "qemu_user=\(user)"])
            try #require(apply.status == 0, "apply --var qemu_user=\(user): \(apply)")
            #expect(line("/etc/passwd") == passwdLine, "\(user)'s passwd line is kept byte for byte")
            #expect(line("/etc/shadow") == shadowLine, "\(user)'s shadow line is kept byte for byte")
            let input = root.read("/etc/group")!.split(separator: "\n").first { $0.hasPrefix("input:") }.map(String.init) ?? ""
            let members = input.split(separator: ":", omittingEmptySubsequences: false).last?.split(separator: ",").map(String.init) ?? []
            #expect(members.contains(user), "\(user) is added to group input: \(input)")

            let document = try CLI.json(apply.stdout)
            var notices = (document["notices"] as? [[String: Any]] ?? [])
            for step in document["steps"] as? [[String: Any]] ?? [] { notices += step["notices"] as? [[String: Any]] ?? [] }
            // From the system.user step itself (other steps' notices may say "root" for other reasons).
            let messages = notices.filter { $0["step"] as? String == "vm-user" }.compactMap { $0["message"] as? String }
            #expect(messages.contains { $0.contains(user) }, "a notice of step vm-user tells that the existing account \(user) is used as it is: \(messages)")
        }
    }
}
