import Foundation
import ProvisionPluginAPI

/// Finds the first YAML anchor (`&name`) or alias (`*name`) in a text without parsing it, so a
/// recipe can be refused before Yams expands aliases: Yams' composer hands back the anchored node
/// for each alias, so a "billion laughs" document costs gigabytes in whatever walks the result, and
/// an alias used as a mapping key blows up inside the composer itself, which hashes keys.
///
/// This follows libyaml's scanner (the one Yams bundles) token by token, keeping only what decides
/// where a token can start: the flow level, the block indentation stack and the simple-key state.
/// So a `&` or `*` inside a plain scalar (`url: a?x=1&y=2`, `path: /etc/*`), a quoted scalar
/// (single or double, over several lines), a comment, a tag or a block scalar's body (`|`, `>`)
/// is text, while one where libyaml would start a token is reported, as libyaml would read it.
/// Where libyaml would stop with a syntax error, the scan carries on: what Yams then reports is a
/// syntax error, and at worst this scan reports an anchor in a document that is broken anyway.
public enum YAMLAnchorScan {
    public struct Found: Sendable, Equatable {
        public var line: Int
        public var column: Int
        public var isAlias: Bool
        public var name: String
    }

    public static func firstAnchorOrAlias(in text: String) -> Found? {
        var scanner = Scanner(Array(text.unicodeScalars))
        return scanner.run()
    }

    private struct SimpleKey {
        var possible = false
        var line = 0
        var index = 0
        var column = 0
    }

    private struct Scanner {
        let text: [Unicode.Scalar]
        var index = 0
        var line = 1
        /// From 0, in Unicode scalars, as libyaml counts.
        var column = 0
        var flowLevel = 0
        var indent = -1
        var indents: [Int] = []
        var simpleKeyAllowed = true
        var simpleKeys = [SimpleKey()]
        /// (flow level, index) of every simple key saved, oldest first from `oldest`.
        var saved: [(Int, Int)] = []
        var oldest = 0

        init(_ text: [Unicode.Scalar]) { self.text = text }

        func at(_ offset: Int = 0) -> Unicode.Scalar? {
            index + offset < text.count ? text[index + offset] : nil
        }

        static func isBreak(_ c: Unicode.Scalar?) -> Bool {
            guard let c else { return false }
            return c == "\n" || c == "\r" || c == "\u{85}" || c == "\u{2028}" || c == "\u{2029}"
        }

        static func isBlank(_ c: Unicode.Scalar?) -> Bool { c == " " || c == "\t" }

        static func isBlankZ(_ c: Unicode.Scalar?) -> Bool { c == nil || isBlank(c) || isBreak(c) }

        /// libyaml's IS_ALPHA: the characters of anchor names and tag handles.
        static func isAlpha(_ c: Unicode.Scalar?) -> Bool {
            guard let c else { return false }
            return ("0"..."9").contains(c) || ("a"..."z").contains(c) || ("A"..."Z").contains(c) || c == "_" || c == "-"
        }

        /// One character; a line break (CR LF counts as one) starts a new line.
        mutating func advance() {
            guard let c = at() else { return }
            if Self.isBreak(c) {
                index += c == "\r" && at(1) == "\n" ? 2 : 1
                line += 1
                column = 0
            } else {
                index += 1
                column += 1
            }
        }

        mutating func skipToBreak() {
            while let c = at(), !Self.isBreak(c) { advance() }
        }

        mutating func run() -> Found? {
            while true {
                scanToNextToken()
                dropStaleSimpleKeys()
                unrollIndent(to: column)
                guard let c = at() else { return nil }
                if column == 0 && c == "%" {
                    unrollIndent(to: -1)
                    simpleKeys[simpleKeys.count - 1].possible = false
                    simpleKeyAllowed = false
                    skipToBreak()
                    continue
                }
                if column == 0, c == "-" || c == ".", at(1) == c, at(2) == c, Self.isBlankZ(at(3)) {
                    unrollIndent(to: -1)
                    simpleKeys[simpleKeys.count - 1].possible = false
                    simpleKeyAllowed = false
                    for _ in 0..<3 { advance() }
                    continue
                }
                switch c {
                case "[", "{":
                    saveSimpleKey()
                    flowLevel += 1
                    simpleKeys.append(SimpleKey())
                    simpleKeyAllowed = true
                    advance()
                case "]", "}":
                    simpleKeys[simpleKeys.count - 1].possible = false
                    if flowLevel > 0 {
                        flowLevel -= 1
                        simpleKeys.removeLast()
                    }
                    simpleKeyAllowed = false
                    advance()
                case ",":
                    simpleKeys[simpleKeys.count - 1].possible = false
                    simpleKeyAllowed = true
                    advance()
                case "-" where Self.isBlankZ(at(1)):
                    rollIndent(to: column)
                    simpleKeys[simpleKeys.count - 1].possible = false
                    simpleKeyAllowed = true
                    advance()
                case "?" where flowLevel > 0 || Self.isBlankZ(at(1)):
                    rollIndent(to: column)
                    simpleKeys[simpleKeys.count - 1].possible = false
                    simpleKeyAllowed = flowLevel == 0
                    advance()
                case ":" where flowLevel > 0 || Self.isBlankZ(at(1)):
                    let key = simpleKeys[simpleKeys.count - 1]
                    if key.possible {
                        rollIndent(to: key.column)
                        simpleKeys[simpleKeys.count - 1].possible = false
                        simpleKeyAllowed = false
                    } else {
                        rollIndent(to: column)
                        simpleKeyAllowed = flowLevel == 0
                    }
                    advance()
                case "*", "&":
                    var name = ""
                    var offset = 1
                    while Self.isAlpha(at(offset)) {
                        name.unicodeScalars.append(at(offset)!)
                        offset += 1
                    }
                    return Found(line: line, column: column + 1, isAlias: c == "*", name: name)
                case "!":
                    saveSimpleKey()
                    simpleKeyAllowed = false
                    scanTag()
                case "|" where flowLevel == 0, ">" where flowLevel == 0:
                    simpleKeys[simpleKeys.count - 1].possible = false
                    simpleKeyAllowed = true
                    scanBlockScalar()
                case "'", "\"":
                    saveSimpleKey()
                    simpleKeyAllowed = false
                    scanQuoted(single: c == "'")
                default:
                    let next = at(1)
                    let startsPlain =
                        !(Self.isBlankZ(c) || "-?:,[]{}#&*!|>'\"%@`".unicodeScalars.contains(c))
                        || (c == "-" && !Self.isBlank(next))
                        || (flowLevel == 0 && (c == "?" || c == ":") && !Self.isBlankZ(next))
                    if startsPlain {
                        saveSimpleKey()
                        simpleKeyAllowed = false
                        scanPlain()
                    } else {
                        advance()  // libyaml stops here with "found character that cannot start any token"
                    }
                }
            }
        }

        mutating func scanToNextToken() {
            while true {
                if column == 0 && at() == "\u{FEFF}" { advance() }
                while at() == " " || ((flowLevel > 0 || !simpleKeyAllowed) && at() == "\t") { advance() }
                if at() == "#" { skipToBreak() }
                guard Self.isBreak(at()) else { return }
                advance()
                if flowLevel == 0 { simpleKeyAllowed = true }
            }
        }

        mutating func saveSimpleKey() {
            guard simpleKeyAllowed else { return }
            simpleKeys[simpleKeys.count - 1] = SimpleKey(possible: true, line: line, index: index, column: column)
            saved.append((simpleKeys.count - 1, index))
        }

        /// A simple key spans one line and at most 1024 characters. libyaml checks the key of every
        /// flow level at every token; keys are saved in text order and go stale in that order, so a
        /// queue of them does the same in constant time per token, however deep the nesting.
        mutating func dropStaleSimpleKeys() {
            while oldest < saved.count {
                let (level, start) = saved[oldest]
                if level < simpleKeys.count && simpleKeys[level].possible && simpleKeys[level].index == start {
                    guard simpleKeys[level].line < line || start + 1024 < index else { break }
                    simpleKeys[level].possible = false
                }
                oldest += 1
            }
            if oldest > 4096 && oldest * 2 > saved.count {
                saved.removeFirst(oldest)
                oldest = 0
            }
        }

        mutating func rollIndent(to column: Int) {
            guard flowLevel == 0, indent < column else { return }
            indents.append(indent)
            indent = column
        }

        mutating func unrollIndent(to column: Int) {
            guard flowLevel == 0 else { return }
            while indent > column, let outer = indents.popLast() { indent = outer }
        }

        /// `!tag`, `!handle!suffix` or `!<verbatim>`: its characters (`&` and `*` among them) are the tag's.
        mutating func scanTag() {
            advance()
            let verbatim = at() == "<"
            if verbatim { advance() }
            while let c = at(), Self.isAlpha(c) || ";/?:@&=+$.%!~*'()".unicodeScalars.contains(c) || (verbatim && ",[]".unicodeScalars.contains(c)) {
                advance()
            }
            if verbatim && at() == ">" { advance() }
        }

        mutating func scanQuoted(single: Bool) {
            advance()
            while let c = at() {
                if single && c == "'" {
                    if at(1) == "'" {
                        advance()
                        advance()
                        continue
                    }
                    advance()
                    return
                }
                if !single && c == "\"" {
                    advance()
                    return
                }
                if !single && c == "\\" {
                    advance()  // the backslash; the escaped character (or line break) follows
                }
                advance()
            }
        }

        /// `|` or `>`, its header, then every line at least as indented as the content, which is
        /// the first non-empty line's indentation, and deeper than the enclosing block.
        mutating func scanBlockScalar() {
            advance()
            var increment = 0
            for _ in 0..<2 {
                if let c = at(), c == "+" || c == "-" {
                    advance()
                } else if let c = at(), ("1"..."9").contains(c) {
                    increment = Int(c.value - 0x30)
                    advance()
                }
            }
            while Self.isBlank(at()) { advance() }
            if at() == "#" { skipToBreak() }
            guard at() == nil || Self.isBreak(at()) else { return }  // libyaml: "did not find expected comment or line break"
            advance()
            var blockIndent = increment > 0 ? (indent >= 0 ? indent + increment : increment) : 0
            scanBlockBreaks(&blockIndent)
            while column == blockIndent && at() != nil {
                skipToBreak()
                guard at() != nil else { return }
                advance()
                scanBlockBreaks(&blockIndent)
            }
        }

        mutating func scanBlockBreaks(_ blockIndent: inout Int) {
            var maxIndent = 0
            while true {
                while (blockIndent == 0 || column < blockIndent) && at() == " " { advance() }
                maxIndent = max(maxIndent, column)
                guard Self.isBreak(at()) else { break }
                advance()
            }
            if blockIndent == 0 { blockIndent = max(maxIndent, indent + 1, 1) }
        }

        /// A plain scalar, over as many lines as libyaml takes it: continuation lines are those
        /// more indented than the enclosing block (in flow context, any).
        mutating func scanPlain() {
            let limit = indent + 1
            var leadingBlanks = false
            while true {
                if column == 0, let c = at(), c == "-" || c == ".", at(1) == c, at(2) == c, Self.isBlankZ(at(3)) { break }
                if at() == "#" { break }
                while let c = at(), !Self.isBlankZ(c) {
                    if flowLevel > 0 && c == ":", let next = at(1), ",?[]{}".unicodeScalars.contains(next) { break }
                    if (c == ":" && Self.isBlankZ(at(1))) || (flowLevel > 0 && ",[]{}".unicodeScalars.contains(c)) { break }
                    leadingBlanks = false
                    advance()
                }
                guard Self.isBlank(at()) || Self.isBreak(at()) else { break }
                while Self.isBlank(at()) || Self.isBreak(at()) {
                    if Self.isBreak(at()) { leadingBlanks = true }
                    advance()
                }
                if flowLevel == 0 && column < limit { break }
            }
            if leadingBlanks { simpleKeyAllowed = true }
        }
    }
}
