import Foundation
import ProvisionCore

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway root directory under /tmp: every test acts on one of these, never on this
/// machine's own /etc.
public final class TempRoot {
    public let path: String

    public init(copying snapshot: String? = nil) throws {
        var template = Array("/tmp/provision-test-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw ProvisionError(.io, "mkdtemp failed")
        }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if let snapshot {
            let result = try ProcessRunner.run(["cp", "-a", Package.path("snapshots/\(snapshot)") + "/.", path])
            guard result.status == 0 else { throw ProvisionError(.io, "cp failed: \(result.output)") }
        }
    }

    deinit { _ = try? ProcessRunner.run(["rm", "-rf", path]) }

    public func real(_ hostPath: String) -> String { path + hostPath }

    public func write(_ hostPath: String, _ text: String, mode: mode_t = 0o644) throws {
        let target = real(hostPath)
        try FileManager.default.createDirectory(
            atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: target))
        chmod(target, mode)
    }

    public func read(_ hostPath: String) -> String? {
        FileManager.default.contents(atPath: real(hostPath)).map { String(decoding: $0, as: UTF8.self) }
    }

    public func exists(_ hostPath: String) -> Bool {
        var info = stat()
        return lstat(real(hostPath), &info) == 0
    }

    /// Every file, directory and link below the root with content, mode and owner, skipping
    /// provision's own state; two equal fingerprints mean byte-identical trees.
    public func fingerprint(excludingHistory: Bool = true) throws -> [String: String] {
        var result: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: path)
        while let relative = enumerator?.nextObject() as? String {
            if excludingHistory && (relative == "var/lib/provision" || relative.hasPrefix("var/lib/provision/")) { continue }
            var info = stat()
            lstat(path + "/" + relative, &info)
            var entry = String(format: "%o %d:%d", info.st_mode, info.st_uid, info.st_gid)
            if (info.st_mode & S_IFMT) == S_IFREG {
                entry += " " + String(decoding: FileManager.default.contents(atPath: path + "/" + relative) ?? Data(), as: UTF8.self)
            } else if (info.st_mode & S_IFMT) == S_IFLNK {
                entry += " -> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: path + "/" + relative)) ?? "")
            }
            result[relative] = entry
        }
        return result
    }

    public var historyPath: String { real("/var/lib/provision/history.git") }

    /// `git` (the CLI, the real consumer of our history) against the root's history.
    public func git(_ arguments: String...) throws -> String {
        let result = try ProcessRunner.run(["git", "--git-dir", historyPath] + arguments)
        guard result.status == 0 else { throw ProvisionError(.io, "git \(arguments) failed: \(result.output)") }
        return result.output
    }
}

public enum Package {
    /// The package root, found from this file's location.
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    public static func path(_ relative: String) -> String { root + "/" + relative }
}

/// Modification time and inode, to prove a file was not rewritten.
public func fileIdentity(_ path: String) -> String {
    var info = stat()
    lstat(path, &info)
    return "\(info.st_ino) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
}
