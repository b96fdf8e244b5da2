import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// Where commands are found: on the machine provision runs on, or inside a root resolved as if
/// chrooted. Handlers and readers such as `verify`'s lsinitramfs share it.
public enum Tools {
    public static let searchPath = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]

    /// What spawned tools see: a fixed PATH and locale, nothing inherited by chance.
    public static let environment = ["PATH": searchPath.joined(separator: ":"), "LANG": "C.UTF-8", "HOME": "/root"]

    static func candidates(_ name: String) -> [String] { name.contains("/") ? [name] : searchPath.map { "\($0)/\(name)" } }

    /// The tool's path on this machine.
    public static func onHost(_ name: String) -> String? { candidates(name).first { access($0, X_OK) == 0 } }
}

extension HostRoot {
    /// The tool's path inside the root, if it is an executable file there (symlinks resolved
    /// within the root, never out of it).
    public func tool(_ name: String) -> String? {
        for candidate in Tools.candidates(name) {
            guard let normalized = try? HostRoot.normalize(candidate), let resolved = try? resolve(normalized) else { continue }
            if let info = status(resolved), (info.st_mode & S_IFMT) == S_IFREG, info.st_mode & 0o111 != 0 {
                return candidate
            }
        }
        return nil
    }
}
