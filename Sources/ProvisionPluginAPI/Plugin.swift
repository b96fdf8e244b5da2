import Foundation

/// A step kind. `plan` is a pure function of the host view: it reads, never writes, and returns
/// what the host should look like. The core does every side effect, which is what makes `plan`
/// exact and every run idempotent and reversible.
public protocol StepPlugin: Sendable {
    /// The name recipes use in `uses:` ("file.line").
    var kind: String { get }
    var summary: String { get }
    var options: [OptionSpec] { get }
    /// What the step needs from outside the root (downloads, files on this machine, a card's ROM),
    /// asked before `plan`; the core fetches each one, with its cap, and hands the bytes to `plan`
    /// through `StepContext.input`. A plugin never reaches outside the root itself.
    func inputs(_ step: StepContext) throws -> [DeclaredInput]
    func plan(_ step: StepContext) throws -> StepPlan
}

extension StepPlugin {
    public func inputs(_ step: StepContext) throws -> [DeclaredInput] { [] }
}

public struct StepContext {
    public let id: String
    public let options: StepOptions
    /// The host as it will be once earlier steps have run.
    public let host: HostView
    /// The step's `timeout:` in seconds, if it set one (external plugins' time limit).
    public let timeout: Int?
    let fetched: [DeclaredInput: Data]

    public init(id: String, options: StepOptions, host: HostView, inputs: [DeclaredInput: Data] = [:], timeout: Int? = nil) {
        self.id = id
        self.options = options
        self.host = host
        self.timeout = timeout
        fetched = inputs
    }

    /// The bytes of an input the step declared; an error for one it did not.
    public func input(_ declared: DeclaredInput) throws -> Data {
        guard let data = fetched[declared] else {
            throw ProvisionError(
                .invalidInput, "step \(id) reads \(declared.source) without declaring it (inputs(_:) must list it)",
                at: options.location(of: declared.option))
        }
        return data
    }
}

/// Something from outside the root that a step needs. The core fetches it before the step plans.
public struct DeclaredInput: Sendable, Hashable {
    public enum Source: Sendable, Hashable, CustomStringConvertible {
        /// An http(s) URL (plain http only when allowed); at most 5 redirects, never down to http.
        case download(URL, allowHTTP: Bool)
        /// A file on the machine provision runs on, not in the root (a file beside the recipe).
        case localFile(String)
        /// A PCI function's option ROM from ROOT/sys (on the live host the kernel shows it only
        /// while `rom` holds 1: the core writes 1, reads, writes 0).
        case pciROM(address: String)

        public var description: String {
            switch self {
            case .download(let url, _): return url.absoluteString
            case .localFile(let path): return path
            case .pciROM(let address): return "the ROM of \(address)"
            }
        }
    }

    public var source: Source
    /// More is an error, never a truncated input.
    public var maxBytes: Int
    /// The option it comes from: a failure to fetch it points at that line.
    public var option: String

    public init(_ source: Source, maxBytes: Int, option: String) {
        self.source = source
        self.maxBytes = maxBytes
        self.option = option
    }
}

/// Fetches declared inputs for the planner: the core's `FetchInputs` (network, files, sysfs) or
/// data given by a test.
public protocol InputProvider: Sendable {
    func fetch(_ input: DeclaredInput, root: HostRoot) throws -> Data
}

/// For views that fetch nothing: every input is an error.
public struct NoInputs: InputProvider {
    public init() {}
    public func fetch(_ input: DeclaredInput, root: HostRoot) throws -> Data {
        throw ProvisionError(.invalidInput, "\(input.source) cannot be read here: no inputs are fetched for this command")
    }
}

public enum OptionType: Sendable, CustomStringConvertible {
    case string
    case int
    case bool
    case stringList
    /// Octal permission bits written as a string ("0644").
    case mode
    /// An absolute host path, checked not to leave the root.
    case path
    case map
    /// One of a fixed set of words.
    case choice([String])

    public var description: String {
        switch self {
        case .string: return "string"
        case .int: return "integer"
        case .bool: return "boolean"
        case .stringList: return "list of strings"
        case .mode: return "octal mode"
        case .path: return "absolute path"
        case .map: return "mapping"
        case .choice(let words): return words.joined(separator: "|")
        }
    }

    /// Structural check at load time, before any step runs. Values that contain `${…}` are checked
    /// again after interpolation.
    package func check(_ node: RecipeNode, option: String) throws {
        func fail(_ expected: String) -> ProvisionError {
            ProvisionError(.invalidInput, "option \"\(option)\" must be \(expected), found \(node.typeName)", at: node.location)
        }
        switch (self, node.kind) {
        case (.map, .map): return
        case (.map, _): throw fail("a mapping")
        case (.stringList, .list(let items)):
            for item in items {
                guard case .scalar = item.kind else {
                    throw ProvisionError(.invalidInput, "option \"\(option)\" must be a list of strings", at: item.location)
                }
            }
        case (.stringList, .scalar):
            return  // a list variable, or words separated by blanks
        case (.stringList, _): throw fail("a list of strings")
        case (_, .scalar(let text)):
            if text.contains("${") { return }
            try checkScalar(text, option: option, at: node.location)
        case (_, _): throw fail("a \(self)")
        }
    }

    package func checkScalar(_ text: String, option: String, at location: SourceLocation) throws {
        switch self {
        case .int where Int(text) == nil:
            throw ProvisionError(.invalidInput, "option \"\(option)\" must be an integer, found \"\(text)\"", at: location)
        case .bool where !["true", "false"].contains(text):
            throw ProvisionError(.invalidInput, "option \"\(option)\" must be true or false, found \"\(text)\"", at: location)
        case .mode where FileMeta.parseMode(text) == nil:
            throw ProvisionError(.invalidInput, "option \"\(option)\" must be an octal mode like \"0644\", found \"\(text)\"", at: location)
        case .path: _ = try HostRoot.normalize(text, at: location)
        case .choice(let words) where !words.contains(text):
            throw ProvisionError(
                .invalidInput, "option \"\(option)\" must be one of \(words.joined(separator: ", ")), found \"\(text)\"", at: location)
        default: return
        }
    }
}

public struct OptionSpec: Sendable {
    public var name: String
    public var type: OptionType
    public var required: Bool
    public var help: String
    /// Shown by `provision plugins`; the plugin applies the default itself.
    public var defaultText: String?

    public init(_ name: String, _ type: OptionType, required: Bool = false, default defaultText: String? = nil, help: String) {
        self.name = name
        self.type = type
        self.required = required
        self.help = help
        self.defaultText = defaultText
    }
}

/// A step's options, interpolated on access so that facts exported by earlier steps are seen.
/// Every accessor that fails names the option's line in the recipe.
public struct StepOptions: Sendable {
    let values: [String: RecipeNode]
    let specs: [OptionSpec]
    let context: InterpolationContext
    public let stepLocation: SourceLocation

    public init(values: [String: RecipeNode], specs: [OptionSpec], context: InterpolationContext, stepLocation: SourceLocation) {
        self.values = values
        self.specs = specs
        self.context = context
        self.stepLocation = stepLocation
    }

    public func has(_ name: String) -> Bool { values[name] != nil }

    public func location(of name: String) -> SourceLocation { values[name]?.location ?? stepLocation }

    public func error(_ name: String, _ message: String) -> ProvisionError {
        ProvisionError(.invalidInput, message, at: location(of: name))
    }

    private func scalar(_ name: String) throws -> String? {
        guard let node = values[name] else { return nil }
        guard case .scalar(let text) = node.kind else { throw error(name, "option \"\(name)\" must be a scalar") }
        let value = try context.render(text, at: node.location)
        guard let rendered = value.scalarText else {
            throw error(name, "option \"\(name)\" must be a scalar, but \(text) is a list or mapping")
        }
        if let spec = specs.first(where: { $0.name == name }) {
            try spec.type.checkScalar(rendered, option: name, at: node.location)
        }
        return rendered
    }

    public func string(_ name: String) throws -> String? { try scalar(name) }

    /// An option of any shape (mappings and lists too), every scalar interpolated: for `map`
    /// options, and for external plugins, which get their options as JSON.
    public func value(_ name: String) throws -> Value? {
        guard let node = values[name] else { return nil }
        return try render(node)
    }

    private func render(_ node: RecipeNode) throws -> Value {
        switch node.kind {
        case .scalar(let text): return try context.render(text, at: node.location)
        case .list(let items): return .list(try items.map(render))
        case .map(let entries):
            var result: [String: Value] = [:]
            for entry in entries { result[entry.key] = try render(entry.value) }
            return .map(result)
        }
    }

    /// The names of the options the step was given.
    public var names: [String] { values.keys.sorted() }

    public func string(_ name: String, default fallback: String) throws -> String { try scalar(name) ?? fallback }

    public func requiredString(_ name: String) throws -> String {
        guard let value = try scalar(name) else { throw ProvisionError(.invalidInput, "option \"\(name)\" is required", at: stepLocation) }
        return value
    }

    public func bool(_ name: String, default fallback: Bool) throws -> Bool {
        guard let text = try scalar(name) else { return fallback }
        return text == "true"
    }

    public func int(_ name: String) throws -> Int? { try scalar(name).flatMap { Int($0) } }

    public func mode(_ name: String) throws -> UInt32? { try scalar(name).flatMap(FileMeta.parseMode) }

    public func path(_ name: String) throws -> String? {
        guard let text = try scalar(name) else { return nil }
        return try HostRoot.normalize(text, at: location(of: name))
    }

    public func requiredPath(_ name: String) throws -> String {
        guard let value = try path(name) else { throw ProvisionError(.invalidInput, "option \"\(name)\" is required", at: stepLocation) }
        return value
    }

    public func stringList(_ name: String) throws -> [String]? {
        guard let node = values[name] else { return nil }
        switch node.kind {
        case .list(let items):
            return try items.map { item in
                guard case .scalar(let text) = item.kind, let rendered = try context.render(text, at: item.location).scalarText else {
                    throw ProvisionError(.invalidInput, "option \"\(name)\" must be a list of strings", at: item.location)
                }
                return rendered
            }
        case .scalar(let text):
            switch try context.render(text, at: node.location) {
            case .list(let items):
                return try items.map { item in
                    guard let text = item.scalarText else { throw error(name, "option \"\(name)\" must be a list of strings") }
                    return text
                }
            case let value:
                guard let text = value.scalarText else { throw error(name, "option \"\(name)\" must be a list of strings") }
                return text.split(whereSeparator: \.isWhitespace).map(String.init)
            }
        case .map:
            throw error(name, "option \"\(name)\" must be a list of strings")
        }
    }
}

/// What a step wants one path to be.
public struct DesiredFile: Sendable {
    public enum State: Sendable {
        /// Content, and optionally mode/owner/group; nil keeps what the file has (or the default
        /// 0644 root:root for a new file).
        case present(Data, mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil)
        case absent
    }

    public var path: String
    public var state: State

    public init(path: String, state: State) {
        self.path = path
        self.state = state
    }
}

/// A command to run after all writes, once, and only if one of `notifiedBy` actually changed.
public struct HandlerAction: Sendable, Hashable, Codable {
    public var argv: [String]
    public var notifiedBy: [String]
    /// File systems the command needs mounted inside a root that is not the live host (grub-mkconfig
    /// probes devices through /dev, /proc and /sys); without them it is skipped with that reason.
    public var needsMounts: [String]?
    /// Runs with the host's own tools even for another root: for clients such as `virsh` that act
    /// through a daemon's socket rather than on the root's files (paths in `argv` are then real).
    public var onHost: Bool?
    /// Files the command writes again itself (libvirt re-writes NAME.xml on `virsh define`):
    /// history records them as the command left them.
    public var rewrites: [String]?

    public init(argv: [String], notifiedBy: [String], needsMounts: [String]? = nil, onHost: Bool? = nil, rewrites: [String]? = nil) {
        self.argv = argv
        self.notifiedBy = notifiedBy
        self.needsMounts = needsMounts
        self.onHost = onHost
        self.rewrites = rewrites
    }
}

public struct Notice: Sendable, Hashable, Codable {
    public enum Level: String, Sendable, Codable { case info, warning }
    public var level: Level
    public var message: String
    /// Filled in by the planner.
    public var step: String?

    public init(_ level: Level, _ message: String) {
        self.level = level
        self.message = message
    }
}

public struct StepPlan: Sendable {
    public var files: [DesiredFile]
    public var handlers: [HandlerAction]
    public var notices: [Notice]
    /// Facts for later steps, visible as `${facts.<key>}` and through `HostView.facts`.
    public var exports: [String: Value]

    public init(files: [DesiredFile] = [], handlers: [HandlerAction] = [], notices: [Notice] = [], exports: [String: Value] = [:]) {
        self.files = files
        self.handlers = handlers
        self.notices = notices
        self.exports = exports
    }
}

/// The step kinds a run can use.
public struct PluginRegistry: Sendable {
    public private(set) var plugins: [any StepPlugin]

    /// Two plugins of one kind are a programming error caught at start-up: which one a recipe
    /// got would depend on the order of a list.
    public init(_ plugins: [any StepPlugin]) {
        let duplicates = Self.duplicateKinds(plugins)
        precondition(duplicates.isEmpty, "step kind registered more than once: \(duplicates.joined(separator: ", "))")
        self.plugins = plugins.sorted { $0.kind < $1.kind }
    }

    /// Kinds that more than one of these plugins claims.
    public static func duplicateKinds(_ plugins: [any StepPlugin]) -> [String] {
        var seen: Set<String> = []
        var twice: Set<String> = []
        for plugin in plugins where !seen.insert(plugin.kind).inserted { twice.insert(plugin.kind) }
        return twice.sorted()
    }

    public var kinds: [String] { plugins.map(\.kind) }

    public func plugin(_ kind: String) -> (any StepPlugin)? { plugins.first { $0.kind == kind } }
}
