import Foundation
import ProvisionTestSupport
import Testing

@testable import ProvisionCore

/// The pieces under the audit commands: hashing, dates, who, line mapping, bundles and archives.
@Suite struct AuditCoreTests {
    @Test func sha256InPiecesMatchesSha256sum() throws {
        let temp = try TempRoot()
        for size in [0, 1, 55, 56, 63, 64, 65, 119, 1000, 100_003] {
            let data = Data((0..<size).map { _ in UInt8.random(in: 0...255) })
            let file = temp.real("/data-\(size)")
            try data.write(to: URL(fileURLWithPath: file))
            let expected = String(try ProcessRunner.run(["sha256sum", file]).output.prefix(64))
            #expect(SHA256.hex(data) == expected, "\(size) bytes")
            var hasher = SHA256.Hasher()
            var offset = 0
            while offset < size {
                let piece = min(Int.random(in: 1...97), size - offset)
                hasher.update(data[offset..<(offset + piece)])
                offset += piece
            }
            #expect(hasher.finalize() == expected, "\(size) bytes in pieces")
        }
    }

    @Test func datesAsAuditorsWriteThem() throws {
        let day = try #require(AuditDate.parse("2026-11-27"))
        #expect(ISO8601DateFormatter().string(from: day) == "2026-11-27T00:00:00Z")
        #expect(ISO8601DateFormatter().string(from: try #require(AuditDate.parse("2026-11-27", endOfDay: true))) == "2026-11-27T23:59:59Z")
        #expect(AuditDate.parse("2026-11-27T14:05:00Z") == AuditDate.parse("2026-11-27T16:05:00+02:00"))
        #expect(AuditDate.parse("2026-11-27T14:05:00") == AuditDate.parse("2026-11-27T14:05:00Z"), "no zone is UTC")
        #expect(AuditDate.parse("2026-11-27T14:05:00.250Z") != nil)
        for bad in ["yesterday", "2026-13-45", "27/11/2026", ""] { #expect(AuditDate.parse(bad) == nil, "\(bad)") }
    }

    @Test func theInvokerIsThePersonNotTheAccount() throws {
        let temp = try TempRoot()
        try temp.write("/loginuid", "0")
        try temp.write("/unset", "4294967295")
        let sudo = Invoker.current(environment: ["SUDO_USER": "bob", "SUDO_UID": "1001"], loginUIDFile: temp.real("/loginuid"))
        #expect(sudo.user == "bob" && sudo.uid == 1001 && sudo.source == .sudo)
        let login = Invoker.current(environment: [:], loginUIDFile: temp.real("/loginuid"))
        #expect(login.user == "root" && login.uid == 0 && login.source == .loginuid)
        let none = Invoker.current(environment: ["SUDO_USER": "two words"], loginUIDFile: temp.real("/unset"))
        #expect(none.source == .effective && none.uid == geteuid())
        #expect(!Invoker.isPlainName("eve\nProvision-Run: 9") && !Invoker.isPlainName("a<b>") && Invoker.isPlainName("jane.doe-2"))
    }

    @Test func lineMappingFollowsGitsHunks() {
        func map(_ old: String, _ new: String) -> [Int?] { Diff.lineMapping(old: Data(old.utf8), new: Data(new.utf8)) }
        #expect(map("a\nb\nc\n", "a\nb\nc\n") == [0, 1, 2])
        #expect(map("a\nb\nc\n", "a\nX\nc\n") == [0, nil, 2])
        #expect(map("a\nb\nc\n", "X\na\nb\nc\nY\n") == [nil, 0, 1, 2, nil])
        #expect(map("a\nb\nc\n", "a\nc\n") == [0, 2])
        #expect(map("a\nb", "a\nb\nc") == [0, nil, nil], "a last line without newline changes when one is added")
        #expect(map("", "x\n") == [nil])
        #expect(Diff.lines(Data("a\nb".utf8)).count == 2 && Diff.lines(Data("a\n".utf8)).count == 1 && Diff.lines(Data()).isEmpty)
    }

    /// The bundle checker against bundles git itself wrote: accepted whole, refused damaged.
    @Test func bundlesFromGitAreVerifiedAndDamageIsFound() throws {
        let temp = try TempRoot()
        let work = temp.real("/work")
        func git(_ arguments: [String]) throws -> String {
            let result = try ProcessRunner.run(["git", "-C", work, "-c", "user.name=t", "-c", "user.email=t@t"] + arguments)
            guard result.status == 0 else { throw ProvisionError(.io, "git \(arguments): \(result.output)") }
            return result.output
        }
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        _ = try git(["init", "-q", "-b", "main"])
        for index in 1...3 {
            try temp.write("/work/etc/file\(index)", String(repeating: "line \(index)\n", count: 50))
            _ = try git(["add", "-A"])
            _ = try git(["commit", "-q", "-m", "commit \(index)"])
        }
        _ = try git(["tag", "run/3"])
        _ = try git(["bundle", "create", temp.real("/all.bundle"), "--all"])
        _ = try git(["bundle", "create", temp.real("/tail.bundle"), "main~1..main"])
        let all = try Data(contentsOf: URL(fileURLWithPath: temp.real("/all.bundle")))
        let summary = try GitBundle.verify(all)
        #expect(summary.commits == 3 && summary.prerequisites.isEmpty)
        #expect(Set(summary.references.map(\.name)) == ["HEAD", "refs/heads/main", "refs/tags/run/3"])
        let tail = try GitBundle.verify(try Data(contentsOf: URL(fileURLWithPath: temp.real("/tail.bundle"))))
        #expect(tail.prerequisites.count == 1 && tail.commits == 1)

        let header = try GitBundle.header(all)
        for offset in [header.packOffset + 12, header.packOffset + (all.count - header.packOffset) / 2, all.count - 1] {
            var damaged = all
            damaged[offset] ^= 0x40
            #expect(throws: ProvisionError.self, "a flipped byte at \(offset) of the pack") { try GitBundle.verify(damaged) }
        }
        #expect(throws: ProvisionError.self) { try GitBundle.verify(all.prefix(all.count - 200)) }
        #expect(throws: ProvisionError.self) { try GitBundle.verify(Data("# v3 git bundle\n".utf8) + all.dropFirst(16)) }
        var badRef = all
        badRef[header.packOffset - 3] = UInt8(ascii: " ")
        #expect(throws: ProvisionError.self, "a reference name with a space") { try GitBundle.verify(badRef) }
    }

    @Test func tarLayoutAccountsForEveryByte() throws {
        let temp = try TempRoot()
        let file = temp.real("/a.tar")
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let writer = try TarWriter(fd: fd, compression: .plain, mtime: Date(timeIntervalSince1970: 0))
        try writer.add("x/one", Data("hello\n".utf8))
        try writer.add("x/two", Data(repeating: 7, count: 1000))
        try writer.finish()
        close(fd)
        let tar = try Data(contentsOf: URL(fileURLWithPath: file))
        #expect(ArchiveLayout.tarProblem(tar) == nil)
        #expect(try ProcessRunner.run(["tar", "-tf", file]).output == "x/one\nx/two\n", "plain tar reads it")
        var padding = tar
        padding[512 + 10] = 1
        #expect(ArchiveLayout.tarProblem(padding)?.contains("padding") == true)
        var header = tar
        header[3] ^= 1
        #expect(ArchiveLayout.tarProblem(header)?.contains("checksum") == true)
        var trailing = tar
        trailing[tar.count - 1] = 1
        #expect(ArchiveLayout.tarProblem(trailing) != nil)
        #expect(ArchiveLayout.tarProblem(tar.prefix(tar.count - 1024)) != nil, "no end marker")
        #expect(CRC32.checksum(Data("123456789".utf8)) == 0xCBF4_3926)
    }
}
