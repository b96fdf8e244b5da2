import CSystem
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Every fsync of the core goes through here, so the benchmark can report what durability costs:
/// `PROVISION_BENCH_UNSAFE_NO_SYNC=1` turns every sync off (objects, refs, journal, host files).
/// Never set it for real runs: a power cut could then leave a history that cannot be read.
enum Durability {
    static let enabled = ProcessInfo.processInfo.environment["PROVISION_BENCH_UNSAFE_NO_SYNC"] != "1"

    @discardableResult
    static func sync(_ fd: Int32) -> Int32 { enabled ? fsync(fd) : 0 }

    /// syncfs(2): the whole file system holding `fd`, for a batch of files made durable together.
    @discardableResult
    static func syncFileSystem(_ fd: Int32) -> Int32 { enabled ? provision_syncfs(fd) : 0 }
}
