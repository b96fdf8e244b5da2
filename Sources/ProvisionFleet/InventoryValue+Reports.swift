import Foundation

/// The same JSON values carry each host's own `--json` document through a fleet run: decoded from
/// what the host printed, read with the accessors below, encoded again into the fleet's document.
extension InventoryValue: Encodable {
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .float(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .list(let value): try container.encode(value)
        case .map(let value): try container.encode(value)
        }
    }

    /// A member of a map, whatever the key style the host's provision wrote (`reboot_required`,
    /// or `rebootRequired` from a provision_path build older than the snake_case keys).
    public subscript(key: String) -> InventoryValue? {
        guard case .map(let members) = self else { return nil }
        if let value = members[key] { return value }
        let camel = key.split(separator: "_").enumerated().map { $0.offset == 0 ? String($0.element) : $0.element.capitalized }.joined()
        return members[camel]
    }

    public var int: Int? { if case .int(let value) = self { value } else { nil } }
    public var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
    public var string: String? { if case .string(let value) = self { value } else { nil } }
    public var array: [InventoryValue]? { if case .list(let value) = self { value } else { nil } }
    public var isNull: Bool { self == .null }
}
