import CSystem
import Foundation
import ProvisionCore

#if canImport(Glibc)
import Glibc
#endif

/// A private mount namespace for tests that mount (tmpfs of a given size, say): held by
/// `unshare --mount --propagation private sh -c 'read _'`, whose stdin is a pipe this process
/// holds. Commands run inside with nsenter; files inside are reached through /proc/PID/root.
/// Nothing mounted here is ever seen by this machine, and when the holder ends (deinit, or this
/// process dying and closing the pipe) the kernel unmounts everything.
public final class MountNamespace: @unchecked Sendable {
    public let holder: pid_t
    private let keepAlive: Int32

    public init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ProvisionError(.io, "pipe failed") }
        // Another child spawned meanwhile must not inherit the write end (it would keep the namespace alive).
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        provision_spawn_close_from(&actions, 3)
        let argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "read _"]
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawnp(&pid, argv[0], &actions, nil, &cArgs, environ)
        close(fds[0])
        guard status == 0 else {
            close(fds[1])
            throw ProvisionError(.io, "cannot start unshare")
        }
        holder = pid
        keepAlive = fds[1]
        // unshare execs sh once the namespace exists: wait until the holder's namespace differs from ours.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let ours = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt")) ?? ""
            let theirs = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt")) ?? ours
            let command = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? ""
            if theirs != ours && command.hasPrefix("sh") { return }
            usleep(5_000)
        }
        throw ProvisionError(.io, "the mount namespace holder did not start")
    }

    /// Runs a command inside the namespace.
    public func run(_ argv: [String], timeout: Double = 60) throws -> Measured {
        try Spawn.run(["nsenter", "--target", "\(holder)", "--mount", "--"] + argv, timeout: timeout)
    }

    /// A path inside the namespace, reachable from here (open, lstat, opendir; not realpath).
    public func path(_ inside: String) -> String { "/proc/\(holder)/root" + inside }

    /// Mounts a tmpfs of `bytes` (rounded up to pages) on `directory`, which must exist.
    public func mountTmpfs(_ directory: String, bytes: Int) throws {
        let result = try run(["mount", "-t", "tmpfs", "-o", "size=\(bytes),mode=0755", "tmpfs", directory])
        guard result.status == 0 else { throw ProvisionError(.io, "mount tmpfs on \(directory): \(result.stderr)") }
    }

    public func unmount(_ directory: String) {
        _ = try? run(["umount", directory])
    }

    /// Bytes used on the file system holding `directory` inside the namespace.
    public func usedBytes(_ directory: String) -> Int {
        var info = statvfs()
        guard statvfs(path(directory), &info) == 0 else { return -1 }
        return Int(info.f_blocks - info.f_bfree) * Int(info.f_frsize)
    }

    deinit {
        close(keepAlive)
        kill(holder, SIGKILL)
        var status: Int32 = 0
        while waitpid(holder, &status, 0) < 0 && errno == EINTR {}
    }
}
