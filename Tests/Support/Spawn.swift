import CSystem
import Dispatch
import Foundation
import ProvisionCore

#if canImport(Glibc)
import Glibc
#endif

/// A child process run to completion (or killed at its deadline) with what a safety test judges:
/// exit status or signal, stdout and stderr, wall time, and the child's peak RSS from wait4.
public struct Measured: Sendable, CustomStringConvertible {
    /// Exit code, or -1 when the child was killed by a signal.
    public var status: Int32
    /// The signal that ended the child, 0 when it exited.
    public var signal: Int32
    public var stdout: String
    public var stderr: String
    /// Wall time from spawn to exit.
    public var seconds: Double
    /// Peak resident set size of the child (and the children it waited for), in KiB (ru_maxrss).
    public var maxRSSKiB: Int
    /// True when the deadline passed and the child (its whole process group) was sent SIGKILL.
    public var timedOut: Bool

    public var maxRSSMiB: Double { Double(maxRSSKiB) / 1024 }
    /// stdout and stderr together, for "never printed" checks.
    public var output: String { stdout + stderr }

    public var description: String {
        let how = timedOut ? "timed out (killed)" : signal != 0 ? "killed by signal \(signal)" : "exit \(status)"
        let err = stderr.split(separator: "\n").prefix(6).joined(separator: " | ")
        return "\(how) after \(String(format: "%.2f", seconds)) s, peak RSS \(String(format: "%.1f", maxRSSMiB)) MiB; stderr: \(err)"
    }
}

/// posix_spawn + wait4, with a hard deadline: nothing polls. A helper thread blocks in
/// waitid(WNOWAIT), which tells that the child ended without reaping it, so the pid cannot be
/// reused while the deadline may still send SIGKILL to it; wait4 then reaps it and gives its rusage.
public enum Spawn {
    public static func run(
        _ argv: [String], timeout: Double = 60, environment: [String: String] = [:], stdinPath: String = "/dev/null"
    ) throws -> Measured {
        let id = UUID().uuidString
        let out = "/tmp/provision-spawn-\(id).out", err = "/tmp/provision-spawn-\(id).err"
        defer {
            unlink(out)
            unlink(err)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        provision_spawn_close_from(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group (the deadline kills strace and its tracee together), default signal
        // dispositions (the test runner may ignore SIGPIPE) and an empty signal mask.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD] { sigaddset(&defaults, signal) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let env = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }.map { "\($0.key)=\($0.value)" }
        var cArgs = argv.map { strdup($0) } + [nil]
        var cEnv = env.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        let started = DispatchTime.now()
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, argv[0], &actions, &attributes, &cArgs, &cEnv)
        guard spawned == 0 else {
            throw ProvisionError(.io, "cannot start \(argv[0]): \(String(cString: strerror(spawned)))")
        }

        let ended = DispatchSemaphore(value: 0)
        let child = pid
        let watcher = Thread {
            var info = siginfo_t()
            while waitid(P_PID, id_t(child), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR {}
            ended.signal()
        }
        watcher.start()
        var timedOut = false
        if ended.wait(timeout: .now() + timeout) == .timedOut {
            timedOut = true
            kill(-child, SIGKILL)
            kill(child, SIGKILL)
            ended.wait()
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        // Whatever the child left in its process group (a tracee strace lost, say) goes too; the
        // child is not reaped yet, so its pid (and group id) cannot have been reused.
        kill(-child, SIGKILL)
        var waitStatus: Int32 = 0
        var usage = rusage()
        while wait4(child, &waitStatus, 0, &usage) < 0 && errno == EINTR {}
        let signaled = (waitStatus & 0x7f) != 0
        return Measured(
            status: signaled ? -1 : (waitStatus >> 8) & 0xff, signal: signaled ? waitStatus & 0x7f : 0,
            stdout: String(decoding: FileManager.default.contents(atPath: out) ?? Data(), as: UTF8.self),
            stderr: String(decoding: FileManager.default.contents(atPath: err) ?? Data(), as: UTF8.self),
            seconds: seconds, maxRSSKiB: usage.ru_maxrss, timedOut: timedOut)
    }
}

extension CLI {
    /// The CLI as a measured child: exit, output, wall time and peak RSS, SIGKILLed at `timeout`.
    /// `addressSpaceLimit` (bytes) runs it under prlimit --as, so a run-away allocation fails
    /// inside the child instead of pushing this shared machine into swap.
    public static func measure(
        _ arguments: [String], timeout: Double = 60, addressSpaceLimit: Int? = nil, environment: [String: String] = [:]
    ) throws -> Measured {
        let prefix = addressSpaceLimit.map { ["prlimit", "--as=\($0)", "--"] } ?? []
        return try Spawn.run(prefix + [binary] + arguments, timeout: timeout, environment: environment)
    }
}
