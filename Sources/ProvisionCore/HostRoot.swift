import CSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The one door to the host's file system. Every read and write goes through here, so no path can
/// resolve outside the root: symlinks are followed as if the process were chrooted into it.
public struct HostRoot: Sendable {
    /// Absolute, symlink-free path of the root directory on this machine ("/" for the live host).
    public let path: String

    public init(_ rootPath: String) throws {
        guard let resolved = realpath(rootPath, nil) else {
            throw ProvisionError.io("cannot open root", rootPath)
        }
        defer { free(resolved) }
        let canonical = String(cString: resolved)
        var info = stat()
        guard stat(canonical, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw ProvisionError(.io, "root \(rootPath) is not a directory")
        }
        path = canonical
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

    /// The path of a host path on this machine (no symlink resolution).
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
            let candidate = "/" + resolved.joined(separator: "/")
            var info = stat()
            if lstat(real(candidate), &info) != 0 {
                missing = true
                continue
            }
            guard (info.st_mode & S_IFMT) == S_IFLNK else { continue }
            hops += 1
            guard hops <= 40 else {
                throw ProvisionError(.pathEscape, "too many symlinks resolving \(hostPath) (a loop?)")
            }
            let target = try readLink(real(candidate))
            resolved.removeLast()
            if target.hasPrefix("/") { resolved.removeAll() }
            pending.append(contentsOf: target.split(separator: "/").map(String.init).reversed())
        }
        return "/" + resolved.joined(separator: "/")
    }

    private func readLink(_ realPath: String) throws -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(realPath, &buffer, buffer.count - 1)
        guard count >= 0 else { throw ProvisionError.io("cannot read symlink", realPath) }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Current state of a resolved host path. Anything but a regular file or nothing is refused.
    public func readState(_ resolvedPath: String) throws -> FileState {
        let fd = open(real(resolvedPath), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT || errno == ENOTDIR { return .absent }
            if errno == ELOOP {
                throw ProvisionError(.io, "\(resolvedPath) changed into a symlink while being read")
            }
            throw ProvisionError.io("cannot open", resolvedPath)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ProvisionError.io("cannot stat", resolvedPath) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ProvisionError(.io, "\(resolvedPath) is not a regular file; provision manages regular files only")
        }
        var data = Data(count: Int(info.st_size))
        var offset = 0
        while true {
            if offset == data.count { data.count += 4096 }
            let got = data.withUnsafeMutableBytes { buffer in
                read(fd, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw ProvisionError.io("cannot read", resolvedPath)
            }
            if got == 0 { break }
            offset += got
        }
        data.count = offset
        return .file(data, FileMeta(mode: UInt32(info.st_mode), uid: info.st_uid, gid: info.st_gid))
    }

    /// True when a directory exists at the resolved host path.
    public func isDirectory(_ resolvedPath: String) -> Bool {
        var info = stat()
        return stat(real(resolvedPath), &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Names in a directory (resolved host path), sorted; empty when it does not exist.
    public func list(_ resolvedPath: String) -> [String] {
        guard let dir = opendir(real(resolvedPath)) else { return [] }
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
        var current = (resolvedPath as NSString).deletingLastPathComponent
        while current != "/" && !isDirectory(current) {
            missing.insert(current, at: 0)
            current = (current as NSString).deletingLastPathComponent
        }
        return missing
    }

    /// Replaces (or creates) a file atomically: temp file in the same directory, owner, mode and
    /// extended attributes set, fsync, rename over, fsync the directory. Readers see the old file or
    /// the new one, never a mixture.
    public func writeAtomically(_ resolvedPath: String, content: Data, meta: FileMeta) throws {
        for dir in missingParents(of: resolvedPath) {
            guard mkdir(real(dir), 0o755) == 0 || errno == EEXIST else {
                throw ProvisionError.io("cannot create directory", dir)
            }
        }
        let target = real(resolvedPath)
        let directory = (target as NSString).deletingLastPathComponent
        let name = (target as NSString).lastPathComponent
        var template = Array("\(directory)/.\(name).provision-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { provision_mkostemp($0.baseAddress!, O_CLOEXEC) }
        guard fd >= 0 else { throw ProvisionError.io("cannot create a temporary file next to", resolvedPath) }
        let tempPath = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var committed = false
        defer {
            if !committed { unlink(tempPath) }
        }
        do {
            defer { close(fd) }
            try content.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let wrote = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if wrote < 0 {
                        if errno == EINTR { continue }
                        throw ProvisionError.io("cannot write", resolvedPath)
                    }
                    offset += wrote
                }
            }
            copyExtendedAttributes(from: target, to: fd)
            guard fchown(fd, meta.uid, meta.gid) == 0 else { throw ProvisionError.io("cannot set owner of", resolvedPath) }
            guard fchmod(fd, mode_t(meta.mode)) == 0 else { throw ProvisionError.io("cannot set mode of", resolvedPath) }
            guard fsync(fd) == 0 else { throw ProvisionError.io("cannot sync", resolvedPath) }
        }
        guard rename(tempPath, target) == 0 else { throw ProvisionError.io("cannot replace", resolvedPath) }
        committed = true
        syncDirectory(directory)
    }

    /// Changes only owner and mode, in place, when the content is already right.
    public func setMeta(_ resolvedPath: String, _ meta: FileMeta) throws {
        let target = real(resolvedPath)
        guard lchown(target, meta.uid, meta.gid) == 0 else { throw ProvisionError.io("cannot set owner of", resolvedPath) }
        guard chmod(target, mode_t(meta.mode)) == 0 else { throw ProvisionError.io("cannot set mode of", resolvedPath) }
    }

    public func remove(_ resolvedPath: String) throws {
        let target = real(resolvedPath)
        guard unlink(target) == 0 || errno == ENOENT else { throw ProvisionError.io("cannot remove", resolvedPath) }
        syncDirectory((target as NSString).deletingLastPathComponent)
    }

    /// Removes a directory if it is empty; true when it was removed.
    @discardableResult
    public func removeDirectoryIfEmpty(_ resolvedPath: String) -> Bool {
        rmdir(real(resolvedPath)) == 0
    }

    private func syncDirectory(_ realDirectory: String) {
        let fd = open(realDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// Carries SELinux labels, ACLs and other xattrs of the file being replaced over to its
    /// successor. Attributes the file system refuses are skipped: the content still lands.
    private func copyExtendedAttributes(from source: String, to fd: Int32) {
        let size = listxattr(source, nil, 0)
        guard size > 0 else { return }
        var names = [CChar](repeating: 0, count: size)
        let got = listxattr(source, &names, size)
        guard got > 0 else { return }
        var start = 0
        for index in 0..<got where names[index] == 0 {
            let name = String(decoding: names[start..<index].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            start = index + 1
            let valueSize = getxattr(source, name, nil, 0)
            guard valueSize >= 0 else { continue }
            var value = [UInt8](repeating: 0, count: max(valueSize, 1))
            let read = getxattr(source, name, &value, valueSize)
            guard read >= 0 else { continue }
            _ = fsetxattr(fd, name, value, read, 0)
        }
    }
}
