import Foundation
import ProvisionCore

/// Human and JSON renderings shared by the subcommands. Formatting only: the engine decides.
enum Output {
    /// "1-4, 7" for a sorted list of run numbers.
    static func ranges(_ runs: [Int]) -> String {
        var parts: [String] = []
        var index = 0
        let sorted = runs.sorted()
        while index < sorted.count {
            var end = index
            while end + 1 < sorted.count && sorted[end + 1] == sorted[end] + 1 { end += 1 }
            parts.append(end == index ? "\(sorted[index])" : "\(sorted[index])-\(sorted[end])")
            index = end + 1
        }
        return parts.isEmpty ? "none" : parts.joined(separator: ", ")
    }

    static func describe(_ report: PackReport) -> String {
        "packed \(report.packedObjects) object(s) (\(report.looseBefore) loose -> \(report.looseAfter), packs \(report.packsBefore) -> \(report.packsAfter), "
            + "loose refs \(report.looseRefsBefore) -> \(report.looseRefsAfter)); \(report.bytesBefore / 1024) KiB -> \(report.bytesAfter / 1024) KiB"
    }

    static func printJSON<T: Encodable>(_ value: T) {
        let encoder = JSONEncoder.sorted
        encoder.dateEncodingStrategy = .iso8601
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }

    static func statusWord(_ status: StepStatus) -> String {
        status.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
    }

    /// Steps with their status, then every diff, then handlers and notices.
    static func render(steps: [StepResult], changes: [FileChange], handlers: [HandlerDocument], notices: [Notice]) -> String {
        var out = ""
        let width = steps.map(\.id.count).max() ?? 0
        for step in steps {
            let files = step.changes.map { "\($0.path) (\($0.kind.rawValue))" }.joined(separator: ", ")
            out += "  \(statusWord(step.status)) \(step.id.padding(toLength: width, withPad: " ", startingAt: 0))  \(step.uses)"
            out += files.isEmpty ? "\n" : "  \(files)\n"
        }
        if !changes.isEmpty { out += "\n" }
        for change in changes { out += change.diff }
        for handler in handlers {
            out += "handler: \(handler.argv.joined(separator: " ")): \(handler.status)"
            out += handler.detail.map { " (\($0.split(separator: "\n").first ?? ""))" } ?? ""
            out += "\n"
        }
        for notice in notices { out += "\(notice.level.rawValue): \(notice.step.map { "[\($0)] " } ?? "")\(notice.message)\n" }
        return out
    }
}

struct ErrorDocument: Encodable {
    struct Body: Encodable {
        var kind: String
        var message: String
        var file: String?
        var line: Int?
        var column: Int?
        var detail: String?
        var step: String?

        init(_ error: ProvisionError) {
            kind = error.kind.rawValue
            message = error.message
            file = error.location?.file
            line = error.location?.line
            column = error.location?.column
            detail = error.detail
            step = error.step
        }
    }

    struct Step: Encodable {
        var id: String
        var uses: String
        var status: String
    }

    var error: Body
    var changed: Int?
    var steps: [Step]?
}

struct FileDocument: Encodable {
    var path: String
    var change: String
    var diff: String

    init(_ change: FileChange) {
        path = change.path
        self.change = change.kind.rawValue
        diff = change.diff
    }
}

struct StepDocument: Encodable {
    var id: String
    var uses: String
    var status: String
    var files: [FileDocument]
    var notices: [Notice]

    init(_ step: StepResult) {
        id = step.id
        uses = step.uses
        status = step.status.rawValue
        files = step.changes.map(FileDocument.init)
        notices = step.notices
    }
}

struct HandlerDocument: Encodable {
    var argv: [String]
    var notifiedBy: [String]
    var status: String
    var detail: String?
}

/// The `plan` and `apply` JSON document: `run` (apply only), `changed`, `steps`, and the rest.
struct RunDocument: Encodable {
    var run: Int?
    var commit: String?
    var recipe: String
    var root: String
    var changed: Int
    var steps: [StepDocument]
    var files: [FileDocument]
    var handlers: [HandlerDocument]
    var notices: [Notice]
    var rebootRequired: Bool
    var drift: [String]?
    var recovered: Int?
    var packed: PackReport?

    enum CodingKeys: String, CodingKey {
        case run, commit, recipe, root, changed, steps, files, handlers, notices, drift, recovered, packed
        case rebootRequired = "reboot_required"
    }
}
