import Foundation
import ProvisionCore

#if canImport(Glibc)
import Glibc
#endif

/// The controller's state directory (default `.provision-fleet/` beside the inventory): the
/// central history copy `fleet.git`, the fleet's own `known_hosts`, and the SSH control sockets
/// (in a short directory under /tmp when the state path is too long for a socket path).
public final class FleetState: @unchecked Sendable {
    public let directory: String
    public let knownHosts: String
    let controlDirectory: String
    private var lockFD: Int32 = -1

    public static func defaultDirectory(inventory: String) -> String {
        let absolute = URL(fileURLWithPath: inventory).standardizedFileURL.path
        return (absolute as NSString).deletingLastPathComponent + "/.provision-fleet"
    }

    /// Opens (creating, mode 0700) the state directory and takes its lock: one fleet command
    /// writes fleet.git at a time; another waits up to `lockTimeout` seconds.
    public init(directory: String, lockTimeout: TimeInterval = 60) throws {
        self.directory = URL(fileURLWithPath: directory).standardizedFileURL.path
        knownHosts = self.directory + "/known_hosts"
        try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        chmod(self.directory, 0o700)
        // A control socket path is at most 107 bytes; %C adds 40 hex digits.
        let inside = self.directory + "/cm"
        if inside.utf8.count + 42 <= 100 {
            controlDirectory = inside
        } else {
            controlDirectory = "/tmp/provision-cm-\(geteuid())-" + SHA256.hex(Data(self.directory.utf8)).prefix(12)
        }
        try FileManager.default.createDirectory(atPath: controlDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var info = stat()
        guard lstat(controlDirectory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == geteuid() else {
            throw ProvisionFleetError("\(controlDirectory) is not a directory of this user: refusing to put SSH control sockets there")
        }
        chmod(controlDirectory, 0o700)
        lockFD = open(self.directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw ProvisionFleetError("cannot open \(self.directory)/lock: \(String(cString: strerror(errno)))") }
        let deadline = Date().addingTimeInterval(lockTimeout)
        while flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            guard Date() < deadline else {
                throw ProvisionFleetError("another provision fleet command holds \(self.directory)/lock (waited \(Int(lockTimeout)) s)")
            }
            usleep(100_000)
        }
    }

    deinit {
        if lockFD >= 0 { close(lockFD) }
    }

    /// The SHA-256 of the build to push, remembered in STATE/build-hashes by device, inode, size
    /// and modification time (as git's index remembers file hashes), so a fleet command does not
    /// read and hash a 100 MB binary each time it starts.
    func contentHash(of path: String) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ProvisionFleetError("cannot read the provision build to push: \(path)") }
        let key = "\(info.st_dev) \(info.st_ino) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
        let cache = directory + "/build-hashes"
        let known = (try? String(contentsOfFile: cache, encoding: .utf8)) ?? ""
        for line in known.split(separator: "\n") where line.hasPrefix(key + " ") {
            let hash = line.dropFirst(key.count + 1)
            if hash.count == 64, hash.allSatisfy(\.isHexDigit) { return String(hash) }
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw ProvisionFleetError("cannot read the provision build to push: \(path)") }
        let hash = SHA256.hex(data)
        let lines = known.split(separator: "\n").suffix(15).map(String.init) + ["\(key) \(hash)"]
        try? (lines.joined(separator: "\n") + "\n").write(toFile: cache, atomically: true, encoding: .utf8)
        return hash
    }

    public var fleetRepository: String { Self.repositoryPath(stateDirectory: directory) }

    /// fleet.git in a state directory (read without taking the lock: `fleet history`).
    public static func repositoryPath(stateDirectory: String) -> String {
        URL(fileURLWithPath: stateDirectory).standardizedFileURL.path + "/fleet.git"
    }
}
