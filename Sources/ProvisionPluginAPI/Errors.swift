import Foundation

/// A position in an input file, so every complaint about a recipe or config file can say where.
public struct SourceLocation: Sendable, Hashable, Codable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// Every failure the engine reports. The CLI maps `exitCode` to the process status.
public struct ProvisionError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable {
        /// Bad recipe, option, or config file contents.
        case invalidInput = "invalid-input"
        /// A path that would leave the root.
        case pathEscape = "path-escape"
        /// A file changed outside provision since history last saw it.
        case drift
        /// The host lock is held by another run.
        case locked
        /// History is missing or cannot be read.
        case history
        /// Reading or writing the host failed.
        case io
        /// A handler command failed.
        case handler
        case notFound = "not-found"
    }

    public var kind: Kind
    public var message: String
    public var location: SourceLocation?
    /// Extra text shown after the message, such as the diff of a drifted file.
    public var detail: String?
    /// The recipe step whose planning failed, if any.
    public var step: String?
    /// What would let the run go on, as the recipe allows it: a step sets `fix` with the option and
    /// value; the planner rewrites it in the recipe's own terms (`--var NAME=VALUE` when the option
    /// comes from a variable) and appends it to the message.
    public var fix: Fix?
    /// Further errors found in the same pass (a recipe reports every error it has at once).
    public var others: [ProvisionError] = []

    /// An option value that would let a step go on, and a step kind it then also needs.
    public struct Fix: Sendable, Hashable, Codable {
        public var option: String
        public var value: String
        /// A step kind the recipe must also have after this step (`vfio.bind-address`).
        public var needsStep: String?
        /// Set by the planner: the fix in the recipe's terms ("--var allow_shared_group=true").
        public var text: String?
        /// Set by the planner when the option comes from a recipe variable.
        public var variable: String?

        public init(option: String, value: String, needsStep: String? = nil) {
            self.option = option
            self.value = value
            self.needsStep = needsStep
        }
    }

    public init(_ kind: Kind, _ message: String, at location: SourceLocation? = nil, detail: String? = nil) {
        self.kind = kind
        self.message = message
        self.location = location
        self.detail = detail
    }

    public var description: String {
        if let location { return "\(location): \(message)" }
        return message
    }

    /// This error and the others found with it.
    public var all: [ProvisionError] {
        var first = self
        first.others = []
        return [first] + others
    }

    /// 3 for drift and conflicts (the contract in DESIGN.md), 1 for everything else.
    public var exitCode: Int32 { kind == .drift ? 3 : 1 }

    /// A file a step needs is not in the root: one kind (`not-found`) and one wording everywhere.
    public static func missing(_ path: String, _ hint: String? = nil, at location: SourceLocation? = nil) -> ProvisionError {
        ProvisionError(.notFound, "\(path) does not exist in the root" + (hint.map { " (\($0))" } ?? ""), at: location)
    }

    package static func io(_ what: String, _ path: String, errno code: Int32 = errno) -> ProvisionError {
        ProvisionError(.io, "\(what) \(path): \(String(cString: strerror(code)))")
    }
}
