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

extension JSONEncoder {
    /// Stable, diff-friendly JSON for history and `--json` output.
    public static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return encoder
    }
}
