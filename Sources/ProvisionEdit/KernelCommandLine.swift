import Foundation
import ProvisionPluginAPI

/// A kernel command line as an ordered list of tokens. `key=value` tokens are replaced by key
/// (keys compare with `-` and `_` as equal, as the kernel does), flags are added once, and keys
/// that may repeat (console=) are appended instead of replaced.
public struct KernelCommandLine: Sendable, Equatable, CustomStringConvertible {
    public var tokens: [String]

    public static let repeatable: Set<String> = ["console", "earlycon"]

    public init(tokens: [String]) { self.tokens = tokens }

    /// Splits on blanks; a double-quoted stretch (`key="a b"`) stays one token, as the kernel reads it.
    public init(parsing text: String) throws {
        var tokens: [String] = []
        var current = ""
        var quoted = false
        for character in text {
            if character == "\"" { quoted.toggle() }
            if !quoted && (character == " " || character == "\t" || character == "\n") {
                if !current.isEmpty { tokens.append(current) }
                current = ""
            } else {
                current.append(character)
            }
        }
        guard !quoted else { throw ProvisionError(.invalidInput, "unbalanced double quote in command line \"\(text)\"") }
        if !current.isEmpty { tokens.append(current) }
        self.tokens = tokens
    }

    public var description: String { tokens.joined(separator: " ") }

    /// The parameter name, normalized: "vfio_pci.ids" for both vfio-pci.ids=… and vfio_pci.ids=….
    public static func key(_ token: String) -> String {
        let name = token.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0]
        return name.replacingOccurrences(of: "-", with: "_")
    }

    static func value(_ token: String) -> String? {
        let parts = token.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        return parts.count == 2 ? String(parts[1]) : nil
    }

    static func same(_ a: String, _ b: String) -> Bool { key(a) == key(b) && value(a) == value(b) }

    /// A token from a recipe: no blanks, no quotes, not empty.
    public static func validate(_ token: String) throws {
        guard !token.isEmpty, !token.contains(where: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\"" || $0 == "'" }) else {
            throw ProvisionError(.invalidInput, "kernel parameter \"\(token)\" must be one token without blanks or quotes")
        }
    }

    public func contains(_ token: String) -> Bool { tokens.contains { Self.same($0, token) } }

    public func hasKey(_ key: String) -> Bool { tokens.contains { Self.key($0) == Self.key(key) } }
}

/// The same edit applied across several lines that together form one command line (systemd-boot
/// concatenates every `options` line of an entry): replacements happen where the key already is,
/// new tokens go to the last line, removals apply everywhere.
public enum CommandLineEdit {
    public static func apply(add: [String], remove: [String], to lines: [KernelCommandLine]) -> [KernelCommandLine] {
        var lines = lines.isEmpty ? [KernelCommandLine(tokens: [])] : lines
        for item in remove {
            for index in lines.indices {
                lines[index].tokens.removeAll { token in
                    item.contains("=") ? KernelCommandLine.same(token, item) : KernelCommandLine.key(token) == KernelCommandLine.key(item)
                }
            }
        }
        for token in add {
            let key = KernelCommandLine.key(token)
            if lines.contains(where: { $0.contains(token) }) {
                continue
            }
            let isFlag = !token.contains("=")
            if isFlag || KernelCommandLine.repeatable.contains(key) {
                lines[lines.count - 1].tokens.append(token)
                continue
            }
            if let lineIndex = lines.firstIndex(where: { $0.hasKey(key) }) {
                let tokenIndex = lines[lineIndex].tokens.firstIndex { KernelCommandLine.key($0) == key }!
                lines[lineIndex].tokens[tokenIndex] = token
                // Later duplicates of the key would override the new value: drop them.
                for index in lines.indices {
                    lines[index].tokens = lines[index].tokens.enumerated().filter { offset, existing in
                        (index == lineIndex && offset == tokenIndex) || KernelCommandLine.key(existing) != key
                    }.map(\.element)
                }
            } else {
                lines[lines.count - 1].tokens.append(token)
            }
        }
        return lines
    }
}
