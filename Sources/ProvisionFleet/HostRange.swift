/// Inventory host entries as Ansible reads them: `name`, `name:PORT`, `[v6::addr]:PORT`, and ranges
/// in the name (`node[01:20]`, `rack[a:f]`, strides `[1:10:2]`, several per name).
enum HostRange {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// At most this many names from one entry: a typo such as `[1:99999999]` is an error, not a hang.
    static let maxHosts = 100_000

    /// The names an entry stands for and the port it gives them (nil when none).
    static func expand(_ entry: String) throws -> (names: [String], port: Int?) {
        let (pattern, port) = splitPort(entry)
        guard pattern.contains("[") else { return ([pattern], port) }
        var names: [String] = []
        try expandRanges(pattern, into: &names)
        return (names, port)
    }

    /// `host:22` and `[addr]:22` give a port when what is left is a valid host name or address
    /// (with ranges); anything else is taken whole as the name, as Ansible does.
    static func splitPort(_ entry: String) -> (String, Int?) {
        parseAddress(entry) ?? (entry, nil)
    }

    /// A host name or address (ranges allowed) with an optional port; nil when it is neither.
    static func parseAddress(_ entry: String) -> (String, Int?)? {
        var address = entry
        var port: Int? = nil
        if address.hasPrefix("["), let close = address.lastIndex(of: "]"),
            address[address.index(after: close)...].hasPrefix(":"),
            let number = portNumber(address[address.index(close, offsetBy: 2)...]), close > address.index(after: address.startIndex) {
            port = number
            address = String(address[address.index(after: address.startIndex)..<close])
        }
        if let colon = portColon(address), let number = portNumber(address[address.index(after: colon)...]) {
            port = number
            address = String(address[..<colon])
        }
        guard isIPv4(address) || isIPv6(address) || isHostname(address) else { return nil }
        return (address, port)
    }

    private static func portNumber(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(text)
    }

    /// The colon before a trailing port: the text before it has no colon outside `[...]`.
    private static func portColon(_ text: String) -> String.Index? {
        var depth = 0
        var found: String.Index? = nil
        for index in text.indices {
            switch text[index] {
            case "[": depth += 1
            case "]": depth = max(0, depth - 1)
            case ":" where depth == 0:
                if found != nil { return nil }
                found = index
            default: break
            }
        }
        return found
    }

    /// Splits a name into literal text and `[...]` range pieces; nil when brackets do not pair up.
    private static func pieces(_ text: String) -> [(isRange: Bool, text: String)]? {
        var result: [(Bool, String)] = []
        var current = ""
        var inRange = false
        for c in text {
            if c == "[" {
                if inRange { return nil }
                if !current.isEmpty { result.append((false, current)) }
                current = ""
                inRange = true
            } else if c == "]" {
                if !inRange { return nil }
                result.append((true, current))
                current = ""
                inRange = false
            } else {
                current.append(c)
            }
        }
        if inRange { return nil }
        if !current.isEmpty { result.append((false, current)) }
        return result
    }

    private static func isRangeText(_ text: String, hex: Bool, alpha: Bool) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else { return false }
        if parts.count == 3, parts[2].isEmpty || !parts[2].allSatisfy({ $0.isASCII && $0.isNumber }) { return false }
        let bounds = parts.prefix(2)
        if alpha, bounds.allSatisfy({ $0.count == 1 && $0.first!.isASCII && $0.first!.isLowercase }) { return true }
        return bounds.allSatisfy { bound in
            !bound.isEmpty && bound.allSatisfy { $0.isASCII && ($0.isNumber || (hex && $0.isHexDigit)) }
        }
    }

    private static func isIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { part in
            if part.hasPrefix("[") && part.hasSuffix("]") && part.count > 2 {
                return isRangeText(String(part.dropFirst().dropLast()), hex: false, alpha: false)
            }
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(part) else { return false }
            return value <= 255
        }
    }

    private static func isIPv6(_ text: String) -> Bool {
        guard text.contains(":"), let parts = pieces(text) else { return false }
        // Ranges stand for one hexadecimal group each; check the shape with them replaced.
        var flat = ""
        for piece in parts {
            if piece.isRange {
                guard isRangeText(piece.text, hex: true, alpha: false) else { return false }
                flat += "0"
            } else {
                flat += piece.text.lowercased()
            }
        }
        var groups = flat.components(separatedBy: ":")
        if let last = groups.last, last.contains(".") {
            guard isIPv4(last) else { return false }
            groups[groups.count - 1] = "0"
            groups.append("0")
        }
        let compressed = flat.components(separatedBy: "::").count - 1
        guard compressed <= 1, groups.count <= 8 + (compressed == 1 ? 2 : 0) else { return false }
        if compressed == 0 && groups.count != 8 { return false }
        return groups.allSatisfy { $0.count <= 4 && $0.allSatisfy { $0.isASCII && $0.isHexDigit } }
    }

    /// Labels of word characters, `-` and `_` (with ranges), separated by dots, not ending in `-`/`_`.
    private static func isHostname(_ text: String) -> Bool {
        guard let parts = pieces(text), !parts.isEmpty else { return false }
        var label = ""
        var labels: [String] = []
        for piece in parts {
            if piece.isRange {
                guard isRangeText(piece.text, hex: false, alpha: true) else { return false }
                label += "0"
            } else {
                for c in piece.text {
                    if c == "." {
                        labels.append(label)
                        label = ""
                    } else {
                        label.append(c)
                    }
                }
            }
        }
        labels.append(label)
        return labels.allSatisfy { label in
            guard let first = label.first, let last = label.last else { return false }
            return (first.isLetter || first.isNumber || first == "_") && last != "-" && last != "_"
                && label.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
        }
    }

    /// Expands the first `[...]` of `name`, then the rest of each result.
    private static func expandRanges(_ name: String, into names: inout [String]) throws {
        guard let open = name.firstIndex(of: "[") else {
            guard names.count < maxHosts else { throw Failure(description: "the range makes more than \(maxHosts) hosts") }
            names.append(name)
            return
        }
        guard let close = name[open...].firstIndex(of: "]") else {
            throw Failure(description: "host range \"\(name)\" has no closing ]")
        }
        let head = String(name[..<open]), tail = String(name[name.index(after: close)...])
        let bounds = name[name.index(after: open)..<close].split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard bounds.count == 2 || bounds.count == 3 else {
            throw Failure(description: "host range must be begin:end or begin:end:step, found [\(bounds.joined(separator: ":"))]")
        }
        let begin = bounds[0].isEmpty ? "0" : bounds[0], end = bounds[1]
        guard !end.isEmpty else { throw Failure(description: "host range must specify end value") }
        var step = 1
        if bounds.count == 3 {
            guard let value = Int(bounds[2]), value > 0 else { throw Failure(description: "host range step \"\(bounds[2])\" must be a positive number") }
            step = value
        }
        var items: [String] = []
        let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        if begin.count == 1, end.count == 1, let from = letters.firstIndex(of: begin.first!), let to = letters.firstIndex(of: end.first!) {
            guard from <= to else { throw Failure(description: "host range must have begin <= end") }
            items = stride(from: from, through: to, by: step).map { String(letters[$0]) }
        } else {
            guard let from = Int(begin), let to = Int(end) else {
                throw Failure(description: "host range [\(bounds.joined(separator: ":"))] is neither numeric nor one letter to one letter")
            }
            let width: Int?
            if begin.hasPrefix("0") && begin.count > 1 {
                guard begin.count == end.count else { throw Failure(description: "host range must specify equal-length begin and end formats") }
                width = begin.count
            } else {
                width = nil
            }
            guard from > to || (to - from) / step < maxHosts else { throw Failure(description: "the range makes more than \(maxHosts) hosts") }
            for value in stride(from: from, through: to, by: step) {
                var text = String(value)
                if let width, text.count < width { text = String(repeating: "0", count: width - text.count) + text }
                items.append(text)
            }
        }
        for item in items { try expandRanges(head + item + tail, into: &names) }
    }
}
