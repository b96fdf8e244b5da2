import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// One lock per root: an flock on the root directory itself, so taking it creates nothing on the
/// host. A second apply or rollback on the same root waits for the first, up to a timeout, then
/// fails clearly. The kernel drops the lock when its holder dies: a killed run leaves no stale lock.
final class RootLock {
    private let fd: Int32

    init(root: HostRoot, timeout: TimeInterval, onWait: (String) -> Void) throws {
        fd = open(root.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ProvisionError.io("cannot open root", root.path) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return }
        onWait("another provision run holds the lock on \(root.path); waiting up to \(Int(timeout)) s")
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            usleep(10_000)
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return }
        }
        close(fd)
        throw ProvisionError(.locked, "another provision run still holds the lock on \(root.path) after \(Int(timeout)) s; nothing was changed")
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
