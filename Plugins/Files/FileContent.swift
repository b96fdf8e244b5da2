import Foundation
import ProvisionPluginAPI

/// `file.content`: a whole file with exact content, and optionally its mode and owner.
public struct FileContent: StepPlugin {
    public init() {}
    public let kind = "file.content"
    public let summary = "Ensure a file has exactly the given content (and mode/owner when given)."
    public let options: [OptionSpec] = [
        OptionSpec("path", .path, required: true, help: "absolute path of the file"),
        OptionSpec("content", .string, help: "the full text of the file (a final newline is added if missing)"),
        OptionSpec("source", .string, help: "file next to the recipe whose bytes to install, instead of content"),
        OptionSpec("mode", .mode, help: "permission bits, e.g. \"0644\"; default keeps the current, 0644 when new"),
        OptionSpec("owner", .string, help: "user name or uid in the root's /etc/passwd"),
        OptionSpec("group", .string, help: "group name or gid in the root's /etc/group"),
        notifyOption,
    ]

    /// `source` is a file on this machine: the core reads it (64 MiB at most) before the step plans.
    public func inputs(_ step: StepContext) throws -> [DeclaredInput] {
        try sourceInput(step.options).map { [$0] } ?? []
    }

    func sourceInput(_ options: StepOptions) throws -> DeclaredInput? {
        switch (try options.string("content"), try options.string("source")) {
        case (_?, nil): return nil
        case (nil, let source?):
            let recipeDirectory = (options.stepLocation.file as NSString).deletingLastPathComponent
            let sourcePath = source.hasPrefix("/") || recipeDirectory.isEmpty ? source : recipeDirectory + "/" + source
            return DeclaredInput(.localFile(sourcePath), maxBytes: 64 << 20, option: "source")
        default:
            throw ProvisionError(.invalidInput, "file.content needs exactly one of content or source", at: options.stepLocation)
        }
    }

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let path = try options.requiredPath("path")
        let data: Data
        if let source = try sourceInput(options) {
            data = try step.input(source)
        } else {
            let content = try options.string("content") ?? ""
            data = Data((content.hasSuffix("\n") || content.isEmpty ? content : content + "\n").utf8)
        }
        return StepPlan(files: [
            DesiredFile(path: path, state: .present(data, mode: try options.mode("mode"), uid: try owner(step), gid: try group(step)))
        ], handlers: try notifyHandlers(step, path: path))
    }
}

func owner(_ step: StepContext) throws -> UInt32? {
    guard let name = try step.options.string("owner") else { return nil }
    do {
        return try step.host.userID(name)
    } catch let error as ProvisionError {
        throw step.options.error("owner", error.message)
    }
}

func group(_ step: StepContext) throws -> UInt32? {
    guard let name = try step.options.string("group") else { return nil }
    do {
        return try step.host.groupID(name)
    } catch let error as ProvisionError {
        throw step.options.error("group", error.message)
    }
}

/// Handler options shared by the file steps: a command to run when the step changed its file.
let notifyOption = OptionSpec("notify", .stringList, help: "command (argv list) to run after the run if this file changed")

func notifyHandlers(_ step: StepContext, path: String) throws -> [HandlerAction] {
    guard let argv = try step.options.stringList("notify"), !argv.isEmpty else { return [] }
    return [HandlerAction(argv: argv, notifiedBy: [path])]
}
