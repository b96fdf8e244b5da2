import CSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The one door to the host's file system. Every read and write goes through here, so no path can
/// resolve outside the root: symlinks are followed as if the process were chrooted into it, and the
/// I/O itself happens relative to a descriptor of the root that refuses any symlink on the way
/// (openat2 `RESOLVE_IN_ROOT`), so a directory swapped for a symlink between planning and writing
/// makes the write fail instead of landing outside.
public struct HostRoot: Sendable {
    /// Absolute, symlink-free path of the root directory on this machine ("/" for the live host).
    public let path: String
    private let handle: RootHandle
    /// Device and inode of the root directory: a writer opening it again checks it got the same one.
    public let identity: (device: UInt64, inode: UInt64)

    /// The largest file provision reads: configuration files are small, and a 2 GB file where one
    /// is expected is a mistake or an attack, not something to load into memory.
    public static let maximumFileSize = 32 << 20

    public init(_ rootPath: String) throws {
        guard let resolved = realpath(rootPath, nil) else {
            throw ProvisionError.io("cannot open root", rootPath)
        }
        defer { free(resolved) }
        let canonical = String(cString: resolved)
        let fd = open(canonical, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ProvisionError(.io, "root \(rootPath) is not a directory") }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw ProvisionError.io("cannot open root", rootPath)
        }
        path = canonical
        handle = RootHandle(fd: fd)
        identity = (UInt64(info.st_dev), UInt64(info.st_ino))
    }

    public var isLiveHost: Bool { path == "/" }

    /// Checks a host path as written in a recipe: absolute, no `.`/`..` components, no NUL.
    /// Returns it with duplicate slashes removed.
    public static func normalize(_ hostPath: String, at location: SourceLocation? = nil) throws -> String {
        guard hostPath.hasPrefix("/") else {
            throw ProvisionError(.invalidInput, "path \"\(hostPath)\" must be absolute", at: location)
        }
        guard !hostPath.contains("\0") else {
            throw ProvisionError(.invalidInput, "path contains a NUL byte", at: location)
        }
        let parts = hostPath.split(byte: "/")
        if parts.contains(where: { $0 == ".." || $0 == "." }) {
            throw ProvisionError(
                .pathEscape, "path \"\(hostPath)\" has a \".\" or \"..\" component; write it without them",
                at: location)
        }
        guard !parts.isEmpty else {
            throw ProvisionError(.invalidInput, "path \"\(hostPath)\" names the root itself", at: location)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// A path read back from history, a journal or a run record: untrusted input (a root may be
    /// handed over by someone else). It must be a normalized absolute path that still resolves to
    /// itself inside the root; a symlink put in its way since it was recorded is refused rather
    /// than followed.
    public func recorded(_ hostPath: String, in source: String) throws -> String {
        let normalized: String
        do {
            normalized = try Self.normalize(hostPath)
        } catch let error as ProvisionError {
            throw ProvisionError(.pathEscape, "\(source) names \"\(hostPath)\", which is not a plain path inside the root (\(error.message)); refusing it, nothing changed")
        }
        guard normalized == hostPath else {
            throw ProvisionError(.pathEscape, "\(source) names \"\(hostPath)\", which is not in the form provision records; refusing it, nothing changed")
        }
        let resolved: String
        do {
            resolved = try resolve(normalized)
        } catch let error as ProvisionError {
            throw ProvisionError(.pathEscape, "\(source) names \(normalized): \(error.message); refusing it, nothing changed")
        }
        guard resolved == normalized else {
            throw ProvisionError(
                .pathEscape,
                "\(source) names \(normalized), but in \(path) it now resolves through a symlink to \(resolved) (inside the root); "
                    + "something changed the directories since it was recorded. Refusing to write through it, nothing changed")
        }
        return normalized
    }

    /// The path of a host path on this machine (no symlink resolution): for messages and for
    /// tools that run on the host and need a real path (virsh, lsinitramfs).
    public func real(_ hostPath: String) -> String {
        path == "/" ? hostPath : path + hostPath
    }

    /// Host path relative to the root, as history stores it ("etc/default/grub").
    public static func relative(_ hostPath: String) -> String { String(hostPath.dropFirst()) }

    /// Resolves every symlink in `hostPath` as if chrooted into the root. Absolute link targets
    /// start again at the root; a relative target whose `..` climbs above the root is refused, as
    /// is a chain of more than 40 links. The last component need not exist.
    public func resolve(_ hostPath: String) throws -> String {
        var pending = Array(hostPath.split(byte: "/").reversed())
        var resolved: [String] = []
        var hops = 0
        var missing = false
        while let part = pending.popLast() {
            if part == "." || part.isEmpty { continue }
            if part == ".." {
                guard !resolved.isEmpty else {
                    throw ProvisionError(.pathEscape, "path \(hostPath) escapes the root \(path) through a symlink")
                }
                resolved.removeLast()
                continue
            }
            resolved.append(part)
            if missing { continue }
            let relative = resolved.joined(separator: "/")
            var info = stat()
            if fstatat(handle.fd, relative, &info, AT_SYMLINK_NOFOLLOW) != 0 {
                missing = true
                continue
            }
            guard (info.st_mode & S_IFMT) == S_IFLNK else { continue }
            hops += 1
            guard hops <= 40 else {
                throw ProvisionError(.pathEscape, "too many symlinks resolving \(hostPath) (a loop?)")
            }
            let target = try readLink(relative)
            resolved.removeLast()
            if target.hasPrefix("/") { resolved.removeAll() }
            pending.append(contentsOf: target.split(byte: "/").reversed())
        }
        return "/" + resolved.joined(separator: "/")
    }

    /// The target of a symlink at a resolved host path (its text, not followed), nil if none.
    public func linkTarget(_ resolvedPath: String) -> String? {
        try? readLink(Self.relative(resolvedPath))
    }

    private func readLink(_ relative: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlinkat(handle.fd, relative, &buffer, buffer.count - 1)
        guard count >= 0 else { throw ProvisionError.io("cannot read symlink", "/" + relative) }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: descriptors beneath the root

    /// Opens a resolved host path beneath the root; any symlink on the way fails (ELOOP).
    func openBeneath(_ resolvedPath: String, _ flags: Int32, mode: mode_t = 0) -> Int32 {
        provision_open_beneath(handle.fd, Self.relative(resolvedPath), flags, mode)
    }

    package static func split(_ resolvedPath: String) -> (directory: String, name: String) {
        let bytes = resolvedPath.utf8
        guard resolvedPath != "/", let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else {
            return ("/", resolvedPath)
        }
        let directory = String(decoding: bytes[..<slash], as: UTF8.self)
        return (directory.isEmpty ? "/" : directory, String(decoding: bytes[bytes.index(after: slash)...], as: UTF8.self))
    }

    // MARK: reading

    /// Current state of a resolved host path. Anything but a regular file or nothing is refused,
    /// without blocking (a FIFO is never opened for a read that waits) and without reading a file
    /// larger than `maximumFileSize`.
    public func readState(_ resolvedPath: String) throws -> FileState {
        let fd = openBeneath(resolvedPath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR { return .absent }
            if errno == ELOOP || errno == EXDEV {
                throw ProvisionError(.pathEscape, "\(resolvedPath) is or passes through a symlink that changed while being read; provision does not follow it")
            }
            throw ProvisionError.io("cannot open", resolvedPath)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ProvisionError.io("cannot stat", resolvedPath) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ProvisionError(
                .invalidInput,
                "\(resolvedPath) is \(Self.describeType(info.st_mode)), not a regular file; provision reads and writes regular files only")
        }
        let data = try Self.readAll(fd, size: Int(info.st_size), what: resolvedPath)
        return .file(data, FileMeta(mode: UInt32(info.st_mode), uid: info.st_uid, gid: info.st_gid))
    }

    /// Reads an open regular file whole, refusing more than `maximumFileSize` bytes (st_size may
    /// be 0 for /proc files, so the cap holds while reading too).
    package static func readAll(_ fd: Int32, size: Int, what: String, limit: Int = maximumFileSize) throws -> Data {
        func tooLarge(_ bytes: Int) -> ProvisionError {
            ProvisionError(
                .invalidInput,
                "\(what) is \(bytes) bytes or more; provision reads files of at most \(limit >= 1 << 20 ? "\(limit >> 20) MiB" : "\(limit) bytes") (is it really a configuration file?)")
        }
        guard size <= limit else { throw tooLarge(size) }
        var data = Data(count: max(size, 4096))
        var offset = 0
        while true {
            if offset == data.count {
                guard data.count < limit + 1 else { throw tooLarge(offset) }
                data.count = min(data.count * 2, limit + 1)
            }
            let got = data.withUnsafeMutableBytes { buffer in
                read(fd, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw ProvisionError.io("cannot read", what)
            }
            if got == 0 { break }
            offset += got
            if offset > limit { throw tooLarge(offset) }
        }
        data.count = offset
        return data
    }

    package static func describeType(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFDIR: return "a directory"
        case S_IFLNK: return "a symlink"
        default: return "not a regular file"
        }
    }

    /// File type and metadata of a resolved host path without following a final symlink, nil
    /// when nothing is there (or a symlink is on the way).
    public func status(_ resolvedPath: String) -> stat? {
        let fd = openBeneath(resolvedPath, provision_O_PATH | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        return fstat(fd, &info) == 0 ? info : nil
    }

    /// True when a directory exists at the resolved host path.
    public func isDirectory(_ resolvedPath: String) -> Bool {
        guard let info = status(resolvedPath) else { return false }
        return (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Names in a directory (resolved host path), sorted; empty when it does not exist.
    public func list(_ resolvedPath: String) -> [String] {
        let fd = openBeneath(resolvedPath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        guard fd >= 0 else { return [] }
        guard let dir = fdopendir(fd) else {
            close(fd)
            return []
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Parent directories of `resolvedPath` that do not exist yet, outermost first.
    public func missingParents(of resolvedPath: String) -> [String] {
        Self.ancestors(of: resolvedPath).prefix { $0 != "/" && !isDirectory($0) }.reversed()
    }

    /// The directories above a resolved path, nearest first, ending with "/".
    package static func ancestors(of resolvedPath: String) -> [String] {
        var directories: [String] = []
        var current = resolvedPath
        repeat {
            current = split(current).directory
            directories.append(current)
        } while current != "/"
        return directories
    }
}

/// The root directory's descriptor, shared by copies of a `HostRoot` and closed with the last.
private final class RootHandle: Sendable {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}
