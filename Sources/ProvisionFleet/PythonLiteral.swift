/// What Ansible's INI reader makes of a value: Python's `ast.literal_eval` of the text, or the text
/// itself when that fails. Covers the literals inventories use: integers (decimal, 0x, 0o, 0b, `_`),
/// floats, strings (single, double and triple quotes, r/u/b prefixes, escapes, adjacent literals
/// joined), True/False/None, lists, tuples and sets (as lists) and dicts, with a trailing `#`
/// comment. Anything else (names, calls, `010`, complex numbers) stays the text it was.
enum PythonLiteral {
    /// Nesting bound: the text comes from one inventory line.
    static let maxDepth = 100

    static func value(of text: String) -> InventoryValue {
        var parser = Parser(Array(text.unicodeScalars))
        parser.skipBlanks()
        guard let value = try? parser.expression(depth: 0) else { return .string(text) }
        parser.skipSpaceAndComment()
        guard parser.atEnd else { return .string(text) }
        return value
    }

    private struct Failed: Error {}

    private struct Parser {
        let text: [Unicode.Scalar]
        var index = 0

        init(_ text: [Unicode.Scalar]) { self.text = text }

        var atEnd: Bool { index >= text.count }
        func peek(_ offset: Int = 0) -> Unicode.Scalar? { index + offset < text.count ? text[index + offset] : nil }

        mutating func skipBlanks() {
            while let c = peek(), c == " " || c == "\t" { index += 1 }
        }

        /// Blanks, newlines inside brackets, and a comment to the end of the line.
        mutating func skipSpaceAndComment() {
            while let c = peek() {
                if c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\u{0C}" {
                    index += 1
                } else if c == "#" {
                    while let d = peek(), d != "\n" { index += 1 }
                } else {
                    return
                }
            }
        }

        mutating func expect(_ c: Unicode.Scalar) throws {
            skipSpaceAndComment()
            guard peek() == c else { throw Failed() }
            index += 1
        }

        mutating func expression(depth: Int) throws -> InventoryValue {
            guard depth < PythonLiteral.maxDepth else { throw Failed() }
            skipSpaceAndComment()
            guard let c = peek() else { throw Failed() }
            switch c {
            case "[": return .list(try sequence(close: "]", depth: depth))
            case "(":
                // A parenthesised expression, or a tuple.
                index += 1
                skipSpaceAndComment()
                if peek() == ")" { index += 1; return .list([]) }
                let first = try expression(depth: depth + 1)
                skipSpaceAndComment()
                if peek() == ")" { index += 1; return first }
                var items = [first]
                while peek() == "," {
                    index += 1
                    skipSpaceAndComment()
                    if peek() == ")" { break }
                    items.append(try expression(depth: depth + 1))
                    skipSpaceAndComment()
                }
                try expect(")")
                return .list(items)
            case "{": return try braces(depth: depth)
            case "-", "+":
                index += 1
                skipSpaceAndComment()
                let operand = try expression(depth: depth + 1)
                switch operand {
                case .int(let value): return .int(c == "-" ? -value : value)
                case .float(let value): return .float(c == "-" ? -value : value)
                case .bool(let value): return .int(c == "-" ? (value ? -1 : 0) : (value ? 1 : 0))
                default: throw Failed()
                }
            case "'", "\"": return .string(try strings())
            default:
                if isDigit(c) || (c == "." && peek(1).map(isDigit) == true) { return try number() }
                if isNameStart(c) {
                    let start = index
                    while let d = peek(), isNameStart(d) || isDigit(d) { index += 1 }
                    let word = String(String.UnicodeScalarView(text[start..<index]))
                    if let quote = peek(), quote == "'" || quote == "\"", ["r", "u", "b", "br", "rb"].contains(word.lowercased()) {
                        index = start
                        return .string(try strings())
                    }
                    switch word {
                    case "True": return .bool(true)
                    case "False": return .bool(false)
                    case "None": return .null
                    default: throw Failed()
                    }
                }
                if c == ".", peek(1) == ".", peek(2) == "." {
                    index += 3
                    return .string("...")
                }
                throw Failed()
            }
        }

        mutating func sequence(close: Unicode.Scalar, depth: Int) throws -> [InventoryValue] {
            index += 1
            var items: [InventoryValue] = []
            skipSpaceAndComment()
            while peek() != close {
                items.append(try expression(depth: depth + 1))
                skipSpaceAndComment()
                if peek() == "," {
                    index += 1
                    skipSpaceAndComment()
                } else if peek() != close {
                    throw Failed()
                }
            }
            index += 1
            return items
        }

        mutating func braces(depth: Int) throws -> InventoryValue {
            index += 1
            skipSpaceAndComment()
            if peek() == "}" { index += 1; return .map([:]) }
            let first = try expression(depth: depth + 1)
            skipSpaceAndComment()
            if peek() == ":" {
                var entries: [String: InventoryValue] = [:]
                var key = first
                while true {
                    try expect(":")
                    guard key.isHashable else { throw Failed() }
                    entries[key.keyText] = try expression(depth: depth + 1)
                    skipSpaceAndComment()
                    if peek() == "," {
                        index += 1
                        skipSpaceAndComment()
                        if peek() == "}" { break }
                        key = try expression(depth: depth + 1)
                        skipSpaceAndComment()
                    } else {
                        break
                    }
                }
                try expect("}")
                return .map(entries)
            }
            // A set: its items, in the order written (Python's own order is a hash order).
            var items = [first]
            while peek() == "," {
                index += 1
                skipSpaceAndComment()
                if peek() == "}" { break }
                items.append(try expression(depth: depth + 1))
                skipSpaceAndComment()
            }
            try expect("}")
            var unique: [InventoryValue] = []
            for item in items where !unique.contains(item) { unique.append(item) }
            return .list(unique)
        }

        /// One or more adjacent string literals, joined.
        mutating func strings() throws -> String {
            var result = ""
            repeat {
                result += try string()
                skipSpaceAndComment()
            } while peek().map({ $0 == "'" || $0 == "\"" || isPrefixedQuote() }) == true
            return result
        }

        func isPrefixedQuote() -> Bool {
            var offset = 0
            while let c = peek(offset), "rRuUbB".unicodeScalars.contains(c), offset < 2 { offset += 1 }
            return offset > 0 && (peek(offset) == "'" || peek(offset) == "\"")
        }

        mutating func string() throws -> String {
            var raw = false
            while let c = peek(), "rRuUbB".unicodeScalars.contains(c) {
                if c == "r" || c == "R" { raw = true }
                index += 1
            }
            guard let quote = peek(), quote == "'" || quote == "\"" else { throw Failed() }
            let triple = peek(1) == quote && peek(2) == quote
            index += triple ? 3 : 1
            var out = String.UnicodeScalarView()
            while true {
                guard let c = peek() else { throw Failed() }
                if c == quote && (!triple || (peek(1) == quote && peek(2) == quote)) {
                    index += triple ? 3 : 1
                    return String(out)
                }
                if (c == "\n" || c == "\r") && !triple { throw Failed() }
                if c == "\\" {
                    guard let next = peek(1) else { throw Failed() }
                    if raw {
                        out.append(c)
                        out.append(next)
                        index += 2
                        continue
                    }
                    index += 2
                    switch next {
                    case "\n": break
                    case "\\": out.append("\\")
                    case "'": out.append("'")
                    case "\"": out.append("\"")
                    case "a": out.append("\u{07}")
                    case "b": out.append("\u{08}")
                    case "f": out.append("\u{0C}")
                    case "n": out.append("\n")
                    case "r": out.append("\r")
                    case "t": out.append("\t")
                    case "v": out.append("\u{0B}")
                    case "0"..."7":
                        var value = Int(next.value - 48)
                        var digits = 1
                        while digits < 3, let d = peek(), ("0"..."7").contains(d) {
                            value = value * 8 + Int(d.value - 48)
                            index += 1
                            digits += 1
                        }
                        guard let scalar = Unicode.Scalar(value) else { throw Failed() }
                        out.append(scalar)
                    case "x", "u", "U":
                        let count = next == "x" ? 2 : next == "u" ? 4 : 8
                        var value: UInt32 = 0
                        for _ in 0..<count {
                            guard let d = peek(), let digit = Int(String(d), radix: 16) else { throw Failed() }
                            value = value * 16 + UInt32(digit)
                            index += 1
                        }
                        guard let scalar = Unicode.Scalar(value) else { throw Failed() }
                        out.append(scalar)
                    default:
                        out.append("\\")
                        out.append(next)
                    }
                    continue
                }
                out.append(c)
                index += 1
            }
        }

        mutating func number() throws -> InventoryValue {
            let start = index
            while let c = peek(), isDigit(c) || isNameStart(c) || c == "." || ((c == "+" || c == "-") && (text[index - 1] == "e" || text[index - 1] == "E")) {
                index += 1
            }
            let word = String(String.UnicodeScalarView(text[start..<index]))
            // Underscores only between digits.
            if word.hasSuffix("_") || word.contains("__") { throw Failed() }
            let plain = word.replacingOccurrences(of: "_", with: "")
            let lower = plain.lowercased()
            for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) {
                guard let value = Int(lower.dropFirst(2), radix: radix), !lower.dropFirst(2).isEmpty else { throw Failed() }
                return .int(value)
            }
            if plain.allSatisfy(\.isASCIIDigitCharacter) {
                // Python 3 refuses leading zeros ("010"), except for zero itself ("00").
                if plain.count > 1 && plain.hasPrefix("0") && plain.contains(where: { $0 != "0" }) { throw Failed() }
                guard let value = Int(plain) else { throw Failed() }
                return .int(value)
            }
            guard lower.allSatisfy({ $0.isASCIIDigitCharacter || $0 == "." || $0 == "e" || $0 == "+" || $0 == "-" }),
                lower.filter({ $0 == "." }).count <= 1, let value = Double(lower.hasSuffix(".") ? lower + "0" : lower)
            else { throw Failed() }
            return .float(value)
        }

        func isDigit(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }
        func isNameStart(_ c: Unicode.Scalar) -> Bool {
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || c == "_" || (c.value > 127 && c.properties.isAlphabetic)
        }
    }
}

extension Character {
    fileprivate var isASCIIDigitCharacter: Bool { isASCII && isNumber }
}

extension InventoryValue {
    /// Python can use it as a dict key (lists and dicts are unhashable).
    fileprivate var isHashable: Bool {
        switch self {
        case .list, .map: return false
        default: return true
        }
    }

    /// A key as JSON writes it: Python's json turns True into "true" and None into "null".
    var keyText: String {
        switch self {
        case .null: return "null"
        default: return scalarText
        }
    }
}
