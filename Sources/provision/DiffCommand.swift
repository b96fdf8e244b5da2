import ArgumentParser
import Foundation
import ProvisionCore

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what a run changed, or every change from one run to another, as git diff prints it.",
        discussion: """
            RUN is a run number, run/N, or a commit id (4 or more hex digits). The second argument is RUN2 when it is one of \
            those, else the first PATH; paths are host paths or relative to the root, as git pathspecs. The patch is \
            `git diff RUN^ RUN` (or `git diff RUN RUN2`) on the history, without .provision/, with password hashes of \
            shadow files redacted; owner and mode changes git cannot show follow as `# ` lines.
            """)

    @Argument(help: ArgumentHelp("RUN [RUN2] [PATH...]", valueName: "run-or-path")) var arguments: [String]
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard !arguments.isEmpty else { throw ValidationError("give the RUN to show (see provision history)") }
    }

    static func looksLikeRun(_ text: String) -> Bool {
        let digits = text.hasPrefix("run/") ? String(text.dropFirst(4)) : text
        if !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) { return true }
        return (4...40).contains(text.count) && text.allSatisfy { $0.isHexDigit }
    }

    func run() throws {
        let console = global.console
        try runReporting(console) {
            let second = arguments.count > 1 && Self.looksLikeRun(arguments[1]) ? arguments[1] : nil
            let paths = Array(arguments.dropFirst(second == nil ? 1 : 2))
            let report = try global.engine().diff(arguments[0], second, paths: paths)
            if global.json {
                Output.printJSON(report)
                return
            }
            console.page(console.diff(report.text))
        }
    }
}
