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
        path = canonical
        handle = RootHandle(fd: fd)
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
        let parts = hostPath.split(separator: "/", omittingEmptySubsequences: true)
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
        var pending = Array(hostPath.split(separator: "/").map(String.init).reversed())
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
            pending.append(contentsOf: target.split(separator: "/").map(String.init).reversed())
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

    /// A directory of the root, opened for *at() calls.
    func openDirectory(_ resolvedPath: String) throws -> Int32 {
        let fd = openBeneath(resolvedPath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ELOOP || errno == EXDEV {
                throw ProvisionError(.pathEscape, "\(resolvedPath) changed into a symlink while provision was working on \(path); nothing was written through it")
            }
            throw ProvisionError.io("cannot open directory", resolvedPath)
        }
        return fd
    }

    private static func split(_ resolvedPath: String) -> (directory: String, name: String) {
        let directory = (resolvedPath as NSString).deletingLastPathComponent
        return (directory.isEmpty ? "/" : directory, (resolvedPath as NSString).lastPathComponent)
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
    static func readAll(_ fd: Int32, size: Int, what: String, limit: Int = maximumFileSize) throws -> Data {
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

    static func describeType(_ mode: mode_t) -> String {
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
        var missing: [String] = []
        var current = Self.split(resolvedPath).directory
        while current != "/" && !isDirectory(current) {
            missing.insert(current, at: 0)
            current = Self.split(current).directory
        }
        return missing
    }

    // MARK: writing (the engine's alone)

    /// Creates the missing directories of a resolved host path (mode 0755), each through the
    /// descriptor of its parent.
    func createDirectories(_ resolvedPath: String) throws {
        for directory in missingParents(of: resolvedPath + "/x") {
            let (parent, name) = Self.split(directory)
            let parentFD = try openDirectory(parent)
            defer { close(parentFD) }
            guard mkdirat(parentFD, name, 0o755) == 0 || errno == EEXIST else {
                throw ProvisionError.io("cannot create directory", directory)
            }
            Durability.sync(parentFD)
        }
    }

    /// Replaces (or creates) a file atomically: temp file in the same directory, owner, mode and
    /// extended attributes set, fsync, rename over, fsync the directory. Readers see the old file or
    /// the new one, never a mixture.
    func writeAtomically(_ resolvedPath: String, content: Data, meta: FileMeta) throws {
        let (directory, name) = Self.split(resolvedPath)
        try createDirectories(directory)
        let dirFD = try openDirectory(directory)
        defer { close(dirFD) }
        let (fd, tempName) = try Self.createTemporary(in: dirFD, named: name, what: resolvedPath)
        var committed = false
        defer {
            if !committed { unlinkat(dirFD, tempName, 0) }
        }
        do {
            defer { close(fd) }
            try Self.writeAll(fd, content, what: resolvedPath)
            let old = openat(dirFD, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            if old >= 0 {
                copyExtendedAttributes(from: old, to: fd)
                close(old)
            }
            guard fchown(fd, meta.uid, meta.gid) == 0 else { throw ProvisionError.io("cannot set owner of", resolvedPath) }
            guard fchmod(fd, mode_t(meta.mode)) == 0 else { throw ProvisionError.io("cannot set mode of", resolvedPath) }
            guard Durability.sync(fd) == 0 else { throw ProvisionError.io("cannot sync", resolvedPath) }
        }
        guard renameat(dirFD, tempName, dirFD, name) == 0 else { throw ProvisionError.io("cannot replace", resolvedPath) }
        committed = true
        Durability.sync(dirFD)
    }

    /// A new file `.NAME.provision-XXXXXX` (mode 0600) in an open directory. The pattern is what
    /// `removeOrphans` looks for after a crash.
    static func createTemporary(in dirFD: Int32, named name: String, what: String) throws -> (fd: Int32, name: String) {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        for _ in 0..<100 {
            let suffix = String((0..<6).map { _ in alphabet.randomElement()! })
            let tempName = ".\(name.prefix(200)).provision-\(suffix)"
            let fd = openat(dirFD, tempName, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if fd >= 0 {
                return (fd, tempName)
            }
            guard errno == EEXIST else { break }
        }
        throw ProvisionError.io("cannot create a temporary file next to", what)
    }

    static func writeAll(_ fd: Int32, _ content: Data, what: String) throws {
        try content.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let wrote = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if wrote < 0 {
                    if errno == EINTR { continue }
                    throw ProvisionError.io("cannot write", what)
                }
                offset += wrote
            }
        }
    }

    /// Changes only owner and mode, in place, when the content is already right.
    func setMeta(_ resolvedPath: String, _ meta: FileMeta) throws {
        let fd = openBeneath(resolvedPath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { throw ProvisionError.io("cannot open", resolvedPath) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw ProvisionError(.invalidInput, "\(resolvedPath) is not a regular file")
        }
        guard fchown(fd, meta.uid, meta.gid) == 0 else { throw ProvisionError.io("cannot set owner of", resolvedPath) }
        guard fchmod(fd, mode_t(meta.mode)) == 0 else { throw ProvisionError.io("cannot set mode of", resolvedPath) }
        Durability.sync(fd)
    }

    func remove(_ resolvedPath: String) throws {
        let (directory, name) = Self.split(resolvedPath)
        let dirFD: Int32
        do {
            dirFD = try openDirectory(directory)
        } catch let error as ProvisionError where error.kind == .io && !isDirectory(directory) {
            return  // its directory is gone, so is the file
        }
        defer { close(dirFD) }
        guard unlinkat(dirFD, name, 0) == 0 || errno == ENOENT else { throw ProvisionError.io("cannot remove", resolvedPath) }
        Durability.sync(dirFD)
    }

    /// Removes a directory if it is empty; true when it was removed.
    @discardableResult
    func removeDirectoryIfEmpty(_ resolvedPath: String) -> Bool {
        let (directory, name) = Self.split(resolvedPath)
        guard let dirFD = try? openDirectory(directory) else { return false }
        defer { close(dirFD) }
        guard unlinkat(dirFD, name, AT_REMOVEDIR) == 0 else { return false }
        Durability.sync(dirFD)
        return true
    }

    /// Removes temporary files a killed run left in these directories (`.NAME.provision-XXXXXX`);
    /// returns the host paths removed.
    func removeOrphans(in directories: Set<String>) -> [String] {
        var removed: [String] = []
        for directory in directories.sorted() {
            guard let dirFD = try? openDirectory(directory) else { continue }
            defer { close(dirFD) }
            for name in list(directory) where Self.isTemporaryName(name) {
                var info = stat()
                guard fstatat(dirFD, name, &info, AT_SYMLINK_NOFOLLOW) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
                if unlinkat(dirFD, name, 0) == 0 {
                    removed.append((directory == "/" ? "" : directory) + "/" + name)
                }
            }
            if !removed.isEmpty { Durability.sync(dirFD) }
        }
        return removed
    }

    static func isTemporaryName(_ name: String) -> Bool {
        guard name.hasPrefix("."), let marker = name.range(of: ".provision-", options: .backwards) else { return false }
        let suffix = name[marker.upperBound...]
        return suffix.count == 6 && suffix.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) } && marker.lowerBound > name.index(after: name.startIndex)
    }

    /// Carries SELinux labels, ACLs and other xattrs of the file being replaced over to its
    /// successor. Attributes the file system refuses are skipped: the content still lands.
    private func copyExtendedAttributes(from source: Int32, to fd: Int32) {
        let size = flistxattr(source, nil, 0)
        guard size > 0 else { return }
        var names = [CChar](repeating: 0, count: size)
        let got = flistxattr(source, &names, size)
        guard got > 0 else { return }
        var start = 0
        for index in 0..<got where names[index] == 0 {
            let name = String(decoding: names[start..<index].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            start = index + 1
            let valueSize = fgetxattr(source, name, nil, 0)
            guard valueSize >= 0 else { continue }
            var value = [UInt8](repeating: 0, count: max(valueSize, 1))
            let read = fgetxattr(source, name, &value, valueSize)
            guard read >= 0 else { continue }
            _ = fsetxattr(fd, name, value, read, 0)
        }
    }
}

/// The root directory's descriptor, shared by copies of a `HostRoot` and closed with the last.
private final class RootHandle: Sendable {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}
