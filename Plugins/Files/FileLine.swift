import Foundation
import ProvisionPluginAPI

/// `file.line`: one line present or absent. With `match`, the line that matches is replaced
/// rather than a second one added; the pattern must match the new line too, or a re-run would add
/// it again, so that is checked.
public struct FileLine: StepPlugin {
    public init() {}
    public let kind = "file.line"
    public let summary = "Ensure one line is present (replacing the line that matches) or absent."
    public let options: [OptionSpec] = [
        OptionSpec("path", .path, required: true, help: "absolute path of the file"),
        OptionSpec("line", .string, help: "the line (required for state present)"),
        OptionSpec(
            "match", .string,
            help: "POSIX extended regular expression (as grep -E) finding the line to replace or remove; must match `line` too"),
        OptionSpec("state", .choice(["present", "absent"]), default: "present", help: "present or absent"),
    ] + placementOptions

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let path = try options.requiredPath("path")
        let present = try options.string("state", default: "present") == "present"
        let line = try options.string("line")
        let match = try regex(step, "match")
        if let line, line.contains("\n") { throw options.error("line", "option \"line\" must be a single line") }
        if let line, let match, try !match.matches(line, in: "option \"line\"") {
            throw options.error("match", "the match regex does not match the line itself, so every run would add it again")
        }
        let hasMatch = match != nil
        guard present || line != nil || hasMatch else {
            throw ProvisionError(.invalidInput, "file.line with state absent needs line or match", at: options.stepLocation)
        }
        let existing = try TextLines.read(step, path)
        var file = existing ?? TextLines("")
        if present {
            guard let line else { throw ProvisionError(.invalidInput, "file.line needs option \"line\"", at: options.stepLocation) }
            let create = try options.bool("create", default: true)
            guard existing != nil || create else {
                throw ProvisionError(.invalidInput, "\(path) does not exist and create is false", at: options.stepLocation)
            }
            if let match, let index = try file.lines.lastIndex(where: { try match.matches($0, in: path) }) {
                file.lines[index] = line
            } else if !file.lines.contains(line) {
                let index = try insertionIndex(step, in: file, path: path)
                if index == file.lines.count { file.append([line]) } else { file.lines.insert(line, at: index) }
            }
        } else {
            guard existing != nil else { return StepPlan() }
            try file.lines.removeAll { candidate in
                if let match { return try match.matches(candidate, in: path) }
                return candidate == line
            }
        }
        if let existing, existing.text == file.text { return StepPlan() }
        return StepPlan(
            files: [try editedFile(step, path: path, text: file.text, existed: existing != nil)],
            handlers: try notifyHandlers(step, path: path))
    }
}
