import CSystem
import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// The writing half of the door to the host's file system, and the engine's alone: plugin modules
/// import ProvisionPluginAPI, which has no way to write (the access-control half of "plugins are
/// pure"). It opens the root again and checks it is the directory `HostRoot` holds; then every
/// write goes through that descriptor with openat2 `RESOLVE_IN_ROOT`, so a directory swapped for a
/// symlink between planning and writing makes the write fail instead of leaving the root.
struct RootWriter: Sendable {
    let root: HostRoot
    private let handle: Descriptor

    init(_ root: HostRoot) throws {
        let fd = open(root.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ProvisionError.io("cannot open root", root.path) }
        var info = stat()
        guard fstat(fd, &info) == 0, UInt64(info.st_dev) == root.identity.device, UInt64(info.st_ino) == root.identity.inode else {
            close(fd)
            throw ProvisionError(.pathEscape, "the root \(root.path) was replaced while provision was opening it; nothing was written")
        }
        self.root = root
        handle = Descriptor(fd)
    }

    /// Opens a resolved host path beneath the root; any symlink on the way fails (ELOOP).
    func openBeneath(_ resolvedPath: String, _ flags: Int32, mode: mode_t = 0) -> Int32 {
        provision_open_beneath(handle.fd, HostRoot.relative(resolvedPath), flags, mode)
    }

    /// A directory of the root, opened for *at() calls.
    func openDirectory(_ resolvedPath: String) throws -> Int32 {
        let fd = openBeneath(resolvedPath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ELOOP || errno == EXDEV {
                throw ProvisionError(.pathEscape, "\(resolvedPath) changed into a symlink while provision was working on \(root.path); nothing was written through it")
            }
            throw ProvisionError.io("cannot open directory", resolvedPath)
        }
        return fd
    }

    /// Creates the missing directories of a resolved host path (mode 0755), each through the
    /// descriptor of its parent. Without `sync` the caller makes them durable (a batch's syncfs).
    func createDirectories(_ resolvedPath: String, sync: Bool = true) throws {
        for directory in root.missingParents(of: resolvedPath + "/x") {
            let (parent, name) = HostRoot.split(directory)
            let parentFD = try openDirectory(parent)
            defer { close(parentFD) }
            guard mkdirat(parentFD, name, 0o755) == 0 || errno == EEXIST else {
                throw ProvisionError.io("cannot create directory", directory)
            }
            if sync { Durability.sync(parentFD) }
        }
    }

    /// Replaces (or creates) a file atomically: temp file in the same directory, owner, mode and
    /// extended attributes set, fsync, rename over, fsync the directory. Readers see the old file or
    /// the new one, never a mixture.
    func writeAtomically(_ resolvedPath: String, content: Data, meta: FileMeta) throws {
        let staged = try stage(resolvedPath, content: content, meta: meta, sync: true)
        try publish(staged)
        Durability.sync(staged.directory.fd)
    }

    /// A new content in its temporary file beside the file it is to replace (`stage`).
    struct Staged: Sendable {
        let path: String
        let directory: Descriptor
        let temporary: String
        let name: String
    }

    /// The first half of an atomic replacement: the content written to a temporary file in the
    /// target's directory, with the owner, mode and extended attributes the file will have. Not
    /// synced unless `sync`: a batch is made durable by one `syncFileSystems` before `publish`
    /// renames each file into place, instead of an fsync per file and per directory.
    func stage(_ resolvedPath: String, content: Data, meta: FileMeta, sync: Bool = false) throws -> Staged {
        let (directory, name) = HostRoot.split(resolvedPath)
        try createDirectories(directory, sync: sync)
        let dirFD = Descriptor(try openDirectory(directory))
        let (fd, tempName) = try Self.createTemporary(in: dirFD.fd, named: name, what: resolvedPath)
        do {
            defer { close(fd) }
            try Self.writeAll(fd, content, what: resolvedPath)
            let old = openat(dirFD.fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            if old >= 0 {
                copyExtendedAttributes(from: old, to: fd)
                close(old)
            }
            guard fchown(fd, meta.uid, meta.gid) == 0 else { throw ProvisionError.io("cannot set owner of", resolvedPath) }
            guard fchmod(fd, mode_t(meta.mode)) == 0 else { throw ProvisionError.io("cannot set mode of", resolvedPath) }
            if sync { guard Durability.sync(fd) == 0 else { throw ProvisionError.io("cannot sync", resolvedPath) } }
        } catch {
            unlinkat(dirFD.fd, tempName, 0)
            throw error
        }
        return Staged(path: resolvedPath, directory: dirFD, temporary: tempName, name: name)
    }

    /// The second half: the temporary file renamed over the target. Not synced.
    func publish(_ staged: Staged) throws {
        guard renameat(staged.directory.fd, staged.temporary, staged.directory.fd, staged.name) == 0 else {
            let failure = ProvisionError.io("cannot replace", staged.path)
            discard(staged)
            throw failure
        }
    }

    /// A staged file that will not be published.
    func discard(_ staged: Staged) {
        unlinkat(staged.directory.fd, staged.temporary, 0)
    }

    /// One syncfs(2) for each file system holding one of these directories (`/boot` may be its
    /// own): every file written, renamed or removed in them so far is durable. The file system of
    /// `except` is left to its owner's own sync.
    func syncFileSystems(_ directories: [Descriptor], except: String? = nil) throws {
        var devices: Set<UInt64> = []
        if let except {
            var info = stat()
            if stat(except, &info) == 0 { devices.insert(UInt64(info.st_dev)) }
        }
        for directory in directories {
            var info = stat()
            guard fstat(directory.fd, &info) == 0 else { throw ProvisionError.io("cannot inspect", root.path) }
            guard devices.insert(UInt64(info.st_dev)).inserted else { continue }
            guard Durability.syncFileSystem(directory.fd) == 0 else { throw ProvisionError.io("cannot sync the file system of", root.path) }
        }
    }

    /// The directories of these resolved paths that exist, opened (for `syncFileSystems`).
    func existingDirectories(of paths: [String]) -> [Descriptor] {
        Set(paths.map { HostRoot.split($0).directory }).sorted().compactMap { directory in
            (try? openDirectory(directory)).map(Descriptor.init)
        }
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

    /// Changes only owner and mode, in place, when the content is already right. Without `sync`
    /// the caller makes it durable (a batch's syncfs).
    func setMeta(_ resolvedPath: String, _ meta: FileMeta, sync: Bool = true) throws {
        let fd = openBeneath(resolvedPath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { throw ProvisionError.io("cannot open", resolvedPath) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw ProvisionError(.invalidInput, "\(resolvedPath) is not a regular file")
        }
        guard fchown(fd, meta.uid, meta.gid) == 0 else { throw ProvisionError.io("cannot set owner of", resolvedPath) }
        guard fchmod(fd, mode_t(meta.mode)) == 0 else { throw ProvisionError.io("cannot set mode of", resolvedPath) }
        if sync { Durability.sync(fd) }
    }

    func remove(_ resolvedPath: String, sync: Bool = true) throws {
        let (directory, name) = HostRoot.split(resolvedPath)
        let dirFD: Int32
        do {
            dirFD = try openDirectory(directory)
        } catch let error as ProvisionError where error.kind == .io && !root.isDirectory(directory) {
            return  // its directory is gone, so is the file
        }
        defer { close(dirFD) }
        guard unlinkat(dirFD, name, 0) == 0 || errno == ENOENT else { throw ProvisionError.io("cannot remove", resolvedPath) }
        if sync { Durability.sync(dirFD) }
    }

    /// Removes a directory if it is empty; true when it was removed.
    @discardableResult
    func removeDirectoryIfEmpty(_ resolvedPath: String) -> Bool {
        let (directory, name) = HostRoot.split(resolvedPath)
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
            for name in root.list(directory) where Self.isTemporaryName(name) {
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

/// An open descriptor, closed with the last copy of what holds it.
final class Descriptor: Sendable {
    let fd: Int32
    init(_ fd: Int32) { self.fd = fd }
    deinit { close(fd) }
}
