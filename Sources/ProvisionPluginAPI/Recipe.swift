import Foundation

/// A recipe value as written, with where it was written, so errors found later (at plan time,
/// after interpolation) still point at the right line.
public struct RecipeNode: Sendable {
    public enum Kind: Sendable {
        case scalar(String)
        case list([RecipeNode])
        case map([(key: String, keyLocation: SourceLocation, value: RecipeNode)])
    }

    public var kind: Kind
    public var location: SourceLocation

    public init(_ kind: Kind, at location: SourceLocation) {
        self.kind = kind
        self.location = location
    }

    package var typeName: String {
        switch kind {
        case .scalar: return "a scalar"
        case .list: return "a list"
        case .map: return "a mapping"
        }
    }

    /// The value with no interpolation: for variable defaults.
    package var literal: Value {
        switch kind {
        case .scalar(let text): return .string(text)
        case .list(let items): return .list(items.map(\.literal))
        case .map(let entries):
            return .map(Dictionary(entries.map { ($0.key, $0.value.literal) }, uniquingKeysWith: { _, last in last }))
        }
    }
}

public struct RecipeStep: Sendable {
    public var id: String
    public var uses: String
    public var options: [String: RecipeNode]
    public var location: SourceLocation
    /// `when:`: the step runs only if this, interpolated, is not empty, "false", "no" or "0".
    public var when: RecipeNode?
    /// `timeout:`: seconds an external plugin may take to plan this step (default 30).
    public var timeout: Int?

    public init(id: String, uses: String, options: [String: RecipeNode], location: SourceLocation, when: RecipeNode?, timeout: Int? = nil) {
        self.id = id
        self.uses = uses
        self.options = options
        self.location = location
        self.when = when
        self.timeout = timeout
    }
}

/// A parsed, validated recipe. Loading checks everything that can be checked without the host:
/// keys, step kinds, option names and types, variable references.
public struct Recipe: Sendable {
    public var path: String
    public var name: String
    public var description: String?
    public var vars: [String: Value]
    public var varOrder: [String]
    public var steps: [RecipeStep]
    /// SHA-256 of the recipe's bytes, and its absolute path when it was read from a file.
    public var sha256: String? = nil
    public var absolutePath: String? = nil

    public init(
        path: String, name: String, description: String?, vars: [String: Value], varOrder: [String], steps: [RecipeStep],
        sha256: String? = nil, absolutePath: String? = nil
    ) {
        self.path = path
        self.name = name
        self.description = description
        self.vars = vars
        self.varOrder = varOrder
        self.steps = steps
        self.sha256 = sha256
        self.absolutePath = absolutePath
    }
}
