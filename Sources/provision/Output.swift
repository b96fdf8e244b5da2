import Foundation
import ProvisionCore

#if canImport(Glibc)
import Glibc
#endif

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

    /// The version of every JSON document's shape; it goes up when a key changes meaning or goes.
    static let schemaVersion = 1

    /// One JSON document on stdout: keys in snake_case (the types' own property names converted
    /// here, in one place; the keys of data such as variables, facts and paths are left as they
    /// are), sorted, with `"schema"` beside them. A list is wrapped as `{"schema": 1, KEY: [...]}`.
    static func printJSON<T: Encodable>(_ value: T, key: String = "items") {
        let encoder = JSONEncoder.sorted
        encoder.dateEncodingStrategy = .iso8601
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let data = (try? encoder.encode(Envelope(value: value, key: key))) ?? Data("{\"schema\": \(schemaVersion)}".utf8)
        fflush(nil)
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }

    struct Envelope<T: Encodable>: Encodable {
        var value: T
        var key: String

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        func encode(to encoder: Encoder) throws {
            if let list = value as? [any Encodable] {
                var container = encoder.container(keyedBy: Key.self)
                try container.encode(list.map(AnyEncodable.init), forKey: Key(stringValue: key))
            } else {
                try value.encode(to: encoder)
            }
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(Output.schemaVersion, forKey: Key(stringValue: "schema"))
        }
    }

    struct AnyEncodable: Encodable {
        let value: any Encodable
        func encode(to encoder: Encoder) throws { try value.encode(to: encoder) }
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
        var fix: ProvisionError.Fix?

        init(_ error: ProvisionError) {
            kind = error.kind.rawValue
            message = error.message
            file = error.location?.file
            line = error.location?.line
            column = error.location?.column
            detail = error.detail
            step = error.step
            fix = error.fix
        }

        init(kind: String, message: String) {
            self.kind = kind
            self.message = message
        }
    }

    struct Step: Encodable {
        var id: String
        var uses: String
        var status: String
    }

    var error: Body
    var errors: [Body]
    var exitCode: Int32
    var changed: Int?
    var steps: [Step]?

    init(_ error: ProvisionError, changed: Int? = nil, steps: [Step]? = nil) {
        self.error = Body(error)
        errors = error.all.map(Body.init)
        exitCode = error.exitCode
        self.changed = changed
        self.steps = steps
    }

    /// A command line the parser refused (exit 64).
    init(usage message: String, exitCode: Int32) {
        error = Body(kind: "usage", message: message)
        errors = [error]
        self.exitCode = exitCode
    }
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
    var reason: String?
    var files: [FileDocument]
    var notices: [Notice]

    init(_ step: StepResult) {
        id = step.id
        uses = step.uses
        status = step.status.rawValue
        reason = step.reason
        files = step.changes.map(FileDocument.init)
        notices = step.notices
    }
}

struct HandlerDocument: Encodable {
    var argv: [String]
    var notifiedBy: [String]
    var status: String
    var detail: String?
    /// How long it ran (apply and rollback).
    var seconds: Double?
}

/// The `plan` and `apply` JSON document: `run` (apply only), `changed`, `steps`, and the rest.
/// Keys are snake_case (`Output.printJSON` converts them).
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
    /// Kernel parameters the running kernel lacks (a reboot is due for them).
    var rebootMissing: [String]
    var drift: [String]?
    var recovered: Int?
    var packed: PackReport?
    /// plan: files apply would overwrite although they were edited by hand since provision recorded them.
    var handEdits: [HandEditDocument]?
    /// plan: an interrupted run the next apply undoes first.
    var recovery: PendingRecovery?
    /// apply: a handler failed (exit 1); the files are written and recorded.
    var error: ErrorDocument.Body?
}

struct HandEditDocument: Encodable {
    var path: String
    var since: Int?
}
