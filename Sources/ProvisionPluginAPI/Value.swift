import Foundation

/// A JSON-shaped value: recipe variables, facts, and step exports all use it, so they can be
/// interpolated into options and written into run records alike.
public indirect enum Value: Sendable, Hashable, Codable, CustomStringConvertible {
    case string(String)
    case int(Int)
    case bool(Bool)
    case list([Value])
    case map([String: Value])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([Value].self) {
            self = .list(value)
        } else {
            self = .map(try container.decode([String: Value].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .list(let value): try container.encode(value)
        case .map(let value): try container.encode(value)
        }
    }

    /// The text a scalar stands for inside a larger string; nil for lists and maps.
    public var scalarText: String? {
        switch self {
        case .string(let value): return value
        case .int(let value): return String(value)
        case .bool(let value): return value ? "true" : "false"
        case .list, .map: return nil
        }
    }

    public var description: String {
        if let scalarText { return scalarText }
        let data = (try? JSONEncoder.sorted.encode(self)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// The scalars of a list ("facts.gpu.addresses"); nil when this is not a list.
    public var strings: [String]? {
        guard case .list(let items) = self else { return nil }
        return items.compactMap(\.scalarText)
    }

    /// Follows a dotted path ("os.id") through nested maps.
    public func lookup(_ path: ArraySlice<Substring>) -> Value? {
        guard let first = path.first else { return self }
        guard case .map(let entries) = self, let next = entries[String(first)] else { return nil }
        return next.lookup(path.dropFirst())
    }
}

/// A fact one step exports for later ones: a Codable type in the exporting module, written under
/// `facts.<key>` (so recipes still reach it as `${facts.gpu.ids}`) and read back with
/// `HostView.fact(_:)`.
public protocol StepFact: Codable, Sendable {
    static var key: String { get }
}

extension StepFact {
    /// The fact as it goes into `StepPlan.exports`.
    public var export: [String: Value] {
        get throws { [Self.key: try Value(encoding: self)] }
    }
}

extension Value {
    /// Any Encodable as a value (through its JSON form).
    public init<T: Encodable>(encoding value: T) throws {
        self = try JSONDecoder().decode(Value.self, from: JSONEncoder().encode(value))
    }

    /// The value decoded as a Decodable type (through its JSON form).
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: JSONEncoder().encode(self))
    }

    /// A decoding failure in words: which field, and what was wrong with it.
    public static func describe(_ error: Error) -> String {
        func path(_ keys: [CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined().drop { $0 == "." }.description
        }
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            return "field \"\(field)\" is missing"
        case DecodingError.typeMismatch(let type, let context), DecodingError.valueNotFound(let type, let context):
            return "field \"\(path(context.codingPath))\" is not a \(Self.name(of: type))"
        case DecodingError.dataCorrupted(let context):
            return "field \"\(path(context.codingPath))\": \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }

    private static func name(of type: Any.Type) -> String {
        switch type {
        case is String.Type: return "string"
        case is Int.Type: return "integer"
        case is Bool.Type: return "boolean"
        case is [Any].Type: return "list"
        case is [String: Any].Type: return "mapping"
        default: return "\(type)"
        }
    }
}

extension JSONEncoder {
    /// Stable, diff-friendly JSON for history and `--json` output.
    public static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return encoder
    }
}
