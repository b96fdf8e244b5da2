import Foundation
import ProvisionPluginAPI

/// Finds a value inside a JSON document by key path and reports its byte span, so one array can be
/// rewritten while the rest of the file (key order, spacing) stays exactly as its owner wrote it.
public enum JSONLocator {
    public struct Span: Sendable {
        public var start: Int
        public var end: Int
    }

    /// Objects and arrays nested deeper than this are refused: the walk below recurses once per
    /// level, and so does Foundation's JSONSerialization, which a deep enough document crashes.
    public static let maxDepth = 256

    /// Span of the value at `path` (object keys), or nil when a key is missing. Also the bounded
    /// check of a whole document (`path` empty) before it is handed to a recursive parser.
    public static func span(of path: [String], in text: String, file: String) throws -> Span? {
        let bytes = Array(text.utf8)
        var index = 0
        var depth = 0
        func fail(_ message: String) -> ProvisionError {
            let end = min(index, bytes.count)
            let lineStart = bytes[..<end].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
            let line = bytes[..<end].reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
            let column = String(decoding: bytes[lineStart..<end], as: UTF8.self).unicodeScalars.count + 1
            return ProvisionError(.invalidInput, "malformed JSON: \(message)", at: SourceLocation(file: file, line: line, column: column))
        }
        func enter() throws {
            depth += 1
            guard depth <= maxDepth else { throw fail("nested deeper than \(maxDepth) levels") }
        }
        func skipBlanks() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }
        func string() throws -> String {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a string") }
            let start = index
            index += 1
            while index < bytes.count && bytes[index] != UInt8(ascii: "\"") {
                index += bytes[index] == UInt8(ascii: "\\") ? 2 : 1
            }
            guard index < bytes.count else { throw fail("unterminated string") }
            index += 1
            return try JSONDecoder().decode(String.self, from: Data(bytes[start..<index]))
        }
        /// Skips one value; when `path` is not exhausted and the value is an object, descends instead.
        func value(_ path: ArraySlice<String>) throws -> Span? {
            skipBlanks()
            guard index < bytes.count else { throw fail("unexpected end") }
            let start = index
            switch bytes[index] {
            case UInt8(ascii: "{"):
                try enter()
                defer { depth -= 1 }
                index += 1
                var result: Span?
                skipBlanks()
                if index < bytes.count && bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return path.isEmpty ? Span(start: start, end: index) : nil
                }
                while true {
                    skipBlanks()
                    let key = try string()
                    skipBlanks()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected :") }
                    index += 1
                    if let first = path.first, key == first {
                        if let found = try value(path.dropFirst()) { result = found }
                    } else {
                        _ = try value([])
                    }
                    skipBlanks()
                    guard index < bytes.count else { throw fail("unterminated object") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    guard bytes[index] == UInt8(ascii: "}") else { throw fail("expected , or }") }
                    index += 1
                    break
                }
                return path.isEmpty ? Span(start: start, end: index) : result
            case UInt8(ascii: "["):
                try enter()
                defer { depth -= 1 }
                index += 1
                skipBlanks()
                if index < bytes.count && bytes[index] == UInt8(ascii: "]") {
                    index += 1
                } else {
                    while true {
                        _ = try value([])
                        skipBlanks()
                        guard index < bytes.count else { throw fail("unterminated array") }
                        if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                        guard bytes[index] == UInt8(ascii: "]") else { throw fail("expected , or ]") }
                        index += 1
                        break
                    }
                }
                return path.isEmpty ? Span(start: start, end: index) : nil
            case UInt8(ascii: "\""):
                _ = try string()
            default:
                while index < bytes.count, !([UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x0A, 0x09, 0x0D].contains(bytes[index])) {
                    index += 1
                }
                guard index > start else { throw fail("expected a value") }
            }
            return path.isEmpty ? Span(start: start, end: index) : nil
        }
        let found = try value(path[...])
        skipBlanks()
        guard index == bytes.count else { throw fail("trailing data after the document") }
        return found
    }

    /// Replaces the bytes of `span` in `text`.
    public static func replace(_ span: Span, in text: String, with replacement: String) -> String {
        var bytes = Array(text.utf8)
        bytes.replaceSubrange(span.start..<span.end, with: Array(replacement.utf8))
        return String(decoding: bytes, as: UTF8.self)
    }
}
