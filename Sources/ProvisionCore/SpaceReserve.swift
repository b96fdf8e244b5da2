import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// Room held on each file system a run writes to, taken before the first host byte changes and
/// given back just before the run's commit. On a disk that fills up, the run then fails before it
/// touches anything (the reserve cannot be taken), or it has the space to record itself, or, if
/// the commit fails anyway, to put every file back. Never changed-but-unrecorded.
struct SpaceReserve {
    private var history: String?
    private var host: [(directory: String, name: String)] = []
    private let writer: RootWriter
    private var root: HostRoot { writer.root }

    /// The history's share, `commitBytes`, is what the run commit writes (its trees, records and
    /// metadata, each a file of at least one block); each file system the run writes to also keeps
    /// room to put back the largest file the run replaces there (one file is put back at a time).
    init(writer: RootWriter, historyPath: String, changes: [FileChange], commitBytes: Int) throws {
        self.writer = writer
        var needs: [UInt64: Int] = [:]
        var hostDirectory: [UInt64: String] = [:]
        var info = stat()
        guard stat(historyPath, &info) == 0 else { throw ProvisionError.io("cannot stat", historyPath) }
        let historyDevice = UInt64(info.st_dev)
        var restore: [UInt64: Int] = [:]
        for change in changes {
            var directory = (change.path as NSString).deletingLastPathComponent
            while directory != "/" && !root.isDirectory(directory) { directory = (directory as NSString).deletingLastPathComponent }
            guard let status = root.status(directory) else { continue }
            let device = UInt64(status.st_dev)
            hostDirectory[device] = hostDirectory[device] ?? directory
            restore[device] = max(restore[device] ?? 0, Self.blocks(change.before.content?.count ?? 0) + 4096)
        }
        needs[historyDevice] = commitBytes
        for (device, bytes) in restore { needs[device, default: 0] += bytes }
        do {
            for (device, bytes) in needs.sorted(by: { $0.key < $1.key }) {
                if device == historyDevice {
                    let path = historyPath + "/" + Self.historyName
                    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
                    guard fd >= 0 else { throw ProvisionError.io("cannot reserve space in", historyPath) }
                    history = path
                    defer { close(fd) }
                    try Self.fill(fd, bytes, where: historyPath)
                } else if let directory = hostDirectory[device] {
                    let dirFD = try writer.openDirectory(directory)
                    defer { close(dirFD) }
                    let (fd, name) = try RootWriter.createTemporary(in: dirFD, named: "provision-reserve", what: directory)
                    host.append((directory, name))
                    defer { close(fd) }
                    try Self.fill(fd, bytes, where: root.real(directory))
                }
            }
        } catch {
            release()
            throw error
        }
    }

    static let historyName = "provision-reserve"

    /// Bytes rounded up to whole 4 KiB blocks, as file systems allocate them.
    static func blocks(_ bytes: Int) -> Int { (bytes + 4095) / 4096 * 4096 }

    private static func fill(_ fd: Int32, _ bytes: Int, where place: String) throws {
        let status = posix_fallocate(fd, 0, off_t(bytes))
        if status == 0 { return }
        guard status == EOPNOTSUPP || status == EINVAL else {
            throw ProvisionError(
                .io, "not enough free space in \(place) to run and record this run (\(bytes >> 10) KiB needed): \(String(cString: strerror(status))); nothing was changed")
        }
        let zeros = Data(count: 64 << 10)
        var written = 0
        while written < bytes {
            do {
                try RootWriter.writeAll(fd, zeros.prefix(min(zeros.count, bytes - written)), what: place)
            } catch {
                throw ProvisionError(.io, "not enough free space in \(place) to run and record this run; nothing was changed")
            }
            written += min(zeros.count, bytes - written)
        }
        guard Durability.sync(fd) == 0 else { throw ProvisionError.io("cannot reserve space in", place) }
    }

    /// Gives the room back (before the commit that needs it).
    mutating func release() {
        if let history {
            unlink(history)
            self.history = nil
        }
        for (directory, name) in host {
            if let dirFD = try? writer.openDirectory(directory) {
                unlinkat(dirFD, name, 0)
                close(dirFD)
            }
        }
        host.removeAll()
    }
}
