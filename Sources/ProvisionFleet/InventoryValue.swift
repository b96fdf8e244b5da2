import Foundation

/// A variable's value as Ansible holds it after reading an inventory or a vars file: YAML 1.1
/// scalars (PyYAML's resolution: `yes` is true, `010` is 8, `1e5` is text) or Python literals from
/// INI lines. Kept typed so a fleet run can compare with `ansible-inventory --list` and hand each
/// recipe variable over in the form `provision --var` takes.
public indirect enum InventoryValue: Sendable, Hashable, CustomStringConvertible, Decodable {
    case string(String)
    case int(Int)
    case float(Double)
    case bool(Bool)
    case null
    case list([InventoryValue])
    /// Keys are strings, as in the JSON `ansible-inventory` prints (a YAML key `1` becomes "1").
    case map([String: InventoryValue])

    /// Reads JSON (the output of `ansible-inventory --list`, say): true/false stay booleans,
    /// whole numbers are ints.
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .float(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([InventoryValue].self) {
            self = .list(value)
        } else {
            self = .map(try container.decode([String: InventoryValue].self))
        }
    }

    /// The text a recipe variable gets (`--var NAME=TEXT`): a scalar as written by Python's `str`
    /// for strings and numbers, `true`/`false` for booleans (what provision's `when:` reads),
    /// an empty string for null, and a list of scalars as its items separated by single spaces
    /// (provision's list options split a scalar on blanks). nil for maps and nested lists, which
    /// a recipe variable cannot hold.
    public var recipeText: String? {
        switch self {
        case .list(let items):
            var words: [String] = []
            for item in items {
                switch item {
                case .list, .map: return nil
                default: words.append(item.scalarText)
                }
            }
            return words.joined(separator: " ")
        case .map: return nil
        default: return scalarText
        }
    }

    /// The scalar's text; lists and maps as JSON.
    public var scalarText: String {
        switch self {
        case .string(let text): return text
        case .int(let value): return String(value)
        case .float(let value): return Self.pythonFloat(value)
        case .bool(let value): return value ? "true" : "false"
        case .null: return ""
        case .list, .map: return jsonText
        }
    }

    public var description: String {
        if case .string(let text) = self { return text }
        return jsonText
    }

    /// The value as Foundation JSON objects (NSNull for null), as `JSONSerialization` reads them.
    public var jsonObject: Any {
        switch self {
        case .string(let text): return text
        case .int(let value): return value
        case .float(let value): return value
        case .bool(let value): return value
        case .null: return NSNull()
        case .list(let items): return items.map(\.jsonObject)
        case .map(let entries): return entries.mapValues(\.jsonObject)
        }
    }

    /// Compact JSON with sorted keys.
    public var jsonText: String {
        let object = jsonObject
        if JSONSerialization.isValidJSONObject([object]),
            let data = try? JSONSerialization.data(withJSONObject: [object], options: [.sortedKeys, .fragmentsAllowed]) {
            let text = String(decoding: data, as: UTF8.self)
            return String(text.dropFirst().dropLast())
        }
        return "\(object)"
    }

    /// Python's `repr` of a float, close enough for inventories: integral values keep ".0".
    static func pythonFloat(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == value.rounded(), abs(value) < 1e16 { return String(format: "%.1f", value) }
        return "\(value)"
    }
}

/// PyYAML's implicit resolution of plain (unquoted, untagged) scalars: YAML 1.1, as Ansible's loader
/// reads inventories and vars files (Yams resolves a few forms differently: `1e5`, `0o17`).
enum YAMLScalar {
    private static let boolWords: [String: Bool] = [
        "yes": true, "Yes": true, "YES": true, "true": true, "True": true, "TRUE": true, "on": true, "On": true, "ON": true,
        "no": false, "No": false, "NO": false, "false": false, "False": false, "FALSE": false, "off": false, "Off": false,
        "OFF": false,
    ]
    private static let nullWords: Set<String> = ["", "~", "null", "Null", "NULL"]

    private static func regex(_ pattern: String) -> NSRegularExpression {
        // Fixed patterns of this file, matched against one scalar each.
        try! NSRegularExpression(pattern: pattern)
    }
    private static let intPattern = regex(
        "^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$")
    private static let floatPattern = regex(
        "^(?:[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+][0-9]+)?|\\.[0-9_]+(?:[eE][-+][0-9]+)?"
            + "|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*|[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN))$")

    private static func matches(_ pattern: NSRegularExpression, _ text: String) -> Bool {
        pattern.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    /// The value of a plain scalar.
    static func resolve(_ text: String) -> InventoryValue {
        if let value = boolWords[text] { return .bool(value) }
        if nullWords.contains(text) { return .null }
        guard text.count <= 64, let first = text.unicodeScalars.first, "+-.0123456789".unicodeScalars.contains(first) else {
            return .string(text)
        }
        if matches(intPattern, text), let value = int(text) { return .int(value) }
        if matches(floatPattern, text), let value = float(text) { return .float(value) }
        return .string(text)
    }

    private static func int(_ written: String) -> Int? {
        var text = written.replacingOccurrences(of: "_", with: "")
        var sign = 1
        if text.hasPrefix("-") { sign = -1; text.removeFirst() } else if text.hasPrefix("+") { text.removeFirst() }
        let magnitude: Int?
        if text == "0" {
            magnitude = 0
        } else if text.hasPrefix("0b") {
            magnitude = Int(text.dropFirst(2), radix: 2)
        } else if text.hasPrefix("0x") {
            magnitude = Int(text.dropFirst(2), radix: 16)
        } else if text.hasPrefix("0") {
            magnitude = Int(text.dropFirst(), radix: 8)
        } else if text.contains(":") {
            magnitude = sexagesimal(text).flatMap { Int(exactly: $0) }
        } else {
            magnitude = Int(text)
        }
        return magnitude.map { $0 * sign }
    }

    private static func float(_ written: String) -> Double? {
        var text = written.replacingOccurrences(of: "_", with: "").lowercased()
        var sign = 1.0
        if text.hasPrefix("-") { sign = -1; text.removeFirst() } else if text.hasPrefix("+") { text.removeFirst() }
        if text == ".inf" { return sign * .infinity }
        if text == ".nan" { return .nan }
        if text.contains(":") { return sexagesimal(text).map { $0 * sign } }
        return Double(text.hasSuffix(".") ? text + "0" : text).map { $0 * sign }
    }

    /// `1:30` is 90 in YAML 1.1 (base 60).
    private static func sexagesimal(_ text: String) -> Double? {
        var value = 0.0
        for part in text.split(separator: ":") {
            guard let digit = Double(part) else { return nil }
            value = value * 60 + digit
        }
        return value
    }
}
