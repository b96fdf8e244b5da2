import Foundation
import ProvisionPluginAPI

/// One `NAME=value` line in a file that sh sources (/etc/default/grub). Only values that can be
/// read without running a shell are editable: double-quoted, single-quoted or bare, with no `$`,
/// backticks or backslashes, optionally followed by a comment. Anything else is refused.
public struct ShellAssignment: Sendable {
    public enum Quote: Sendable { case double, single, none }

    /// 0-based line index in the file.
    public let lineIndex: Int
    public let value: String
    public let quote: Quote
    /// Text before the value's opening quote, and after its closing one (blanks, a comment).
    let prefix: String
    let suffix: String

    /// The last assignment of `name` in `text` (the one sh keeps).
    public static func last(_ name: String, in text: String, file: String) throws -> ShellAssignment? {
        var found: ShellAssignment?
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var rest = Substring(line)
            let indent = rest.prefix { $0 == " " || $0 == "\t" }
            rest = rest.dropFirst(indent.count)
            var lead = String(indent)
            if rest.hasPrefix("export ") {
                lead += "export "
                rest = rest.dropFirst(7)
            }
            guard rest.hasPrefix(name + "=") else {
                if rest.hasPrefix(name + "+=") {
                    throw ProvisionError(
                        .invalidInput, "\(name)+= appends to \(name); provision edits plain assignments only",
                        at: SourceLocation(file: file, line: index + 1, column: 1))
                }
                continue
            }
            lead += name + "="
            rest = rest.dropFirst(name.count + 1)
            found = try parse(rest, lead: lead, lineIndex: index, name: name, file: file)
        }
        return found
    }

    private static func parse(_ rest: Substring, lead: String, lineIndex: Int, name: String, file: String) throws -> ShellAssignment {
        func refuse(_ why: String) -> ProvisionError {
            ProvisionError(
                .invalidInput, "\(name) \(why); it cannot be edited safely, so change it by hand to a plain quoted value",
                at: SourceLocation(file: file, line: lineIndex + 1, column: lead.count + 1))
        }
        let quote: Quote
        let body: Substring
        let after: Substring
        switch rest.first {
        case "\"":
            guard let close = rest.dropFirst().firstIndex(of: "\"") else { throw refuse("has an unbalanced double quote") }
            body = rest[rest.index(after: rest.startIndex)..<close]
            after = rest[rest.index(after: close)...]
            quote = .double
            if body.contains(where: { $0 == "$" || $0 == "`" || $0 == "\\" }) { throw refuse("uses $, ` or \\ inside double quotes") }
        case "'":
            guard let close = rest.dropFirst().firstIndex(of: "'") else { throw refuse("has an unbalanced single quote") }
            body = rest[rest.index(after: rest.startIndex)..<close]
            after = rest[rest.index(after: close)...]
            quote = .single
        default:
            let end = rest.firstIndex { $0 == " " || $0 == "\t" } ?? rest.endIndex
            body = rest[..<end]
            after = rest[end...]
            quote = .none
            if body.contains(where: { "$`\\\"';&|<>()".contains($0) }) { throw refuse("is not a plain word") }
        }
        let trailing = after.drop { $0 == " " || $0 == "\t" }
        guard trailing.isEmpty || trailing.hasPrefix("#") else { throw refuse("is followed by more than a comment") }
        let opening = quote == .double ? "\"" : quote == .single ? "'" : ""
        return ShellAssignment(
            lineIndex: lineIndex, value: String(body), quote: quote, prefix: lead + opening, suffix: opening + String(after))
    }

    /// `text` with this assignment's value replaced; the quote style stays, a bare value gains
    /// double quotes when it needs them.
    public func replacing(in text: String, with newValue: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var prefix = self.prefix, suffix = self.suffix
        if quote == .none && (newValue.contains(" ") || newValue.isEmpty) {
            prefix += "\""
            suffix = "\"" + suffix
        }
        lines[lineIndex] = prefix + newValue + suffix
        return lines.joined(separator: "\n")
    }
}
