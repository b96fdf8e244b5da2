import Foundation
import ProvisionPluginAPI

/// A bash array assignment (`NAME=(a "b" 'c')`) found in a sourced config file such as
/// mkinitcpio.conf: its elements with their exact source spans, so an edit can insert and remove
/// elements while every other byte, comment, quote and line break stays as it was.
public struct ShellArray: Sendable {
    public struct Element: Sendable, Equatable {
        /// The word as bash would see it (quotes removed).
        public var value: String
        /// Byte offsets of the raw word in the file.
        public var start: Int
        public var end: Int
    }

    public let name: String
    /// 1-based line of `NAME=(`.
    public let line: Int
    public let elements: [Element]
    /// Byte offset just after `(`, and of the closing `)`.
    let open: Int
    let close: Int
    let bytes: [UInt8]

    public var values: [String] { elements.map(\.value) }

    /// The last top-level `NAME=(...)` in `text` (the one bash keeps), or nil. Errors name
    /// `file:line` for an unbalanced array, a string-form assignment, or a word that cannot be
    /// read without running bash (`$`, backticks, subshells).
    public static func find(_ name: String, in text: String, file: String) throws -> ShellArray? {
        let bytes = Array(text.utf8)
        var found: ShellArray?
        var offset = 0
        var line = 1
        while offset < bytes.count {
            let lineStart = offset
            var cursor = offset
            while cursor < bytes.count && (bytes[cursor] == 0x20 || bytes[cursor] == 0x09) { cursor += 1 }
            let prefix = Array("\(name)=".utf8)
            if bytes[cursor...].starts(with: prefix) {
                let after = cursor + prefix.count
                if after < bytes.count && bytes[after] == UInt8(ascii: "(") {
                    let array = try parse(bytes, name: name, open: after + 1, line: line, file: file)
                    found = array
                    // Continue after the array, counting the lines it spanned.
                    line += bytes[lineStart..<array.close].filter { $0 == 0x0A }.count
                    offset = array.close + 1
                    while offset < bytes.count && bytes[offset] != 0x0A { offset += 1 }
                    offset += 1
                    line += 1
                    continue
                }
                throw ProvisionError(
                    .invalidInput, "\(name) is assigned as a string, not an array; write it as \(name)=(...) so it can be edited safely",
                    at: SourceLocation(file: file, line: line, column: cursor - lineStart + 1))
            }
            while offset < bytes.count && bytes[offset] != 0x0A { offset += 1 }
            offset += 1
            line += 1
        }
        return found
    }

    private static func parse(_ bytes: [UInt8], name: String, open: Int, line: Int, file: String) throws -> ShellArray {
        var elements: [Element] = []
        var index = open
        var currentLine = line
        func fail(_ message: String) -> ProvisionError {
            ProvisionError(.invalidInput, message, at: SourceLocation(file: file, line: currentLine, column: 1))
        }
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case 0x0A:
                currentLine += 1
                index += 1
            case 0x20, 0x09, 0x0D:
                index += 1
            case UInt8(ascii: "#"):
                while index < bytes.count && bytes[index] != 0x0A { index += 1 }
            case UInt8(ascii: ")"):
                return ShellArray(name: name, line: line, elements: elements, open: open, close: index, bytes: bytes)
            default:
                let start = index
                var value: [UInt8] = []
                wordLoop: while index < bytes.count {
                    let c = bytes[index]
                    switch c {
                    case 0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ")"):
                        break wordLoop
                    case UInt8(ascii: "'"):
                        index += 1
                        while index < bytes.count && bytes[index] != UInt8(ascii: "'") {
                            if bytes[index] == 0x0A { currentLine += 1 }
                            value.append(bytes[index])
                            index += 1
                        }
                        guard index < bytes.count else { throw fail("unterminated ' in \(name)=(") }
                        index += 1
                    case UInt8(ascii: "\""):
                        index += 1
                        while index < bytes.count && bytes[index] != UInt8(ascii: "\"") {
                            let d = bytes[index]
                            if d == UInt8(ascii: "$") || d == UInt8(ascii: "`") {
                                throw fail("\(name) has a word with $ or ` that only bash could expand; provision will not guess")
                            }
                            if d == UInt8(ascii: "\\"), index + 1 < bytes.count,
                                [UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "$"), UInt8(ascii: "`")].contains(bytes[index + 1])
                            {
                                index += 1
                            }
                            if bytes[index] == 0x0A { currentLine += 1 }
                            value.append(bytes[index])
                            index += 1
                        }
                        guard index < bytes.count else { throw fail("unterminated \" in \(name)=(") }
                        index += 1
                    case UInt8(ascii: "\\"):
                        guard index + 1 < bytes.count else { throw fail("dangling \\ in \(name)=(") }
                        value.append(bytes[index + 1])
                        index += 2
                    case UInt8(ascii: "$"), UInt8(ascii: "`"), UInt8(ascii: "("), UInt8(ascii: ";"), UInt8(ascii: "&"),
                        UInt8(ascii: "|"), UInt8(ascii: "<"), UInt8(ascii: ">"):
                        throw fail("\(name) has a word with \(String(UnicodeScalar(c))) that only bash could evaluate; provision will not guess")
                    default:
                        value.append(c)
                        index += 1
                    }
                }
                elements.append(Element(value: String(decoding: value, as: UTF8.self), start: start, end: index))
            }
        }
        throw ProvisionError(
            .invalidInput, "unbalanced parenthesis: \(name)=( is never closed", at: SourceLocation(file: file, line: line, column: 1))
    }

    // MARK: editing

    private func lineStart(_ offset: Int) -> Int {
        var index = offset
        while index > 0 && bytes[index - 1] != 0x0A { index -= 1 }
        return index
    }

    private func isBlank(_ range: Range<Int>) -> Bool {
        bytes[range].allSatisfy { $0 == 0x20 || $0 == 0x09 }
    }

    /// Whether an offset starts its own line (only blanks before it).
    private func startsLine(_ offset: Int) -> Bool { isBlank(lineStart(offset)..<offset) }

    private var isMultiLine: Bool { bytes[open..<close].contains(0x0A) }

    /// `text` with `values` inserted before element `index` (or at the end when nil). One per line
    /// with the anchor's indentation when the array is laid out that way, else space-separated.
    public func inserting(_ values: [String], before index: Int?) -> String {
        guard !values.isEmpty else { return String(decoding: bytes, as: UTF8.self) }
        var out = bytes
        if let index {
            let anchor = elements[index].start
            if isMultiLine && startsLine(anchor) {
                let start = lineStart(anchor)
                let indent = Array(bytes[start..<anchor])
                out.insert(contentsOf: values.flatMap { indent + Array($0.utf8) + [0x0A] }, at: start)
            } else {
                out.insert(contentsOf: Array((values.joined(separator: " ") + " ").utf8), at: anchor)
            }
        } else if isMultiLine && startsLine(close) {
            let start = lineStart(close)
            let indent: [UInt8]
            if let last = elements.last, startsLine(last.start) {
                indent = Array(bytes[lineStart(last.start)..<last.start])
            } else {
                indent = Array("    ".utf8)
            }
            out.insert(contentsOf: values.flatMap { indent + Array($0.utf8) + [0x0A] }, at: start)
        } else if let last = elements.last {
            out.insert(contentsOf: Array((" " + values.joined(separator: " ")).utf8), at: last.end)
        } else {
            let spaced = close > open && bytes[close - 1] == 0x20
            out.insert(contentsOf: Array((values.joined(separator: " ") + (spaced ? " " : "")).utf8), at: close)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `text` without the elements at `indices`: a word alone on its line goes with its line, otherwise
    /// with the blanks that separated it, so inserting and then removing gives back the original.
    public func removing(_ indices: Set<Int>) -> String {
        // Ranges are worked out on the original bytes, merged where they touch, then cut from the end.
        var ranges: [Range<Int>] = []
        for index in indices {
            let element = elements[index]
            var from = element.start, to = element.end
            var lineEnd = to
            while lineEnd < bytes.count && (bytes[lineEnd] == 0x20 || bytes[lineEnd] == 0x09) { lineEnd += 1 }
            let aloneOnLine = isMultiLine && startsLine(from) && lineEnd < bytes.count && bytes[lineEnd] == 0x0A
            if aloneOnLine {
                from = lineStart(from)
                to = lineEnd + 1
            } else if lineEnd < close && lineEnd > to && bytes[lineEnd] != 0x0A && bytes[lineEnd] != UInt8(ascii: "#") {
                to = lineEnd
            } else {
                while from > open && (bytes[from - 1] == 0x20 || bytes[from - 1] == 0x09) { from -= 1 }
            }
            ranges.append(from..<to)
        }
        var merged: [Range<Int>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, range.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
        // A run of words removed up to the end of its line takes the blanks before it along too.
        merged = merged.map { range in
            guard range.upperBound < bytes.count, bytes[range.upperBound] == UInt8(ascii: ")") || bytes[range.upperBound] == 0x0A,
                range.lowerBound != lineStart(range.lowerBound)
            else { return range }
            var from = range.lowerBound
            while from > open && (bytes[from - 1] == 0x20 || bytes[from - 1] == 0x09) { from -= 1 }
            return from..<range.upperBound
        }
        var out = bytes
        for range in merged.reversed() { out.removeSubrange(range) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Kernel module names: the kernel treats `-` and `_` alike, so comparisons must too.
public enum ModuleName {
    public static func normalized(_ name: String) -> String { name.replacingOccurrences(of: "-", with: "_") }

    public static func same(_ a: String, _ b: String) -> Bool { normalized(a) == normalized(b) }
}
