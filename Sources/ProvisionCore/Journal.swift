import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// Written (and synced) before the first byte of a run touches the host, removed only after the
/// run's commit is durable: if it is still there, the run was interrupted and the next apply or
/// rollback puts its files back first. Recovery works from this file as it is and never rewrites
/// it, so a crash during recovery loses nothing: the next start recovers again.
struct Journal: Codable {
    var run: Int
    var action: RunRecord.Action
    /// History commit that holds the pre-state of every path below.
    var base: String
    var paths: [String]
    var createdDirectories: [String]
    var handlers: [HandlerAction]

    /// A journal is as untrusted as any file in a root handed over by someone else: bounded,
    /// regular, and its paths checked before use (`HostRoot.recorded`).
    static func read(_ path: String) throws -> Journal? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw ProvisionError.io("cannot read the run journal", path)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw ProvisionError(.history, "the run journal \(path) is not a regular file; inspect it, then remove it")
        }
        do {
            let data = try HostRoot.readAll(fd, size: Int(info.st_size), what: path, limit: 16 << 20)
            return try JSONDecoder().decode(Journal.self, from: data)
        } catch {
            throw ProvisionError(.history, "the run journal \(path) is unreadable (\(error)); inspect it, then remove it")
        }
    }

    /// Temp file, fsync, rename, fsync of the directory: durable before the host is touched.
    func write(_ path: String) throws {
        let data = try JSONEncoder.sorted.encode(self)
        let directory = (path as NSString).deletingLastPathComponent
        let temp = path + ".tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ProvisionError.io("cannot write", temp) }
        do {
            defer { close(fd) }
            try RootWriter.writeAll(fd, data, what: temp)
            guard Durability.sync(fd) == 0 else { throw ProvisionError.io("cannot sync", temp) }
        } catch {
            unlink(temp)
            throw error
        }
        guard rename(temp, path) == 0 else {
            unlink(temp)
            throw ProvisionError.io("cannot write", path)
        }
        GitRepository.syncDirectory(directory)
    }

    /// Removed once the run is recorded. The removal is not synced on its own: every later commit
    /// syncs the history's file system (`syncObjects`) before its branch moves, so a journal that a
    /// power cut brings back can only name the run (or recovery) at the tip, which the next run
    /// recognises and removes again (`Engine.recover`); after a put-back its files already match
    /// its base, and recovering it changes nothing.
    static func remove(_ path: String) {
        unlink(path)
    }
}
