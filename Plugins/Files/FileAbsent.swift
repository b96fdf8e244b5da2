import Foundation
import ProvisionPluginAPI

/// `file.absent`: the path must not exist (its content is kept in history for rollback).
public struct FileAbsent: StepPlugin {
    public init() {}
    public let kind = "file.absent"
    public let summary = "Ensure a file does not exist."
    public let options: [OptionSpec] = [
        OptionSpec("path", .path, required: true, help: "absolute path of the file to remove"),
        notifyOption,
    ]

    public func plan(_ step: StepContext) throws -> StepPlan {
        let path = try step.options.requiredPath("path")
        return StepPlan(files: [DesiredFile(path: path, state: .absent)], handlers: try notifyHandlers(step, path: path))
    }
}
