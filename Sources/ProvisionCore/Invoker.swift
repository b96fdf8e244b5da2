import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// Who runs provision: the person, not only the root account the change needs. sudo names them
/// in SUDO_USER; a login session (ssh, a console, `su`) in the kernel's login uid, which no later
/// `su` or `sudo` changes; without either, the effective user is all there is.
public struct Invoker: Sendable, Codable, Hashable {
    public enum Source: String, Sendable, Codable { case sudo, loginuid, effective }

    public var user: String
    public var uid: UInt32?
    public var source: Source
    public var effectiveUser: String

    public static func current(
        environment: [String: String] = ProcessInfo.processInfo.environment, loginUIDFile: String = "/proc/self/loginuid"
    ) -> Invoker {
        let effective = name(of: geteuid()) ?? "uid\(geteuid())"
        if let sudo = environment["SUDO_USER"], isPlainName(sudo) {
            let uid = environment["SUDO_UID"].flatMap { UInt32($0) }
            return Invoker(user: sudo, uid: uid, source: .sudo, effectiveUser: effective)
        }
        // 4294967295 (-1) means no login session set it (a daemon, a container without audit).
        if let text = try? String(contentsOfFile: loginUIDFile, encoding: .utf8),
            let uid = UInt32(text.trimmingCharacters(in: .whitespacesAndNewlines)), uid != UInt32.max
        {
            return Invoker(user: name(of: uid) ?? "uid\(uid)", uid: uid, source: .loginuid, effectiveUser: effective)
        }
        return Invoker(user: effective, uid: geteuid(), source: .effective, effectiveUser: effective)
    }

    /// The name of a uid in this machine's user database (the passwd the login uid belongs to).
    static func name(of uid: uid_t) -> String? {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return nil }
        let text = String(cString: name)
        return isPlainName(text) ? text : nil
    }

    /// A user name that can go into a commit's author and trailers as it is: no spaces, control
    /// characters, angle brackets or colons (SUDO_USER is only an environment variable).
    static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64
            && name.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7f && !"<>:,\"'\\".unicodeScalars.contains($0) }
    }
}
