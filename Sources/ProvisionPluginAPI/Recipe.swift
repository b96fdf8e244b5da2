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
    /// A single- or double-quoted scalar: its text starts a column after `location`.
    public var quoted = false

    public init(_ kind: Kind, at location: SourceLocation) {
        self.kind = kind
        self.location = location
    }

    /// The variable a scalar is exactly a reference to (`${gpu}` or `${vars.gpu}`), if it is one.
    package var variableReference: String? {
        guard case .scalar(let text) = kind, let pieces = try? Interpolation.pieces(text, at: location), pieces.count == 1,
            case .reference(let name) = pieces[0]
        else { return nil }
        let parts = name.split(separator: ".").map(String.init)
        if parts.count == 1, parts[0] != "facts" { return parts[0] }
        if parts.count == 2, parts[0] == "vars" { return parts[1] }
        return nil
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
    /// `when:` as written.
    public var when: RecipeNode?
    /// `when:` parsed (see `Condition`): the step runs only if it holds.
    public var condition: Condition?
    /// `timeout:`: seconds an external plugin may take to plan this step (default 30).
    public var timeout: Int?

    public init(
        id: String, uses: String, options: [String: RecipeNode], location: SourceLocation, when: RecipeNode?,
        condition: Condition? = nil, timeout: Int? = nil
    ) {
        self.id = id
        self.uses = uses
        self.options = options
        self.location = location
        self.when = when
        self.condition = condition
        self.timeout = timeout
    }
}

/// Where a recipe variable fills a typed option whole (`identical_ids: ${identical_ids}`): a
/// `--var` value is checked against that option's type before anything is planned.
public struct VariableUse: Sendable {
    public var variable: String
    public var step: String
    public var option: String
    public var type: OptionType
    public var location: SourceLocation

    public init(variable: String, step: String, option: String, type: OptionType, location: SourceLocation) {
        self.variable = variable
        self.step = step
        self.option = option
        self.type = type
        self.location = location
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
    /// Every option a variable fills whole, in recipe order.
    public var variableUses: [VariableUse] = []
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

    /// The errors of one pass, reported together: the first with the others attached.
    package struct Problems {
        package var found: [ProvisionError] = []

        package init() {}

        package mutating func add(_ error: ProvisionError) { found.append(contentsOf: error.all) }

        package mutating func collect(_ body: () throws -> Void) {
            do {
                try body()
            } catch let error as ProvisionError {
                add(error)
            } catch {
                add(ProvisionError(.invalidInput, "\(error)"))
            }
        }

        package func throwIfAny() throws {
            guard var first = found.first else { return }
            first.others = Array(found.dropFirst())
            throw first
        }
    }
}
