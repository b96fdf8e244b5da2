import CSystem
import Foundation
import ProvisionCore

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway root directory under /tmp: every test acts on one of these, never on this
/// machine's own /etc.
public final class TempRoot {
    public let path: String

    /// A copy of any directory (a debootstrapped root, say), owners, modes and links kept.
    public convenience init(copyingDirectory directory: String) throws {
        try self.init()
        let result = try ProcessRunner.run(["cp", "-a", directory + "/.", path])
        guard result.status == 0 else { throw ProvisionError(.io, "cp failed: \(result.output)") }
    }

    public init(copying snapshot: String? = nil) throws {
        var template = Array("/tmp/provision-test-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw ProvisionError(.io, "mkdtemp failed")
        }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if let snapshot {
            let result = try ProcessRunner.run(["cp", "-a", Package.path("snapshots/\(snapshot)") + "/.", path])
            guard result.status == 0 else { throw ProvisionError(.io, "cp failed: \(result.output)") }
        }
    }

    /// --one-file-system: a test that bind-mounted /dev or /proc into the root and failed to unmount
    /// must never make cleanup reach into this machine's own /dev.
    deinit { _ = try? ProcessRunner.run(["rm", "-rf", "--one-file-system", path]) }

    public func real(_ hostPath: String) -> String { path + hostPath }

    public func write(_ hostPath: String, _ text: String, mode: mode_t = 0o644) throws {
        let target = real(hostPath)
        try FileManager.default.createDirectory(
            atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: target))
        chmod(target, mode)
    }

    public func read(_ hostPath: String) -> String? {
        FileManager.default.contents(atPath: real(hostPath)).map { String(decoding: $0, as: UTF8.self) }
    }

    public func exists(_ hostPath: String) -> Bool {
        var info = stat()
        return lstat(real(hostPath), &info) == 0
    }

    /// Every file, directory and link below the root with content, mode and owner, skipping
    /// provision's own state; two equal fingerprints mean byte-identical trees.
    public func fingerprint(excludingHistory: Bool = true) throws -> [String: String] {
        var result: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: path)
        while let relative = enumerator?.nextObject() as? String {
            if excludingHistory && (relative == "var/lib/provision" || relative.hasPrefix("var/lib/provision/")) { continue }
            var info = stat()
            lstat(path + "/" + relative, &info)
            var entry = String(format: "%o %d:%d", info.st_mode, info.st_uid, info.st_gid)
            if (info.st_mode & S_IFMT) == S_IFREG {
                entry += " " + String(decoding: FileManager.default.contents(atPath: path + "/" + relative) ?? Data(), as: UTF8.self)
            } else if (info.st_mode & S_IFMT) == S_IFLNK {
                entry += " -> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: path + "/" + relative)) ?? "")
            }
            result[relative] = entry
        }
        return result
    }

    public var historyPath: String { real("/var/lib/provision/history.git") }

    /// `git` (the CLI, the real consumer of our history) against the root's history.
    public func git(_ arguments: String...) throws -> String {
        let result = try ProcessRunner.run(["git", "--git-dir", historyPath] + arguments)
        guard result.status == 0 else { throw ProvisionError(.io, "git \(arguments) failed: \(result.output)") }
        return result.output
    }
}

public enum Package {
    /// The package root, found from this file's location.
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    public static func path(_ relative: String) -> String { root + "/" + relative }
}

/// Modification time and inode, to prove a file was not rewritten.
public func fileIdentity(_ path: String) -> String {
    var info = stat()
    lstat(path, &info)
    return "\(info.st_ino) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
}

/// The built `provision` executable, run as a user would.
public enum CLI {
    public struct Result: Sendable {
        public var status: Int32
        public var signal: Int32
        public var stdout: String
        public var stderr: String
    }

    public static let binary: String = {
        let candidates: [String?] = [
            Bundle.main.executableURL?.deletingLastPathComponent().appendingPathComponent("provision").path,
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("provision").path,
            Package.path(".build/debug/provision"),
        ]
        return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) } ?? Package.path(".build/debug/provision")
    }()

    /// Runs the CLI with stdout and stderr captured separately (through files, so no pipe can fill).
    public static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let process = try start(arguments, environment: environment)
        return process.wait()
    }

    public final class Running: @unchecked Sendable {
        let process: Process
        let out: String
        let err: String

        init(process: Process, out: String, err: String) {
            self.process = process
            self.out = out
            self.err = err
        }

        public var pid: pid_t { process.processIdentifier }

        public func wait() -> Result {
            process.waitUntilExit()
            defer {
                unlink(out)
                unlink(err)
            }
            let signaled = process.terminationReason == .uncaughtSignal
            return Result(
                status: signaled ? -1 : process.terminationStatus, signal: signaled ? process.terminationStatus : 0,
                stdout: String(decoding: FileManager.default.contents(atPath: out) ?? Data(), as: UTF8.self),
                stderr: String(decoding: FileManager.default.contents(atPath: err) ?? Data(), as: UTF8.self))
        }
    }

    public static func start(_ arguments: [String], environment: [String: String] = [:]) throws -> Running {
        let id = UUID().uuidString
        let out = "/tmp/provision-cli-\(id).out", err = "/tmp/provision-cli-\(id).err"
        guard FileManager.default.createFile(atPath: out, contents: nil), FileManager.default.createFile(atPath: err, contents: nil) else {
            throw ProvisionError(.io, "cannot create capture files in /tmp")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return Running(process: process, out: out, err: err)
    }

    /// Parses a `--json` document.
    public static func json(_ text: String) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw ProvisionError(.invalidInput, "not a JSON object: \(text)")
        }
        return object
    }
}

/// A helper process for a test (a loopback server, say): started with posix_spawn, its first
/// output line read, stopped with SIGKILL and reaped with waitpid. stdin and stderr go to
/// /dev/null so it can never hold the test runner's own pipes open.
public final class BackgroundProcess: @unchecked Sendable {
    public let pid: pid_t
    private let output: Int32

    public init(_ argv: [String]) throws {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw ProvisionError(.io, "pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
        posix_spawn_file_actions_addclose(&actions, pipeFDs[1])
        provision_spawn_close_from(&actions, 3)
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var child: pid_t = 0
        let status = posix_spawnp(&child, argv[0], &actions, nil, &cArgs, environ)
        close(pipeFDs[1])
        guard status == 0 else {
            close(pipeFDs[0])
            throw ProvisionError(.io, "cannot start \(argv[0])")
        }
        pid = child
        output = pipeFDs[0]
    }

    /// The next line the process prints (blocking).
    public func readLine() -> String {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while read(output, &byte, 1) == 1 && byte != 0x0A { line.append(byte) }
        return String(decoding: line, as: UTF8.self)
    }

    deinit {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        close(output)
    }
}

/// A host snapshot with the variables the whole VFIO recipe needs on it.
public struct SnapshotFamily: CustomStringConvertible, Sendable {
    public var name: String
    public var vars: [String]
    public var description: String { name }

    /// The five snapshots and their recipe variables (the same in every suite that runs the recipe).
    public static let all = [
        SnapshotFamily(name: "arch", vars: []),
        SnapshotFamily(name: "fedora", vars: []),
        // The GTX 1050 Ti shares its group with a USB controller: said on purpose.
        SnapshotFamily(name: "debian", vars: ["--var", "allow_shared_group=true"]),
        // Twin RTX 3070s: bound by address.
        SnapshotFamily(name: "ubuntu", vars: ["--var", "identical_ids=bind-by-address"]),
        SnapshotFamily(name: "popos", vars: []),
    ]
}

/// The golden files of the recipe on a snapshot family (Tests/CLITests/Golden/FAMILY, made by
/// scripts/update-golden.sh): host path -> content.
public enum Golden {
    public static func files(_ family: String) throws -> [String: String] {
        let base = Package.path("Tests/CLITests/Golden/\(family)")
        var files: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: base)
        while let relative = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: base + "/" + relative, isDirectory: &isDirectory), !isDirectory.boolValue {
                files["/" + relative] = try String(contentsOfFile: base + "/" + relative, encoding: .utf8)
            }
        }
        return files
    }
}
