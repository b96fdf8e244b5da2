import ArgumentParser
import Foundation
import ProvisionCore

struct BlameCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blame",
        abstract: "Show each line of a tracked file with the run, step, user and date that last set it.",
        discussion: """
            From git's blame of the history (first parents). "by hand" lines come from a drift commit (an edit provision \
            found before a run), "original" ones were there before provision first touched the file. When the file on \
            the host differs from the last recorded state, its own lines are shown and those history never saw are \
            "not recorded".
            """)

    @Argument(help: "Host path (absolute, or relative to the root).", completion: .file()) var path: String
    @OptionGroup var global: GlobalOptions

    /// The lines of a blame, one per line: who set it, the commit, user, date, number and text.
    static func render(_ lines: [BlameLine]) -> String {
        var out = ""
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        let labels = lines.map(Self.label)
        let width = labels.map(\.count).max() ?? 0
        let users = lines.map { $0.user ?? "" }
        let userWidth = users.map(\.count).max() ?? 0
        let digits = String(lines.count).count
        for (index, line) in lines.enumerated() {
            let commit = line.commit.map { String($0.prefix(10)) } ?? String(repeating: "-", count: 10)
            let date = line.date.map { formatter.string(from: $0) } ?? String(repeating: " ", count: 16)
            let number = String(line.line)
            out += "\(labels[index].padding(toLength: width, withPad: " ", startingAt: 0))  \(commit)  "
                + "\(users[index].padding(toLength: userWidth, withPad: " ", startingAt: 0))  \(date)  "
                + "\(String(repeating: " ", count: digits - number.count))\(number)| \(line.text)\n"
        }
        return out
    }

    static func label(_ line: BlameLine) -> String {
        let run = line.run.map(String.init) ?? "?"
        switch line.origin {
        case "run": return "run \(run)" + (line.step.map { " \($0)" } ?? "")
        case "by hand": return "by hand (before run \(run))"
        case "original": return "original (before run \(run))"
        case "not recorded": return "not recorded (edited since run \(run))"
        default: return "\(line.origin) run \(run)"
        }
    }

    func run() throws {
        let console = global.console
        try runReporting(console) {
            let report = try global.engine().blame(path)
            if global.json {
                Output.printJSON(report)
                return
            }
            var out = "\(report.path): last recorded by run \(report.recorded.run.map(String.init) ?? "?") (\(report.recorded.commit.prefix(10)))"
            switch report.live {
            case "differs": out += "; the file on the host differs from it, its lines are shown"
            case "metadata": out += "; on the host its owner or mode differ"
            case "absent": out += "; the file is absent on the host now"
            case "unreadable": out += "; the file on the host cannot be read"
            default: break
            }
            out += "\n"
            out += Self.render(report.lines)
            console.page(out)
        }
    }
}
