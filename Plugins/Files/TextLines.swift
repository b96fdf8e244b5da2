import Foundation
import ProvisionPluginAPI

/// A text file as lines, remembering whether it ended with a newline, so that an edit touches
/// only the lines it means to and everything else comes back byte for byte.
struct TextLines {
    var lines: [String]
    var endsWithNewline: Bool

    /// Lines end at each "\n" byte (a CRLF line keeps its "\r", and comes back as it was).
    init(_ text: String) {
        var parts = text.split(byte: "\n", omittingEmptySubsequences: false)
        endsWithNewline = text.utf8.last == UInt8(ascii: "\n") || text.isEmpty
        if endsWithNewline { parts.removeLast() }
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
    OptionSpec(
        "insert_after", .string,
        help: "POSIX extended regular expression (as grep -E): new text goes after the last line matching it (default: end of file)"),
    OptionSpec(
        "insert_before", .string, help: "POSIX extended regular expression (as grep -E): new text goes before the first line matching it"),
    OptionSpec("create", .bool, default: "true", help: "create the file when it does not exist"),
    OptionSpec("mode", .mode, help: "mode for a file this step creates"),
    OptionSpec("owner", .string, help: "owner for a file this step creates"),
    OptionSpec("group", .string, help: "group for a file this step creates"),
    notifyOption,
]

/// A pattern option (`match`, `insert_after`, `insert_before`) compiled for one step: POSIX
/// extended syntax, matched in bounded time (see `PosixRegex`), with a budget of work per option so
/// that even a costly pattern against a large file ends with an error naming the option.
final class LinePattern {
    static let budget = 20_000_000

    let regex: PosixRegex
    let option: String
    let options: StepOptions
    private let scratch: PosixRegex.Scratch
    private var steps = LinePattern.budget

    init(_ regex: PosixRegex, option: String, options: StepOptions) {
        self.regex = regex
        self.option = option
        self.options = options
        scratch = regex.makeScratch()
    }

    /// Whether `line` contains a match; `source` says where the line comes from, for the error.
    func matches(_ line: String, in source: String) throws -> Bool {
        guard let found = regex.contains(line, scratch: scratch, steps: &steps) else {
            throw options.error(
                option, "matching option \"\(option)\" against \(source) takes more than \(Self.budget) steps; use a simpler pattern")
        }
        return found
    }
}

/// The pattern of `option`, if given; an error at the option's line when it is not a POSIX
/// extended regular expression this engine accepts.
func regex(_ step: StepContext, _ option: String) throws -> LinePattern? {
    guard let pattern = try step.options.string(option) else { return nil }
    do {
        return LinePattern(try PosixRegex(pattern), option: option, options: step.options)
    } catch let error as PosixRegex.SyntaxError {
        throw step.options.error(
            option,
            "option \"\(option)\" is not a valid regular expression (POSIX extended, as grep -E): \(error.message), "
                + "at character \(error.offset + 1) of \"\(pattern)\"")
    }
}

/// Where new lines go: after the last `insert_after` match, before the first `insert_before`
/// match, else at the end.
func insertionIndex(_ step: StepContext, in file: TextLines, path: String) throws -> Int {
    if let after = try regex(step, "insert_after"), let index = try file.lines.lastIndex(where: { try after.matches($0, in: path) }) {
        return index + 1
    }
    if let before = try regex(step, "insert_before"), let index = try file.lines.firstIndex(where: { try before.matches($0, in: path) }) {
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
