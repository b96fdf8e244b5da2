import CSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process with its own stdin, stdout and stderr pipes, driven by poll(2): the input is
/// written while the output is read (no deadlock on a 40 MB binary going one way and a report
/// coming back), the outputs are capped, and a deadline kills it. The fleet runs one per host
/// at a time on plain threads, never on the cooperative pool.
struct Subprocess {
    struct Result {
        var status: Int32
        var stdout: Data
        var stderr: Data
        var timedOut: Bool
        /// The child's stderr as text, its last `lines` lines.
        func stderrTail(_ lines: Int = 6) -> String {
            String(decoding: stderr, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).suffix(lines)
                .joined(separator: "\n")
        }
    }

    static let outputCap = 256 << 20

    static func run(_ argv: [String], input: Data = Data(), timeout: TimeInterval?, environment: [String: String]? = nil) throws -> Result {
        var stdinPipe: [Int32] = [0, 0], stdoutPipe: [Int32] = [0, 0], stderrPipe: [Int32] = [0, 0]
        guard pipe(&stdinPipe) == 0, pipe(&stdoutPipe) == 0, pipe(&stderrPipe) == 0 else {
            throw ProvisionFleetError("cannot make pipes for \(argv[0]): \(String(cString: strerror(errno)))")
        }
        for fd in stdinPipe + stdoutPipe + stderrPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        provision_spawn_close_from(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var signals = sigset_t()
        sigemptyset(&signals)
        posix_spawnattr_setsigmask(&attributes, &signals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))
        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let spawned = withCStrings(argv) { args in
            withCStrings(env) { envp in posix_spawnp(&pid, argv[0], &actions, &attributes, args, envp) }
        }
        close(stdinPipe[0])
        close(stdoutPipe[1])
        close(stderrPipe[1])
        guard spawned == 0 else {
            close(stdinPipe[1])
            close(stdoutPipe[0])
            close(stderrPipe[0])
            throw ProvisionFleetError("cannot run \(argv[0]): \(String(cString: strerror(spawned)))")
        }
        var input = input
        var inputFD: Int32 = stdinPipe[1]
        _ = fcntl(inputFD, F_SETFL, O_NONBLOCK)
        if input.isEmpty {
            close(inputFD)
            inputFD = -1
        }
        var stdout = Data(), stderr = Data()
        var open: [Int32] = [stdoutPipe[0], stderrPipe[0]]
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        var timedOut = false
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !open.isEmpty || inputFD >= 0 {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if inputFD >= 0 { fds.append(pollfd(fd: inputFD, events: Int16(POLLOUT), revents: 0)) }
            let wait = deadline.map { max(0, Int32($0.timeIntervalSinceNow * 1000)) } ?? -1
            let ready = poll(&fds, nfds_t(fds.count), wait)
            if ready < 0 && errno == EINTR { continue }
            if ready == 0, deadline != nil {
                timedOut = true
                kill(-pid, SIGTERM)
                kill(pid, SIGTERM)
                usleep(200_000)
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                break
            }
            for entry in fds where entry.revents != 0 {
                if entry.fd == inputFD {
                    if entry.revents & Int16(POLLOUT) != 0 {
                        let written = input.withUnsafeBytes { write(inputFD, $0.baseAddress, min($0.count, 65536)) }
                        if written > 0 { input.removeFirst(written) }
                        if written < 0 && errno != EAGAIN { input.removeAll() }
                    } else {
                        input.removeAll()
                    }
                    if input.isEmpty {
                        close(inputFD)
                        inputFD = -1
                    }
                    continue
                }
                let count = read(entry.fd, &buffer, buffer.count)
                if count > 0 {
                    if entry.fd == stdoutPipe[0] {
                        if stdout.count < outputCap { stdout.append(contentsOf: buffer[0..<count]) }
                    } else if stderr.count < outputCap {
                        stderr.append(contentsOf: buffer[0..<count])
                    }
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    open.removeAll { $0 == entry.fd }
                    close(entry.fd)
                }
            }
        }
        if inputFD >= 0 { close(inputFD) }
        for fd in open { close(fd) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exit: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: exit, stdout: stdout, stderr: stderr, timedOut: timedOut)
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for pointer in pointers { free(pointer) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// An error of the fleet controller itself (not of a host's run).
public struct ProvisionFleetError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
