import Foundation
import ProvisionPluginAPI

/// libvirt's own config format (qemu.conf, libvirtd.conf): `name = value` with strings, numbers and
/// `[ … ]` lists that may span lines, `#` comments. Edits replace one setting's value in place, or
/// add the setting right after its commented-out example, so the documentation around it stays.
public struct LibvirtConf: Sendable {
    public var text: String
    let file: String

    public init(_ text: String, file: String) {
        self.text = text
        self.file = file
    }

    struct Setting {
        var line: Int
        /// Byte range of the value in the text.
        var value: Range<Int>
    }

    /// The last uncommented assignment of `name`.
    func find(_ name: String) throws -> Setting? {
        let bytes = Array(text.utf8)
        var found: Setting?
        var lineStart = 0
        var lineNumber = 1
        while lineStart < bytes.count {
            var cursor = lineStart
            while cursor < bytes.count && (bytes[cursor] == 0x20 || bytes[cursor] == 0x09) { cursor += 1 }
            if bytes[cursor...].starts(with: Array(name.utf8)) {
                var after = cursor + name.utf8.count
                while after < bytes.count && (bytes[after] == 0x20 || bytes[after] == 0x09) { after += 1 }
                if after < bytes.count && bytes[after] == UInt8(ascii: "=") {
                    after += 1
                    while after < bytes.count && (bytes[after] == 0x20 || bytes[after] == 0x09) { after += 1 }
                    let end = try valueEnd(bytes, from: after, line: lineNumber)
                    found = Setting(line: lineNumber, value: after..<end)
                    lineNumber += bytes[lineStart..<end].filter { $0 == 0x0A }.count
                    lineStart = end
                }
            }
            while lineStart < bytes.count && bytes[lineStart] != 0x0A { lineStart += 1 }
            lineStart += 1
            lineNumber += 1
        }
        return found
    }

    /// Where the value starting at `start` ends: after the closing `]` of a list (which may span
    /// lines and hold comments), after the closing quote of a string, or at the first blank.
    private func valueEnd(_ bytes: [UInt8], from start: Int, line: Int) throws -> Int {
        func fail(_ message: String) -> ProvisionError {
            ProvisionError(.invalidInput, message, at: SourceLocation(file: file, line: line, column: 1))
        }
        func skipString(_ index: Int) throws -> Int {
            let quote = bytes[index]
            var at = index + 1
            while at < bytes.count && bytes[at] != quote && bytes[at] != 0x0A { at += 1 }
            guard at < bytes.count, bytes[at] == quote else { throw fail("unterminated string") }
            return at + 1
        }
        guard start < bytes.count, bytes[start] != 0x0A else { throw fail("a setting without a value") }
        switch bytes[start] {
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            return try skipString(start)
        case UInt8(ascii: "["):
            var at = start + 1
            while at < bytes.count {
                switch bytes[at] {
                case UInt8(ascii: "]"): return at + 1
                case UInt8(ascii: "\""), UInt8(ascii: "'"): at = try skipString(at)
                case UInt8(ascii: "#"): while at < bytes.count && bytes[at] != 0x0A { at += 1 }
                default: at += 1
                }
            }
            throw fail("the list is never closed with ]")
        default:
            var at = start
            while at < bytes.count && ![0x20, 0x09, 0x0A, UInt8(ascii: "#")].contains(bytes[at]) { at += 1 }
            return at
        }
    }

    /// The strings of a list setting (nil when the setting is absent).
    public func list(_ name: String) throws -> [String]? {
        guard let setting = try find(name) else { return nil }
        let raw = String(decoding: Array(text.utf8)[setting.value], as: UTF8.self)
        var items: [String] = []
        var current: String?
        var inComment = false
        for character in raw {
            if inComment { if character == "\n" { inComment = false }; continue }
            if current != nil {
                if character == "\"" { items.append(current!); current = nil } else { current!.append(character) }
            } else if character == "\"" {
                current = ""
            } else if character == "#" {
                inComment = true
            }
        }
        return items
    }

    /// The value of a string setting, quotes removed.
    public func string(_ name: String) throws -> String? {
        guard let setting = try find(name) else { return nil }
        let raw = String(decoding: Array(text.utf8)[setting.value], as: UTF8.self)
        return raw.count >= 2 && (raw.hasPrefix("\"") || raw.hasPrefix("'")) ? String(raw.dropFirst().dropLast()) : raw
    }

    /// Sets `name` to `value` (already rendered, e.g. `"qemu"` or a list).
    public mutating func set(_ name: String, to value: String) throws {
        var bytes = Array(text.utf8)
        if let setting = try find(name) {
            bytes.replaceSubrange(setting.value, with: Array(value.utf8))
            text = String(decoding: bytes, as: UTF8.self)
            return
        }
        // After the commented-out example (`#name = …`, through the `#]` closing a list example).
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let example = lines.lastIndex { line in
            let trimmed = line.drop { $0 == "#" || $0 == " " }
            return line.hasPrefix("#") && trimmed.hasPrefix(name) && trimmed.dropFirst(name.count).drop(while: { $0 == " " }).hasPrefix("=")
        }
        var insertAt = lines.last == "" ? lines.count - 1 : lines.count
        if let example {
            insertAt = example + 1
            // A list example runs on to its commented closing bracket.
            if lines[example].contains("[") && !lines[example].contains("]"),
                let close = lines[(example + 1)...].prefix(while: { $0.hasPrefix("#") }).firstIndex(where: {
                    $0.replacingOccurrences(of: " ", with: "") == "#]"
                })
            {
                insertAt = close + 1
            }
        }
        lines.insert("\(name) = \(value)", at: insertAt)
        text = lines.joined(separator: "\n")
    }

    /// A list rendered one item per line, as libvirt's own examples are.
    public static func renderList(_ items: [String]) -> String {
        "[\n" + items.map { "    \"\($0)\"" }.joined(separator: ",\n") + "\n]"
    }
}
