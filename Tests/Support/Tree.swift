import Foundation
import ProvisionCore

#if canImport(Glibc)
import Glibc
#endif

/// A directory tree walked with lstat/opendir only: symlinks are never followed (a hostile root
/// cannot lead the walk outside), FIFOs and devices are never opened, and a huge file is described
/// by size and identity instead of being read.
public enum Tree {
    public struct Entry: Sendable, Equatable {
        public var type: mode_t
        public var mode: mode_t
        public var uid: uid_t
        public var gid: gid_t
        /// Content hash of a regular file, target of a symlink, "" otherwise.
        public var content: String
        public var size: Int

        public var isDirectory: Bool { type == S_IFDIR }
        public var isFile: Bool { type == S_IFREG }
    }

    /// Files above this size are fingerprinted by size, inode and mtime, not read.
    public static let hashLimit = 64 << 20

    /// Relative path -> entry for everything below `root` (the root itself excluded).
    /// `excluding` names relative paths whose whole subtree is skipped.
    public static func entries(_ root: String, excluding: [String] = []) -> [String: Entry] {
        var result: [String: Entry] = [:]
        func walk(_ relative: String) {
            let directory = relative.isEmpty ? root : root + "/" + relative
            guard let handle = opendir(directory) else { return }
            var names: [String] = []
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
                }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(handle)
            for name in names.sorted() {
                let child = relative.isEmpty ? name : relative + "/" + name
                if excluding.contains(where: { child == $0 || child.hasPrefix($0 + "/") }) { continue }
                let full = root + "/" + child
                var info = stat()
                guard lstat(full, &info) == 0 else { continue }
                let type = info.st_mode & S_IFMT
                var content = ""
                if type == S_IFREG {
                    if Int(info.st_size) > hashLimit {
                        content = "size \(info.st_size) ino \(info.st_ino) mtime \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
                    } else {
                        content = SHA256.hex(readFile(full) ?? Data("<unreadable>".utf8))
                    }
                } else if type == S_IFLNK {
                    content = "-> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: full)) ?? "?")
                }
                result[child] = Entry(
                    type: type, mode: info.st_mode & 0o7777, uid: info.st_uid, gid: info.st_gid, content: content,
                    size: Int(info.st_size))
                if type == S_IFDIR { walk(child) }
            }
        }
        walk("")
        return result
    }

    /// A comparable fingerprint (type, mode, owner, content) of everything below `root`.
    public static func fingerprint(_ root: String, excluding: [String] = []) -> [String: String] {
        entries(root, excluding: excluding).mapValues { entry in
            // A directory's size is file-system noise; its listing is compared through its children.
            String(format: "%o %o %d:%d ", entry.type, entry.mode, entry.uid, entry.gid) + entry.content
        }
    }

    /// The host part of a root: everything but provision's own state.
    public static func hostFingerprint(_ root: String) -> [String: String] {
        fingerprint(root, excluding: ["var/lib/provision"])
    }

    /// Paths that differ between two fingerprints, as short lines ("+ added", "- missing",
    /// "~ changed (content, mode 644 -> 600, owner)").
    public static func differences(_ expected: [String: String], _ actual: [String: String], limit: Int = 12) -> String {
        func fields(_ entry: String) -> [Substring] { entry.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false) }
        var lines: [String] = []
        for key in Set(expected.keys).union(actual.keys).sorted() {
            switch (expected[key], actual[key]) {
            case (nil, _?): lines.append("+ \(key)")
            case (_?, nil): lines.append("- \(key)")
            case (let then?, let now?) where then != now:
                let a = fields(then), b = fields(now)
                var what: [String] = []
                if a.count == 4 && b.count == 4 {
                    if a[0] != b[0] { what.append("type") }
                    if a[1] != b[1] { what.append("mode \(a[1]) -> \(b[1])") }
                    if a[2] != b[2] { what.append("owner \(a[2]) -> \(b[2])") }
                    if a[3] != b[3] { what.append("content") }
                }
                lines.append("~ \(key) (\(what.joined(separator: ", ")))")
            default: break
            }
        }
        if lines.isEmpty { return "no differences" }
        return lines.prefix(limit).joined(separator: "; ") + (lines.count > limit ? "; … \(lines.count - limit) more" : "")
    }

    /// Relative paths below `root` whose last component satisfies `predicate` (symlinks not followed).
    public static func find(_ root: String, _ predicate: (String) -> Bool) -> [String] {
        entries(root).keys.filter { predicate(($0 as NSString).lastPathComponent) }.sorted()
    }

    /// The whole file, or nil. Reads with read(2) so a FIFO must never be passed here.
    public static func readFile(_ path: String) -> Data? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = read(fd, &buffer, buffer.count)
            if got < 0 && errno == EINTR { continue }
            if got <= 0 { break }
            data.append(contentsOf: buffer[0..<got])
        }
        return data
    }

    public static func mode(_ path: String) -> mode_t? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }

    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// `cp -a SOURCE/. DESTINATION` (owners, modes, links kept).
    public static func copy(_ source: String, to destination: String) throws {
        let result = try ProcessRunner.run(["cp", "-a", source + "/.", destination])
        guard result.status == 0 else { throw ProvisionError(.io, "cp -a \(source) \(destination) failed: \(result.output)") }
    }
}

/// A temporary directory that is not a root: canaries outside the root, logs, mount points.
public final class TempDirectory: @unchecked Sendable {
    public let path: String

    public init(_ prefix: String = "provision-outside") throws {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw ProvisionError(.io, "mkdtemp failed")
        }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func file(_ name: String) -> String { path + "/" + name }

    public func write(_ name: String, _ text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: file(name)))
    }

    deinit { _ = try? ProcessRunner.run(["rm", "-rf", "--one-file-system", path]) }
}
