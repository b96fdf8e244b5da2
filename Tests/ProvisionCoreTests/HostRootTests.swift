import Foundation
import CSystem
@testable import ProvisionCore
import ProvisionTestSupport
import Testing

@Suite struct HostRootTests {
    @Test func relativeDotDotInRecipePathIsRefused() throws {
        #expect(throws: ProvisionError.self) { try HostRoot.normalize("/etc/../../etc/passwd") }
        #expect(throws: ProvisionError.self) { try HostRoot.normalize("etc/passwd") }
        #expect(try HostRoot.normalize("//etc//default/grub") == "/etc/default/grub")
    }

    @Test func symlinkClimbingAboveRootIsRefused() throws {
        let temp = try TempRoot()
        try FileManager.default.createDirectory(atPath: temp.real("/etc"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: temp.real("/etc/evil"), withDestinationPath: "../../../../tmp/outside")
        let root = try HostRoot(temp.path)
        #expect(throws: ProvisionError.self) { try root.resolve("/etc/evil") }
    }

    @Test func symlinkChainClimbingAboveRootIsRefused() throws {
        let temp = try TempRoot()
        try FileManager.default.createDirectory(atPath: temp.real("/etc/a"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: temp.real("/etc/first"), withDestinationPath: "a/second")
        try FileManager.default.createSymbolicLink(atPath: temp.real("/etc/a/second"), withDestinationPath: "../../../..")
        let root = try HostRoot(temp.path)
        #expect(throws: ProvisionError.self) { try root.resolve("/etc/first/passwd") }
    }

    @Test func absoluteSymlinkResolvesInsideRootNeverOnThisMachine() throws {
        let temp = try TempRoot()
        try FileManager.default.createDirectory(atPath: temp.real("/etc"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: temp.real("/etc/hostile"), withDestinationPath: "/etc/passwd")
        let root = try HostRoot(temp.path)
        #expect(try root.resolve("/etc/hostile") == "/etc/passwd")
        #expect(try root.readState(try root.resolve("/etc/hostile")) == .absent)
    }

    /// A combining mark after "/" makes one Character of the two, but the kernel still splits
    /// there: so must the root (otherwise `etc` below would be looked up through, not resolved).
    @Test func pathsSplitAtTheSlashByteAsTheKernelDoes() throws {
        let temp = try TempRoot()
        try FileManager.default.createDirectory(atPath: temp.real("/elsewhere"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: temp.real("/etc"), withDestinationPath: "/elsewhere")
        try temp.write("/elsewhere/\u{301}conf", "x\n")
        let root = try HostRoot(temp.path)
        #expect(try root.resolve("/etc/\u{301}conf") == "/elsewhere/\u{301}conf")
        #expect(try HostRoot.normalize("/etc//\u{301}conf") == "/etc/\u{301}conf")
        #expect(HostRoot.split("/etc/\u{301}conf") == ("/etc", "\u{301}conf"))
        #expect("a\r\nb\n".split(byte: "\n", omittingEmptySubsequences: false) == ["a\r", "b", ""])
    }

    @Test func symlinkLoopIsRefused() throws {
        let temp = try TempRoot()
        try FileManager.default.createDirectory(atPath: temp.real("/etc"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: temp.real("/etc/a"), withDestinationPath: "b")
        try FileManager.default.createSymbolicLink(atPath: temp.real("/etc/b"), withDestinationPath: "a")
        let root = try HostRoot(temp.path)
        #expect(throws: ProvisionError.self) { try root.resolve("/etc/a") }
    }

    @Test func atomicWriteKeepsOwnerModeAndXattrs() throws {
        let temp = try TempRoot()
        try temp.write("/etc/conf", "old\n", mode: 0o640)
        chown(temp.real("/etc/conf"), 1000, 1000)
        let attribute = setxattr(temp.real("/etc/conf"), "user.provision-test", "kept", 4, 0) == 0
        let root = try HostRoot(temp.path)
        let state = try root.readState("/etc/conf")
        try RootWriter(root).writeAtomically("/etc/conf", content: Data("new\n".utf8), meta: state.meta!)
        #expect(temp.read("/etc/conf") == "new\n")
        var info = stat()
        stat(temp.real("/etc/conf"), &info)
        #expect(info.st_mode & 0o7777 == 0o640)
        #expect(info.st_uid == 1000 && info.st_gid == 1000)
        if attribute {
            var value = [UInt8](repeating: 0, count: 8)
            #expect(getxattr(temp.real("/etc/conf"), "user.provision-test", &value, 8) == 4)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: temp.real("/etc")) == ["conf"])
    }
}
