import CSystem
import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// Runs a command to completion with stdout and stderr merged into one pipe (one reader, so no
/// pipe deadlock) and waits with waitpid (no polling).
public enum ProcessRunner {
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
    }

    /// `onLine` is told each line of output as it arrives (without its newline).
    public static func run(_ argv: [String], environment: [String: String]? = nil, onLine: ((String) -> Void)? = nil) throws -> Result {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw ProvisionError.io("cannot create a pipe for", argv[0]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
        posix_spawn_file_actions_addclose(&actions, pipeFDs[1])
        // Nothing else is inherited: not the root lock (a daemon a handler starts would hold it
        // forever), not files being written (exec of them would fail with ETXTBSY).
        provision_spawn_close_from(&actions, 3)

        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var cArgs = argv.map { strdup($0) } + [nil]
        var cEnv = env.map { strdup($0) } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let status = posix_spawnp(&pid, argv[0], &actions, nil, &cArgs, &cEnv)
        close(pipeFDs[1])
        guard status == 0 else {
            close(pipeFDs[0])
            throw ProvisionError(.handler, "cannot start \(argv[0]): \(String(cString: strerror(status)))")
        }
        var output = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var lineStart = 0
        while true {
            let got = read(pipeFDs[0], &buffer, buffer.count)
            if got < 0 && errno == EINTR { continue }
            if got <= 0 { break }
            output.append(contentsOf: buffer[0..<got])
            if let onLine {
                while let newline = output[(output.startIndex + lineStart)...].firstIndex(of: 0x0A) {
                    onLine(String(decoding: output[(output.startIndex + lineStart)..<newline], as: UTF8.self))
                    lineStart = newline - output.startIndex + 1
                }
            }
        }
        if let onLine, lineStart < output.count { onLine(String(decoding: output[(output.startIndex + lineStart)...], as: UTF8.self)) }
        close(pipeFDs[0])
        var waitStatus: Int32 = 0
        while waitpid(pid, &waitStatus, 0) < 0 && errno == EINTR {}
        let exitCode: Int32 = (waitStatus & 0x7f) == 0 ? (waitStatus >> 8) & 0xff : 128 + (waitStatus & 0x7f)
        return Result(status: exitCode, output: String(decoding: output, as: UTF8.self))
    }
}
