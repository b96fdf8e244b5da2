import CSystem
import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// Runs an external plugin confined by bubblewrap: no network (its own empty network namespace),
/// the machine's file system absent except /usr (read-only) and the plugin's own directory
/// (read-only), its own /tmp, /proc and /dev, an unprivileged user, a new session, its own PID
/// namespace (so a process it leaves behind dies with it), and killed when provision dies. The
/// core adds a time limit and an output cap. Without bubblewrap nothing runs: external plugins
/// are refused with the package to install.
public enum Sandbox {
    public struct Limits: Sendable {
        public var timeout: TimeInterval
        /// Bytes of standard output; more is an error, never a truncated document.
        public var outputBytes: Int

        public init(timeout: TimeInterval = 30, outputBytes: Int = 16 << 20) {
            self.timeout = timeout
            self.outputBytes = outputBytes
        }
    }

    public struct Result: Sendable {
        /// Exit status, or 128 + signal.
        public var status: Int32
        public var signal: Int32?
        public var stdout: Data
        /// The last few KiB of standard error, for messages.
        public var stderrTail: String
        public var timedOut: Bool
        public var overflowed: Bool
    }

    /// bubblewrap's path, searched where Debian puts it and on PATH.
    public static var bubblewrap: String? {
        if let configured = ProcessInfo.processInfo.environment["PROVISION_BWRAP"], !configured.isEmpty {
            return access(configured, X_OK) == 0 ? configured : nil
        }
        return Tools.onHost("bwrap")
    }

    static let stderrTailBytes = 4096

    /// The bwrap command line around `argv` (whose first element is the plugin's absolute path).
    static func command(_ bwrap: String, _ argv: [String]) -> [String] {
        var args = [
            bwrap, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534", "--die-with-parent", "--new-session",
            "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8", "--setenv", "HOME", "/tmp",
            "--ro-bind", "/usr", "/usr",
        ]
        // Merged /usr (bin -> usr/bin) or not: the same view inside.
        for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64"] {
            var info = stat()
            guard lstat(top, &info) == 0 else { continue }
            if (info.st_mode & S_IFMT) == S_IFLNK, let target = try? FileManager.default.destinationOfSymbolicLink(atPath: top) {
                args += ["--symlink", target, top]
            } else if (info.st_mode & S_IFMT) == S_IFDIR {
                args += ["--ro-bind", top, top]
            }
        }
        if FileManager.default.fileExists(atPath: "/etc/ld.so.cache") { args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"] }
        // /tmp first: the plugin's directory may be below it. Then the sandbox's own root (where
        // bwrap made /etc and the mount points) goes read-only too: only /tmp takes writes.
        let directory = (argv[0] as NSString).deletingLastPathComponent
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--ro-bind", directory, directory, "--remount-ro", "/", "--chdir", "/tmp", "--"]
        return args + argv
    }

    /// Runs `argv` in the sandbox with `input` on its standard input.
    public static func run(_ argv: [String], input: Data, limits: Limits) throws -> Result {
        guard let bwrap = bubblewrap else {
            throw ProvisionError(
                .notFound,
                "external plugins run sandboxed by bubblewrap, which is not installed (apt-get install bubblewrap); nothing was run")
        }
        // A plugin that exits before reading its input must fail its step, not kill provision.
        signal(SIGPIPE, SIG_IGN)
        return try spawn(command(bwrap, argv), input: input, limits: limits)
    }

    /// posix_spawn with three pipes, then one poll loop: feed stdin, drain stdout (capped) and
    /// stderr (its tail kept), until both close and the child is reaped, or the time is up (then
    /// the child and with it the whole sandbox gets SIGKILL).
    static func spawn(_ argv: [String], input: Data, limits: Limits) throws -> Result {
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&inPipe) == 0, pipe(&outPipe) == 0, pipe(&errPipe) == 0 else {
            throw ProvisionError.io("cannot create pipes for", argv[0])
        }
        // Not inherited by handlers or other children spawned meanwhile (the dup2 copies are).
        for fd in inPipe + outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        provision_spawn_close_from(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group, so a time-out kills everything it started.
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        var cArgs = argv.map { strdup($0) } + [nil]
        var cEnv: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/bin:/bin"), nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, &attributes, &cArgs, &cEnv)
        close(inPipe[0])
        close(outPipe[1])
        close(errPipe[1])
        guard spawned == 0 else {
            [inPipe[1], outPipe[0], errPipe[0]].forEach { close($0) }
            throw ProvisionError(.io, "cannot start \(argv[0]): \(String(cString: strerror(spawned)))")
        }
        _ = fcntl(inPipe[1], F_SETFL, fcntl(inPipe[1], F_GETFL) | O_NONBLOCK)
        var stdinFD: Int32? = inPipe[1]
        if input.isEmpty {
            close(inPipe[1])
            stdinFD = nil
        }
        var openOutputs: [Int32] = [outPipe[0], errPipe[0]]
        var stdout = Data(), stderr = Data()
        var written = 0
        var timedOut = false, overflowed = false
        let deadline = Date().addingTimeInterval(limits.timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)

        func kill() { _ = Glibc.kill(-pid, SIGKILL); _ = Glibc.kill(pid, SIGKILL) }

        while !openOutputs.isEmpty || stdinFD != nil {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 {
                timedOut = true
                kill()
                break
            }
            var fds = openOutputs.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if let stdinFD { fds.append(pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), Int32(min(remaining, 1) * 1000) + 1)
            if ready < 0 && errno != EINTR { kill(); break }
            for entry in fds where entry.revents != 0 {
                if entry.fd == stdinFD {
                    let wrote = input.withUnsafeBytes { raw in write(entry.fd, raw.baseAddress! + written, raw.count - written) }
                    if wrote > 0 { written += wrote }
                    if wrote < 0 && errno != EAGAIN && errno != EINTR || written == input.count {
                        close(entry.fd)
                        stdinFD = nil
                    }
                    continue
                }
                let got = read(entry.fd, &buffer, buffer.count)
                if got < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if got <= 0 {
                    close(entry.fd)
                    openOutputs.removeAll { $0 == entry.fd }
                    continue
                }
                if entry.fd == outPipe[0] {
                    stdout.append(contentsOf: buffer[0..<got])
                    if stdout.count > limits.outputBytes {
                        overflowed = true
                        kill()
                    }
                } else {
                    stderr.append(contentsOf: buffer[0..<got])
                    if stderr.count > 4 * stderrTailBytes { stderr = stderr.suffix(stderrTailBytes) }
                }
            }
            if overflowed { break }
        }
        openOutputs.forEach { close($0) }
        if let stdinFD { close(stdinFD) }
        var waitStatus: Int32 = 0
        while waitpid(pid, &waitStatus, 0) < 0 && errno == EINTR {}
        let signal = (waitStatus & 0x7f) == 0 ? nil : waitStatus & 0x7f
        let status: Int32 = signal.map { 128 + $0 } ?? (waitStatus >> 8) & 0xff
        return Result(
            status: status, signal: signal, stdout: stdout, stderrTail: String(decoding: stderr.suffix(stderrTailBytes), as: UTF8.self),
            timedOut: timedOut, overflowed: overflowed)
    }
}
