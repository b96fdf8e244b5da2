import Foundation

/// A step's `when:`, parsed when the recipe loads so that anything outside the grammar is refused
/// with its line and column instead of being taken as true:
///
///     condition := or
///     or        := and ("or" and)*
///     and       := unary ("and" unary)*
///     unary     := "not" unary | "(" condition ")" | test
///     test      := ${ref} | operand ("==" | "!=") operand | operand ["not"] "in" list
///     list      := "[" [operand ("," operand)*] "]" | ${ref}
///     operand   := ${ref} | 'text' | "text" | word
///
/// A reference alone is true unless it is empty, false, no or 0 (or an empty list). Values are
/// compared as text; a reference to a list or mapping cannot be compared, a missing fact is an error.
public indirect enum Condition: Sendable, Hashable {
    case truthy(Operand)
    case equal(Operand, Operand)
    case notEqual(Operand, Operand)
    case member(Operand, [Operand])
    case memberOfReference(Operand, Operand)
    case not(Condition)
    case and(Condition, Condition)
    case or(Condition, Condition)

    public enum Operand: Sendable, Hashable, CustomStringConvertible {
        case reference(String, SourceLocation)
        case literal(String)

        public var description: String {
            switch self {
            case .reference(let name, _): return "${\(name)}"
            case .literal(let text): return text
            }
        }
    }

    /// Parses `text`, written at `location` (`quoted`: the YAML scalar has an opening quote, so its
    /// text starts one column later). Variables must be among `vars`; facts are checked when the
    /// step runs.
    public static func parse(_ text: String, at location: SourceLocation, quoted: Bool = false, vars: Set<String>) throws -> Condition {
        var parser = Parser(text: Array(text), location: location, offset: quoted ? 1 : 0, vars: vars)
        return try parser.parseAll()
    }

    /// The condition's value; `values` collects each reference with what it stood for, for the
    /// notice that says why a step was skipped.
    public func evaluate(_ context: InterpolationContext, values: inout [String: String]) throws -> Bool {
        switch self {
        case .truthy(let operand):
            let value = try Self.resolve(operand, context, &values)
            switch value {
            case .list(let items): return !items.isEmpty
            case .map(let entries): return !entries.isEmpty
            default:
                let word = (value.scalarText ?? "").trimmingCharacters(in: .whitespaces).lowercased()
                return !["", "false", "no", "0"].contains(word)
            }
        case .equal(let left, let right):
            return try Self.text(left, context, &values) == Self.text(right, context, &values)
        case .notEqual(let left, let right):
            return try Self.text(left, context, &values) != Self.text(right, context, &values)
        case .member(let item, let list):
            let needle = try Self.text(item, context, &values)
            return try list.contains { try Self.text($0, context, &values) == needle }
        case .memberOfReference(let item, let reference):
            let needle = try Self.text(item, context, &values)
            let value = try Self.resolve(reference, context, &values)
            guard case .list(let items) = value else {
                throw ProvisionError(.invalidInput, "when: \(reference) is not a list (it is \"\(value)\")", at: Self.location(reference))
            }
            return items.contains { $0.scalarText == needle }
        case .not(let inner): return !(try inner.evaluate(context, values: &values))
        case .and(let left, let right): return try left.evaluate(context, values: &values) && right.evaluate(context, values: &values)
        case .or(let left, let right): return try left.evaluate(context, values: &values) || right.evaluate(context, values: &values)
        }
    }

    private static func location(_ operand: Operand) -> SourceLocation? {
        if case .reference(_, let location) = operand { return location }
        return nil
    }

    private static func resolve(_ operand: Operand, _ context: InterpolationContext, _ values: inout [String: String]) throws -> Value {
        switch operand {
        case .literal(let text): return .string(text)
        case .reference(let name, let location):
            let value = try context.resolve(name, at: location)
            values["${\(name)}"] = value.description
            return value
        }
    }

    private static func text(_ operand: Operand, _ context: InterpolationContext, _ values: inout [String: String]) throws -> String {
        let value = try resolve(operand, context, &values)
        guard let text = value.scalarText else {
            throw ProvisionError(
                .invalidInput, "when: \(operand) is a list or mapping and cannot be compared (use in)", at: location(operand))
        }
        return text
    }

    private struct Parser {
        let text: [Character]
        let location: SourceLocation
        let offset: Int
        let vars: Set<String>
        var index = 0

        enum Token: Equatable {
            case reference(String)
            case literal(String)
            case word(String)
            case symbol(String)
            case end
        }

        func here(_ position: Int) -> SourceLocation {
            SourceLocation(file: location.file, line: location.line, column: location.column + offset + position)
        }

        func fail(_ message: String, at position: Int) -> ProvisionError {
            ProvisionError(
                .invalidInput,
                "when: \(message) (a condition is ${var}, A == B, A != B, A in [B, C], not …, and, or; "
                    + "operands are ${var}, ${facts.…}, words or quoted text)",
                at: here(position))
        }

        mutating func skipBlanks() {
            while index < text.count, text[index] == " " || text[index] == "\t" { index += 1 }
        }

        static func isWordCharacter(_ character: Character) -> Bool {
            character.isLetter || character.isNumber || "_-.:/+@%".contains(character)
        }

        /// The next token and where it starts, without consuming it.
        func peek() throws -> (Token, Int, Int) {
            var position = index
            while position < text.count, text[position] == " " || text[position] == "\t" { position += 1 }
            let start = position
            guard position < text.count else { return (.end, start, start) }
            let character = text[position]
            let rest = String(text[position...])
            if rest.hasPrefix("${") {
                guard let close = text[position...].firstIndex(of: "}") else { throw fail("unclosed ${", at: start) }
                let name = String(text[(position + 2)..<close]).trimmingCharacters(in: .whitespaces)
                let parts = name.split(separator: ".", omittingEmptySubsequences: false)
                guard !parts.isEmpty,
                    parts.allSatisfy({ Interpolation.isIdentifier(String($0)) || (!$0.isEmpty && $0.allSatisfy(\.isNumber)) })
                else { throw fail("\"${\(name)}\" is not a variable or fact reference", at: start) }
                return (.reference(name), start, close + 1)
            }
            for symbol in ["==", "!=", "(", ")", "[", "]", ","] where rest.hasPrefix(symbol) {
                return (.symbol(symbol), start, position + symbol.count)
            }
            if character == "'" || character == "\"" {
                guard let close = text[(position + 1)...].firstIndex(of: character) else {
                    throw fail("unclosed \(character)", at: start)
                }
                return (.literal(String(text[(position + 1)..<close])), start, close + 1)
            }
            guard Self.isWordCharacter(character) else { throw fail("unexpected \"\(character)\"", at: start) }
            var end = position
            while end < text.count, Self.isWordCharacter(text[end]) { end += 1 }
            return (.word(String(text[position..<end])), start, end)
        }

        mutating func next() throws -> (Token, Int) {
            let (token, start, end) = try peek()
            index = end
            return (token, start)
        }

        mutating func accept(_ token: Token) throws -> Bool {
            let (found, _, end) = try peek()
            guard found == token else { return false }
            index = end
            return true
        }

        mutating func parseAll() throws -> Condition {
            let (first, start, _) = try peek()
            guard first != .end else { throw fail("the condition is empty", at: start) }
            let condition = try parseOr()
            let (token, position, _) = try peek()
            guard token == .end else { throw fail("unexpected \(describe(token)) after the condition", at: position) }
            return condition
        }

        func describe(_ token: Token) -> String {
            switch token {
            case .reference(let name): return "${\(name)}"
            case .literal(let text): return "\"\(text)\""
            case .word(let word): return "\"\(word)\""
            case .symbol(let symbol): return "\"\(symbol)\""
            case .end: return "end"
            }
        }

        mutating func parseOr() throws -> Condition {
            var left = try parseAnd()
            while try accept(.word("or")) { left = .or(left, try parseAnd()) }
            return left
        }

        mutating func parseAnd() throws -> Condition {
            var left = try parseUnary()
            while try accept(.word("and")) { left = .and(left, try parseUnary()) }
            return left
        }

        mutating func parseUnary() throws -> Condition {
            if try accept(.word("not")) { return .not(try parseUnary()) }
            if try accept(.symbol("(")) {
                let inner = try parseOr()
                let (token, position, _) = try peek()
                guard try accept(.symbol(")")) else { throw fail("expected \")\", found \(describe(token))", at: position) }
                return inner
            }
            return try parseTest()
        }

        mutating func parseOperand() throws -> Operand {
            let (token, start) = try next()
            switch token {
            case .reference(let name):
                try check(name, at: start)
                return .reference(name, here(start))
            case .literal(let text): return .literal(text)
            case .word(let word) where !["and", "or", "not", "in"].contains(word): return .literal(word)
            default: throw fail("expected a value, found \(describe(token))", at: start)
            }
        }

        func check(_ name: String, at position: Int) throws {
            let parts = name.split(separator: ".")
            let head = String(parts[0])
            if head == "facts" { return }
            let variable = head == "vars" ? parts.dropFirst().first.map(String.init) ?? "" : head
            guard vars.contains(variable) else {
                let known = vars.sorted().joined(separator: ", ")
                throw ProvisionError(
                    .invalidInput, "when: unknown variable \"\(name)\" (declared: \(known.isEmpty ? "none" : known))", at: here(position))
            }
        }

        mutating func parseTest() throws -> Condition {
            let (_, start, _) = try peek()
            let left = try parseOperand()
            let (token, position, _) = try peek()
            switch token {
            case .symbol("=="):
                _ = try next()
                return .equal(left, try parseOperand())
            case .symbol("!="):
                _ = try next()
                return .notEqual(left, try parseOperand())
            case .word("in"):
                _ = try next()
                return try parseList(left)
            case .word("not"):
                _ = try next()
                let (after, afterPosition, _) = try peek()
                guard try accept(.word("in")) else { throw fail("expected \"in\" after \"not\", found \(describe(after))", at: afterPosition) }
                return .not(try parseList(left))
            case .end, .symbol(")"), .word("and"), .word("or"):
                guard case .reference = left else {
                    throw fail("\"\(left)\" alone is not a condition: compare it (== or !=) or use a ${variable}", at: start)
                }
                return .truthy(left)
            default:
                throw fail("expected ==, != or in after \(left), found \(describe(token))", at: position)
            }
        }

        mutating func parseList(_ item: Operand) throws -> Condition {
            let (token, start, _) = try peek()
            if case .reference = token { return .memberOfReference(item, try parseOperand()) }
            guard try accept(.symbol("[")) else { throw fail("expected a list [a, b] or a ${reference} after in", at: start) }
            var items: [Operand] = []
            if try accept(.symbol("]")) { return .member(item, items) }
            while true {
                items.append(try parseOperand())
                if try accept(.symbol("]")) { return .member(item, items) }
                let (found, position, _) = try peek()
                guard try accept(.symbol(",")) else { throw fail("expected \",\" or \"]\" in the list, found \(describe(found))", at: position) }
            }
        }
    }
}
