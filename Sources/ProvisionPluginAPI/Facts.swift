import Foundation

/// Facts every step can use, read from the root (so a snapshot and a live host go through the
/// same code). Pure parsing of files; plugins add their own facts as exports.
public enum Facts {
    /// Missing files give defaults; a file that is there but unreadable (a FIFO, a 2 GB file) is an
    /// error naming it, never a silent default.
    public static func gather(_ root: HostRoot) throws -> Value {
        var facts: [String: Value] = [:]
        let osRelease = try read(root, "/etc/os-release") ?? read(root, "/usr/lib/os-release") ?? ""
        let os = parseOSRelease(osRelease)
        facts["os"] = .map([
            "id": .string(os["ID"] ?? "linux"),
            "id_like": .list((os["ID_LIKE"] ?? "").split(separator: " ").map { .string(String($0)) }),
            "version_id": .string(os["VERSION_ID"] ?? ""),
            "name": .string(os["PRETTY_NAME"] ?? os["NAME"] ?? "Linux"),
        ])
        facts["hostname"] = .string(try read(root, "/etc/hostname")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "localhost")
        let kernels = installedKernels(root)
        facts["kernels"] = .list(kernels.map { .string($0) })
        let cpuinfo = try read(root, "/proc/cpuinfo") ?? ""
        facts["cpu"] = .map(["vendor": .string(cpuVendor(cpuinfo))])
        facts["cmdline"] = .string(try read(root, "/proc/cmdline")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "")
        return .map(facts)
    }

    static func read(_ root: HostRoot, _ path: String) throws -> String? {
        guard let data = try root.readState(try root.resolve(path)).content else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// os-release is a shell-compatible KEY=value list; values may be quoted.
    public static func parseOSRelease(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for rawLine in text.split(byte: "\n") {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            guard !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else { continue }
            var value = String(line[line.index(after: equals)...])
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            result[String(line[..<equals])] = value
        }
        return result
    }

    public static func cpuVendor(_ cpuinfo: String) -> String {
        for line in cpuinfo.split(byte: "\n") where line.hasPrefix("vendor_id") {
            if line.contains("GenuineIntel") { return "intel" }
            if line.contains("AuthenticAMD") || line.contains("HygonGenuine") { return "amd" }
            return line.split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? "unknown"
        }
        return "unknown"
    }

    /// Kernel versions with a module tree under lib/modules, oldest first (numeric order).
    public static func installedKernels(_ root: HostRoot) -> [String] {
        guard let modules = try? root.resolve("/lib/modules") else { return [] }
        return root.list(modules).filter { root.isDirectory(modules + "/" + $0) }.sorted { KernelVersion($0) < KernelVersion($1) }
    }
}

/// A kernel release ("6.1.0-18-amd64", "6.10.3-arch1-1") compared by its numeric parts, so 6.10 > 6.2.
public struct KernelVersion: Comparable, Sendable, CustomStringConvertible {
    public let release: String
    public let numbers: [Int]

    public init(_ release: String) {
        self.release = release
        let head = release.prefix { $0.isNumber || $0 == "." }
        numbers = head.split(separator: ".").compactMap { Int($0) }
    }

    public var description: String { release }

    public static func < (lhs: KernelVersion, rhs: KernelVersion) -> Bool {
        for index in 0..<max(lhs.numbers.count, rhs.numbers.count) {
            let left = index < lhs.numbers.count ? lhs.numbers[index] : 0
            let right = index < rhs.numbers.count ? rhs.numbers[index] : 0
            if left != right { return left < right }
        }
        return lhs.release < rhs.release
    }

    public static func == (lhs: KernelVersion, rhs: KernelVersion) -> Bool { lhs.release == rhs.release }
}
