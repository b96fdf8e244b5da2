import CXML2
import Foundation
import ProvisionPluginAPI

/// An XML file edited as text. libxml2 decides whether the text is XML at all (strict: no
/// recovery, no network, no entities, no DOCTYPE); the edits then splice the original bytes, so every
/// byte an edit does not need to touch (quotes, indentation, comments, libvirt's header) stays.
/// Elements are re-read after every edit: an `XMLElement` is a snapshot of positions, valid until
/// the next change.
public struct XMLText: Sendable {
    public private(set) var text: String
    public private(set) var root: XMLElement
    let file: String
    /// The quote the document uses for attributes (libvirt writes ').
    let quote: Character
    /// One level of indentation, as the document uses it.
    let indentUnit: String

    public init(_ text: String, file: String) throws {
        try Self.check(text, file: file)
        self.text = text
        self.file = file
        var scanner = XMLScanner(Array(text.utf8), file: file)
        root = try scanner.scan()
        quote = root.firstQuote ?? "'"
        indentUnit = Self.indentUnit(of: root, in: Array(text.utf8))
    }

    /// Refuses anything libxml2 does not read as a well-formed document, and any DOCTYPE: a
    /// document type is where entities are declared, and an external entity can read host files.
    public static func check(_ text: String, file: String) throws {
        var bytes = Array(text.utf8)
        bytes.append(0)
        let verdict = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                provision_xml_check($0, Int32(buffer.count - 1), file)
            }
        }
        guard verdict.wellFormed == 1 else {
            let message = withUnsafeBytes(of: verdict.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            throw ProvisionError(
                .invalidInput, "malformed XML: \(message.trimmingCharacters(in: .whitespacesAndNewlines))",
                at: SourceLocation(file: file, line: Int(verdict.line), column: max(Int(verdict.column), 1)))
        }
        if verdict.hasDoctype == 1 {
            let line = text.components(separatedBy: "<!DOCTYPE").first.map { $0.filter { $0 == "\n" }.count + 1 } ?? 1
            throw ProvisionError(
                .invalidInput, "a DOCTYPE (and the entities it may declare) is not accepted in this file",
                at: SourceLocation(file: file, line: line, column: 1))
        }
    }

    // MARK: edits

    /// Sets (or adds, after the last attribute) one attribute of `element`.
    public mutating func setAttribute(_ element: XMLElement, _ name: String, _ value: String) throws {
        try setAttributes(element, [(name, value)])
    }

    /// Sets several attributes of one element in one edit (positions are only valid until an edit).
    public mutating func setAttributes(_ element: XMLElement, _ values: [(String, String)]) throws {
        var replacements: [(Range<Int>, String)] = []
        var added = ""
        for (name, value) in values {
            if let attribute = element.attributes.first(where: { $0.name == name }) {
                if attribute.value != value { replacements.append((attribute.valueRange, Self.escape(value, quote: attribute.quote))) }
            } else {
                added += " \(name)=\(quote)\(Self.escape(value, quote: quote))\(quote)"
            }
        }
        if !added.isEmpty { replacements.append((element.attributesEnd..<element.attributesEnd, added)) }
        guard !replacements.isEmpty else { return }
        var bytes = Array(text.utf8)
        for (range, replacement) in replacements.sorted(by: { $0.0.lowerBound > $1.0.lowerBound }) {
            bytes.replaceSubrange(range, with: Array(replacement.utf8))
        }
        try commit(bytes)
    }

    /// Removes one attribute of `element` with the blanks before it; nothing when it has none such.
    public mutating func removeAttribute(_ element: XMLElement, _ name: String) throws {
        guard let attribute = element.attributes.first(where: { $0.name == name }) else { return }
        let bytes = Array(text.utf8)
        // Back from the opening quote over `name =`, then over the blanks that separate it.
        var start = attribute.valueRange.lowerBound - 1
        while start > 0 && bytes[start - 1] != UInt8(ascii: "=") { start -= 1 }
        start -= 1
        while start > 0 && Self.isSpace(bytes[start - 1]) { start -= 1 }
        start -= name.utf8.count
        while start > 0 && Self.isSpace(bytes[start - 1]) { start -= 1 }
        try splice(start..<(attribute.valueRange.upperBound + 1), "")
    }

    /// Inserts `fragment` as a child of `parent`, right after `sibling` (or as the first child),
    /// indented like the document.
    public mutating func insert(_ fragment: XMLFragment, into parent: XMLElement, after sibling: XMLElement?) throws {
        let bytes = Array(text.utf8)
        let parentIndent = Self.indent(of: parent, in: bytes) ?? ""
        let childIndent = parent.children.first.flatMap { Self.indent(of: $0, in: bytes) } ?? parentIndent + indentUnit
        let rendered = fragment.lines(quote: quote, unit: indentUnit).map { childIndent + $0 }.joined(separator: "\n")
        if let sibling {
            try splice(sibling.range.upperBound..<sibling.range.upperBound, "\n" + rendered)
        } else if let end = parent.endTag {
            if parent.children.isEmpty, bytes[parent.startTag.upperBound..<end.lowerBound].allSatisfy(Self.isSpace) {
                try splice(parent.startTag.upperBound..<end.lowerBound, "\n" + rendered + "\n" + parentIndent)
            } else {
                try splice(parent.startTag.upperBound..<parent.startTag.upperBound, "\n" + rendered)
            }
        } else {
            // <name …/> becomes <name …> child </name>.
            var close = parent.startTag.upperBound - 2
            while close > parent.startTag.lowerBound && Self.isSpace(bytes[close - 1]) { close -= 1 }
            try splice(close..<parent.startTag.upperBound, ">\n" + rendered + "\n" + parentIndent + "</\(parent.name)>")
        }
    }

    /// Inserts `fragment` into `parent` where `order` (the element names in the order their writer
    /// emits them) puts it: after the last child that comes before or with it.
    public mutating func insert(_ fragment: XMLFragment, into parent: XMLElement, order: [String]) throws {
        let rank = order.firstIndex(of: fragment.name) ?? order.count
        let sibling = parent.children.last { child in (order.firstIndex(of: child.name) ?? Int.max) <= rank }
        try insert(fragment, into: parent, after: sibling ?? (rank >= order.count ? parent.children.last : nil))
    }

    /// Replaces the text of an element without child elements (`<vcpu placement='static'>4</vcpu>`);
    /// `<name …/>` gets the text between a new start and end tag.
    public mutating func setText(_ element: XMLElement, _ value: String) throws {
        guard element.children.isEmpty else {
            throw ProvisionError(
                .invalidInput, "<\(element.name)> holds elements, not only text", at: SourceLocation(file: file, line: element.line, column: 1))
        }
        let escaped = Self.escapeText(value)
        if let end = element.endTag {
            try splice(element.startTag.upperBound..<end.lowerBound, escaped)
        } else {
            let bytes = Array(text.utf8)
            var close = element.startTag.upperBound - 2
            while close > element.startTag.lowerBound && Self.isSpace(bytes[close - 1]) { close -= 1 }
            try splice(close..<element.startTag.upperBound, ">" + escaped + "</\(element.name)>")
        }
    }

    /// Removes `element`, and its line when it was alone on it.
    public mutating func remove(_ element: XMLElement) throws {
        let bytes = Array(text.utf8)
        var start = element.range.lowerBound
        while start > 0 && (bytes[start - 1] == 0x20 || bytes[start - 1] == 0x09) { start -= 1 }
        if start > 0 && bytes[start - 1] == 0x0A { start -= 1 } else { start = element.range.lowerBound }
        try splice(start..<element.range.upperBound, "")
    }

    private mutating func splice(_ range: Range<Int>, _ replacement: String) throws {
        var bytes = Array(text.utf8)
        bytes.replaceSubrange(range, with: Array(replacement.utf8))
        try commit(bytes)
    }

    private mutating func commit(_ bytes: [UInt8]) throws {
        let edited = String(decoding: bytes, as: UTF8.self)
        // An edit that broke the document is a bug here, never something to write to a host.
        try Self.check(edited, file: file)
        text = edited
        var scanner = XMLScanner(bytes, file: file)
        root = try scanner.scan()
    }

    // MARK: helpers

    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

    /// The whitespace before `element` on its line, when nothing else precedes it there.
    static func indent(of element: XMLElement, in bytes: [UInt8]) -> String? {
        var start = element.range.lowerBound
        while start > 0 && (bytes[start - 1] == 0x20 || bytes[start - 1] == 0x09) { start -= 1 }
        guard start == 0 || bytes[start - 1] == 0x0A else { return nil }
        return String(decoding: bytes[start..<element.range.lowerBound], as: UTF8.self)
    }

    static func indentUnit(of root: XMLElement, in bytes: [UInt8]) -> String {
        guard let child = root.children.first, let childIndent = indent(of: child, in: bytes) else { return "  " }
        let rootIndent = indent(of: root, in: bytes) ?? ""
        let unit = String(childIndent.dropFirst(rootIndent.count))
        return unit.isEmpty ? "  " : unit
    }

    /// Character data: only what would end it or start markup is escaped.
    static func escapeText(_ value: String) -> String {
        value.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func escape(_ value: String, quote: Character) -> String {
        var out = ""
        for character in value {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            // Always, as libvirt writes it, so a file it re-writes reads the same.
            case "\"": out += "&quot;"
            case "'" where quote == "'": out += "&apos;"
            case "\n": out += "&#10;"
            case "\t": out += "&#9;"
            case "\r": out += "&#13;"
            default: out.append(character)
            }
        }
        return out
    }
}

/// An element's name, attributes, text and children, with the byte ranges the editor splices.
public struct XMLElement: Sendable {
    public struct Attribute: Sendable {
        public var name: String
        public var value: String
        var valueRange: Range<Int>
        var quote: Character
    }

    public var name: String
    public var attributes: [Attribute]
    public var children: [XMLElement]
    /// The element's own text (not its children's), entities decoded.
    public var text: String
    public var line: Int
    /// `<name …>` or `<name …/>`.
    var startTag: Range<Int>
    /// `</name>`; nil for `<name …/>`.
    var endTag: Range<Int>?
    /// Where a new attribute goes: after the last one.
    var attributesEnd: Int

    var range: Range<Int> { startTag.lowerBound..<(endTag?.upperBound ?? startTag.upperBound) }

    public func attribute(_ name: String) -> String? { attributes.first { $0.name == name }?.value }

    public func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }

    public func children(_ name: String) -> [XMLElement] { children.filter { $0.name == name } }

    var firstQuote: Character? {
        attributes.first?.quote ?? children.lazy.compactMap(\.firstQuote).first
    }
}

/// An element to insert, rendered in the document's quote style and indentation.
public struct XMLFragment: Sendable {
    public var name: String
    public var attributes: [(String, String)]
    public var children: [XMLFragment]
    /// Text content, for an element without children (`<size unit='M'>64</size>`).
    public var text: String?

    public init(_ name: String, _ attributes: [(String, String)] = [], _ children: [XMLFragment] = [], text: String? = nil) {
        self.name = name
        self.attributes = attributes
        self.children = children
        self.text = text
    }

    func lines(quote: Character, unit: String) -> [String] {
        let open = "<" + name + attributes.map { " \($0.0)=\(quote)\(XMLText.escape($0.1, quote: quote))\(quote)" }.joined()
        if children.isEmpty, let text { return [open + ">" + XMLText.escapeText(text) + "</\(name)>"] }
        guard !children.isEmpty else { return [open + "/>"] }
        return [open + ">"] + children.flatMap { $0.lines(quote: quote, unit: unit).map { unit + $0 } } + ["</\(name)>"]
    }
}

/// Reads the element tree and byte positions of text libxml2 has already found well-formed.
struct XMLScanner {
    let bytes: [UInt8]
    let file: String
    var position = 0
    var line = 1

    init(_ bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    mutating func scan() throws -> XMLElement {
        var stack: [XMLElement] = []
        var root: XMLElement?
        while position < bytes.count {
            if bytes[position] != UInt8(ascii: "<") {
                let start = position
                while position < bytes.count && bytes[position] != UInt8(ascii: "<") { advance() }
                if !stack.isEmpty { stack[stack.count - 1].text += Self.decode(bytes[start..<position]) }
                continue
            }
            if starts("<!--") {
                skip(past: "-->")
            } else if starts("<![CDATA[") {
                let start = position + 9
                skip(past: "]]>")
                if !stack.isEmpty { stack[stack.count - 1].text += String(decoding: bytes[start..<(position - 3)], as: UTF8.self) }
            } else if starts("<?") || starts("<!") {
                skip(past: ">")
            } else if starts("</") {
                let start = position
                skip(past: ">")
                guard var element = stack.popLast() else { throw malformed() }
                element.endTag = start..<position
                if stack.isEmpty { root = element } else { stack[stack.count - 1].children.append(element) }
            } else {
                let (element, complete) = try startTag()
                if complete {
                    if stack.isEmpty { root = element } else { stack[stack.count - 1].children.append(element) }
                } else {
                    stack.append(element)
                }
            }
        }
        guard let root, stack.isEmpty else { throw malformed() }
        return root
    }

    /// Reads `<name attr='v' …>` or `…/>`; `complete` is true for the self-closing form.
    private mutating func startTag() throws -> (element: XMLElement, complete: Bool) {
        let start = position
        let startLine = line
        position += 1
        let name = readName()
        var attributes: [XMLElement.Attribute] = []
        var attributesEnd = position
        while true {
            skipSpace()
            guard position < bytes.count else { throw malformed() }
            let complete = starts("/>")
            if complete || bytes[position] == UInt8(ascii: ">") {
                position += complete ? 2 : 1
                let element = XMLElement(
                    name: name, attributes: attributes, children: [], text: "", line: startLine, startTag: start..<position, endTag: nil,
                    attributesEnd: attributesEnd)
                return (element, complete)
            }
            let attributeName = readName()
            skipSpace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "=") else { throw malformed() }
            position += 1
            skipSpace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "'") || bytes[position] == UInt8(ascii: "\"") else {
                throw malformed()
            }
            let quote = bytes[position]
            position += 1
            let valueStart = position
            while position < bytes.count && bytes[position] != quote { advance() }
            let valueRange = valueStart..<position
            position += 1
            attributesEnd = position
            attributes.append(
                .init(name: attributeName, value: Self.decode(bytes[valueRange]), valueRange: valueRange, quote: Character(UnicodeScalar(quote))))
        }
    }

    private mutating func advance() {
        if bytes[position] == 0x0A { line += 1 }
        position += 1
    }

    private func starts(_ literal: String) -> Bool { bytes[position...].starts(with: literal.utf8) }

    private mutating func skip(past literal: String) {
        let pattern = Array(literal.utf8)
        while position < bytes.count && !bytes[position...].starts(with: pattern) { advance() }
        position = min(position + pattern.count, bytes.count)
    }

    private mutating func skipSpace() {
        while position < bytes.count && XMLText.isSpace(bytes[position]) { advance() }
    }

    private mutating func readName() -> String {
        let start = position
        while position < bytes.count && !XMLText.isSpace(bytes[position]) && bytes[position] != UInt8(ascii: ">")
            && bytes[position] != UInt8(ascii: "/") && bytes[position] != UInt8(ascii: "=")
        {
            position += 1
        }
        return String(decoding: bytes[start..<position], as: UTF8.self)
    }

    private func malformed() -> ProvisionError {
        ProvisionError(.invalidInput, "unexpected XML structure", at: SourceLocation(file: file, line: line, column: 1))
    }

    static func decode(_ slice: ArraySlice<UInt8>) -> String {
        let raw = String(decoding: slice, as: UTF8.self)
        guard raw.contains("&") else { return raw }
        var out = ""
        var rest = Substring(raw)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";") else { break }
            let entity = rest[rest.index(after: amp)..<semi]
            switch entity {
            case "lt": out += "<"
            case "gt": out += ">"
            case "amp": out += "&"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                let number = entity.hasPrefix("#x") ? UInt32(entity.dropFirst(2), radix: 16) : entity.hasPrefix("#") ? UInt32(entity.dropFirst()) : nil
                if let number, let scalar = UnicodeScalar(number) { out.unicodeScalars.append(scalar) } else { out += "&\(entity);" }
            }
            rest = rest[rest.index(after: semi)...]
        }
        return out + rest
    }
}
