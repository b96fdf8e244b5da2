import Foundation
import ProvisionPluginAPI

/// `file.block`: a block of lines between two marker lines that provision owns. Everything
/// outside the markers is left alone; the markers must appear once each, in order.
public struct FileBlock: StepPlugin {
    public init() {}
    public let kind = "file.block"
    public let summary = "Ensure a managed block of lines between unique markers is present or absent."
    public let options: [OptionSpec] = [
        OptionSpec("path", .path, required: true, help: "absolute path of the file"),
        OptionSpec("block", .string, help: "the lines inside the markers (required for state present)"),
        OptionSpec(
            "marker", .string, default: "# {mark} provision: <step id>",
            help: "marker line template; {mark} becomes BEGIN and END. Give steps an explicit id so it stays stable"),
        OptionSpec("state", .choice(["present", "absent"]), default: "present", help: "present or absent"),
    ] + placementOptions

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let path = try options.requiredPath("path")
        let present = try options.string("state", default: "present") == "present"
        let template = try options.string("marker", default: "# {mark} provision: \(step.id)")
        guard template.contains("{mark}"), !template.contains("\n") else {
            throw options.error("marker", "the marker must be one line containing {mark}")
        }
        let begin = template.replacingOccurrences(of: "{mark}", with: "BEGIN")
        let end = template.replacingOccurrences(of: "{mark}", with: "END")
        let existing = try TextLines.read(step, path)
        var file = existing ?? TextLines("")
        let span = try findBlock(file, begin: begin, end: end, path: path)

        if present {
            guard let block = try options.string("block") else {
                throw ProvisionError(.invalidInput, "file.block needs option \"block\"", at: options.stepLocation)
            }
            let create = try options.bool("create", default: true)
            guard existing != nil || create else {
                throw ProvisionError(.invalidInput, "\(path) does not exist and create is false", at: options.stepLocation)
            }
            var body = block.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            if block.hasSuffix("\n") { body.removeLast() }
            let lines = [begin] + body + [end]
            if let span {
                file.lines.replaceSubrange(span, with: lines)
            } else {
                let index = try insertionIndex(step, in: file, path: path)
                if index == file.lines.count { file.append(lines) } else { file.lines.insert(contentsOf: lines, at: index) }
            }
        } else {
            guard let span else { return StepPlan() }
            file.lines.removeSubrange(span)
        }
        if let existing, existing.text == file.text { return StepPlan() }
        return StepPlan(
            files: [try editedFile(step, path: path, text: file.text, existed: existing != nil)],
            handlers: try notifyHandlers(step, path: path))
    }

    /// The block's line range, markers included; an error naming the line when markers are
    /// repeated, unpaired, or out of order.
    func findBlock(_ file: TextLines, begin: String, end: String, path: String) throws -> ClosedRange<Int>? {
        // A marker line is the marker itself, maybe followed by trailing blanks.
        func isMarker(_ line: String, _ marker: String) -> Bool {
            let bytes = line.utf8
            guard bytes.starts(with: marker.utf8) else { return false }
            return bytes.dropFirst(marker.utf8.count).allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
        }
        let begins = file.lines.indices.filter { isMarker(file.lines[$0], begin) }
        let ends = file.lines.indices.filter { isMarker(file.lines[$0], end) }
        func fail(_ line: Int, _ message: String) -> ProvisionError {
            ProvisionError(.invalidInput, message, at: SourceLocation(file: path, line: line + 1, column: 1))
        }
        if begins.count > 1 { throw fail(begins[1], "marker \"\(begin)\" appears more than once; fix the file by hand") }
        if ends.count > 1 { throw fail(ends[1], "marker \"\(end)\" appears more than once; fix the file by hand") }
        switch (begins.first, ends.first) {
        case (nil, nil): return nil
        case (let b?, nil): throw fail(b, "marker \"\(begin)\" has no matching \"\(end)\"")
        case (nil, let e?): throw fail(e, "marker \"\(end)\" has no matching \"\(begin)\"")
        case (let b?, let e?):
            guard b < e else { throw fail(e, "marker \"\(end)\" comes before \"\(begin)\"") }
            return b...e
        }
    }
}
