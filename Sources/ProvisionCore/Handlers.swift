import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// Runs handler commands where they belong: directly on the live host, through `chroot ROOT` in
/// another root that has the tool, and otherwise reports them as skipped with the reason.
struct HandlerRunner {
    let root: HostRoot
    let enabled: Bool
    /// Told when a handler starts, each line it prints, and how it ended.
    var onEvent: ((RunEvent) -> Void)? = nil

    /// Runs each notified handler once, in declaration order (and those in `retry`, which failed
    /// last time, regardless); the rest are recorded as skipped.
    func run(_ handlers: [HandlerAction], changed: Set<String>, retry: Set<[String]> = []) -> [RunRecord.HandlerEntry] {
        handlers.map { handler in
            let started = Date()
            let result: RunRecord.HandlerEntry
            if handler.notifiedBy.contains(where: changed.contains) || retry.contains(handler.argv) {
                result = run(handler)
            } else {
                result = entry(handler, .skipped, "not notified: none of its files changed")
            }
            onEvent?(.handlerFinished(result, seconds: Date().timeIntervalSince(started)))
            return result
        }
    }

    private func entry(_ handler: HandlerAction, _ status: RunRecord.HandlerEntry.Status, _ detail: String?) -> RunRecord.HandlerEntry {
        RunRecord.HandlerEntry(
            argv: handler.argv, notifiedBy: handler.notifiedBy, needsMounts: handler.needsMounts, onHost: handler.onHost,
            rewrites: handler.rewrites, status: status,
            detail: detail)
    }

    /// Why the handler would not run here (the tool missing, mounts, chroot without root), or nil
    /// with the command line it runs as: what `plan` predicts and `apply` then does.
    func prepare(_ handler: HandlerAction) -> (argv: [String]?, skipped: String?) {
        guard enabled else { return (nil, "--no-handlers given") }
        let onHost = handler.onHost == true
        guard let tool = onHost ? Tools.onHost(handler.argv[0]) : root.tool(handler.argv[0]) else {
            return (nil, "\(handler.argv[0]) is not installed in \(onHost ? "/" : root.path)")
        }
        var argv = [tool] + handler.argv.dropFirst()
        if !root.isLiveHost && !onHost {
            guard geteuid() == 0 else { return (nil, "running it inside \(root.path) needs chroot, which needs root") }
            let unmounted = (handler.needsMounts ?? []).filter { !isMountPoint($0) }
            if !unmounted.isEmpty {
                return (
                    nil,
                    "\(handler.argv[0]) needs \(unmounted.joined(separator: ", ")) mounted inside \(root.path); "
                        + "mount --bind them and re-run, or run it after booting that system"
                )
            }
            argv = ["chroot", root.path] + argv
        }
        return (argv, nil)
    }

    private func run(_ handler: HandlerAction) -> RunRecord.HandlerEntry {
        let prepared = prepare(handler)
        guard let argv = prepared.argv else { return entry(handler, .skipped, prepared.skipped) }
        onEvent?(.handlerStarted(handler, command: argv))
        do {
            let result = try ProcessRunner.run(argv, environment: Tools.environment) { line in onEvent?(.handlerOutput(handler, line)) }
            if result.status == 0 { return entry(handler, .ran, nil) }
            let tail = result.output.split(separator: "\n").suffix(20).joined(separator: "\n")
            return entry(handler, .failed, "exit status \(result.status)\n\(tail)")
        } catch {
            return entry(handler, .failed, "\(error)")
        }
    }

    /// A directory of the root on another file system than the root itself (a mount point).
    func isMountPoint(_ hostPath: String) -> Bool {
        var outer = stat()
        guard let resolved = try? root.resolve(hostPath), let inner = root.status(resolved), stat(root.path, &outer) == 0 else { return false }
        return inner.st_dev != outer.st_dev
    }
}

/// Test-only switch to prove crash safety: `PROVISION_TEST_CRASH_AFTER_WRITES=N` kills the process
/// with SIGKILL right after its Nth file change on the host. The fault suite goes further from
/// outside: strace kills the process at every write system call, history and journal included.
enum FaultInjection {
    static let crashAfterWrites: Int? = ProcessInfo.processInfo.environment["PROVISION_TEST_CRASH_AFTER_WRITES"].flatMap { Int($0) }
    nonisolated(unsafe) private static var writes = 0

    static func didWrite() {
        guard let limit = crashAfterWrites else { return }
        writes += 1
        if writes >= limit { kill(getpid(), SIGKILL) }
    }
}
