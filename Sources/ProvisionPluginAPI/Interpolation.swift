import Foundation

/// `${name}` takes a recipe variable, `${facts.os.id}` a fact (including what earlier steps
/// exported), `$${` is a literal `${`. Any other `$` is literal, so shell snippets survive.
public enum Interpolation {
    enum Piece: Equatable {
        case text(String)
        case reference(String)
    }

    package static func isIdentifier(_ text: String) -> Bool {
        guard let first = text.first, first.isLetter || first == "_" else { return false }
        return text.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }
    }

    static func pieces(_ text: String, at location: SourceLocation) throws -> [Piece] {
        var result: [Piece] = []
        var literal = ""
        var index = text.startIndex
        while index < text.endIndex {
            let rest = text[index...]
            if rest.hasPrefix("$${") {
                literal += "${"
                index = text.index(index, offsetBy: 3)
            } else if rest.hasPrefix("${") {
                guard let close = rest.firstIndex(of: "}") else {
                    throw ProvisionError(.invalidInput, "unclosed \"${\" in \"\(text)\" (write $${ for a literal ${)", at: location)
                }
                let name = String(rest[rest.index(index, offsetBy: 2)..<close]).trimmingCharacters(in: .whitespaces)
                let parts = name.split(separator: ".", omittingEmptySubsequences: false)
                guard !parts.isEmpty, parts.allSatisfy({ isIdentifier(String($0)) || $0.allSatisfy(\.isNumber) && !$0.isEmpty }) else {
                    throw ProvisionError(.invalidInput, "\"${\(name)}\" is not a variable or fact reference", at: location)
                }
                if !literal.isEmpty { result.append(.text(literal)) }
                literal = ""
                result.append(.reference(name))
                index = text.index(after: close)
            } else {
                literal.append(text[index])
                index = text.index(after: index)
            }
        }
        if !literal.isEmpty { result.append(.text(literal)) }
        return result
    }

    /// Load-time check: every reference that is not a fact names a declared variable.
    package static func checkReferences(in node: RecipeNode, vars: Set<String>) throws {
        switch node.kind {
        case .scalar(let text):
            for case .reference(let name) in try pieces(text, at: node.location) {
                let head = name.split(separator: ".").first.map(String.init) ?? name
                if head == "facts" { continue }
                let variable = head == "vars" ? name.split(separator: ".").dropFirst().first.map(String.init) ?? "" : name
                guard vars.contains(variable) else {
                    let known = vars.sorted().joined(separator: ", ")
                    throw ProvisionError(
                        .invalidInput, "unknown variable \"\(name)\" (declared: \(known.isEmpty ? "none" : known))",
                        at: node.location)
                }
            }
        case .list(let items): try items.forEach { try checkReferences(in: $0, vars: vars) }
        case .map(let entries): try entries.forEach { try checkReferences(in: $0.value, vars: vars) }
        }
    }
}

/// What `${…}` can see while one step is planned.
public struct InterpolationContext: Sendable {
    public var vars: [String: Value]
    public var facts: Value

    public init(vars: [String: Value], facts: Value) {
        self.vars = vars
        self.facts = facts
    }

    func resolve(_ name: String, at location: SourceLocation) throws -> Value {
        let parts = name.split(separator: ".")
        switch parts.first {
        case "facts":
            guard let value = facts.lookup(parts.dropFirst()) else {
                throw ProvisionError(.invalidInput, "no fact \"\(name)\" on this host", at: location)
            }
            return value
        case "vars":
            guard parts.count >= 2, let value = vars[String(parts[1])]?.lookup(parts.dropFirst(2)) else {
                throw ProvisionError(.invalidInput, "unknown variable \"\(name)\"", at: location)
            }
            return value
        default:
            guard let value = vars[String(parts[0])]?.lookup(parts.dropFirst()) else {
                throw ProvisionError(.invalidInput, "unknown variable \"\(name)\"", at: location)
            }
            return value
        }
    }

    /// A string whose whole text is one reference yields that value unchanged (so a list
    /// variable can fill a list option); otherwise references are spliced in as text.
    public func render(_ text: String, at location: SourceLocation) throws -> Value {
        let pieces = try Interpolation.pieces(text, at: location)
        if pieces.count == 1, case .reference(let name) = pieces[0] {
            return try resolve(name, at: location)
        }
        var out = ""
        for piece in pieces {
            switch piece {
            case .text(let literal): out += literal
            case .reference(let name):
                guard let text = try resolve(name, at: location).scalarText else {
                    throw ProvisionError(
                        .invalidInput, "\"${\(name)}\" is a list or mapping and cannot be spliced into text", at: location)
                }
                out += text
            }
        }
        return .string(out)
    }
}
