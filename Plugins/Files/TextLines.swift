import Foundation
import ProvisionCore

/// A text file as lines, remembering whether it ended with a newline, so that an edit touches
/// only the lines it means to and everything else comes back byte for byte.
struct TextLines {
    var lines: [String]
    var endsWithNewline: Bool

    init(_ text: String) {
        var parts = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        endsWithNewline = text.hasSuffix("\n") || text.isEmpty
        if text.hasSuffix("\n") || text.isEmpty { parts.removeLast() }
        lines = parts
    }

    var text: String {
        guard !lines.isEmpty else { return "" }
        return lines.joined(separator: "\n") + (endsWithNewline ? "\n" : "")
    }

    /// Appending always leaves a terminated file.
    mutating func append(_ newLines: [String]) {
        lines += newLines
        endsWithNewline = true
    }

    static func read(_ step: StepContext, _ path: String) throws -> TextLines? {
        do {
            return try step.host.text(path).map(TextLines.init)
        } catch let error as ProvisionError {
            throw ProvisionError(error.kind, error.message, at: step.options.stepLocation)
        }
    }
}

/// Options every line-editing step shares.
let placementOptions: [OptionSpec] = [
    OptionSpec("insert_after", .string, help: "regex: new text goes after the last line matching it (default: end of file)"),
    OptionSpec("insert_before", .string, help: "regex: new text goes before the first line matching it"),
    OptionSpec("create", .bool, default: "true", help: "create the file when it does not exist"),
    OptionSpec("mode", .mode, help: "mode for a file this step creates"),
    OptionSpec("owner", .string, help: "owner for a file this step creates"),
    OptionSpec("group", .string, help: "group for a file this step creates"),
    notifyOption,
]

func regex(_ step: StepContext, _ option: String) throws -> Regex<AnyRegexOutput>? {
    guard let pattern = try step.options.string(option) else { return nil }
    do {
        return try Regex(pattern)
    } catch {
        throw step.options.error(option, "option \"\(option)\" is not a valid regular expression: \(error)")
    }
}

/// Where new lines go: after the last `insert_after` match, before the first `insert_before`
/// match, else at the end.
func insertionIndex(_ step: StepContext, in file: TextLines) throws -> Int {
    if let after = try regex(step, "insert_after"), let index = file.lines.lastIndex(where: { $0.contains(after) }) {
        return index + 1
    }
    if let before = try regex(step, "insert_before"), let index = file.lines.firstIndex(where: { $0.contains(before) }) {
        return index
    }
    return file.lines.count
}

/// The desired file for an edit: keeps mode and owner of an existing file; new files take the
/// step's mode/owner/group.
func editedFile(_ step: StepContext, path: String, text: String, existed: Bool) throws -> DesiredFile {
    let data = Data(text.utf8)
    if existed { return DesiredFile(path: path, state: .present(data)) }
    return DesiredFile(path: path, state: .present(data, mode: try step.options.mode("mode"), uid: try owner(step), gid: try group(step)))
}
