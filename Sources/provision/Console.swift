import ArgumentParser
import Foundation
import ProvisionCore

#if canImport(Glibc)
import Glibc
#endif

enum ColorMode: String, ExpressibleByArgument, CaseIterable {
    case auto, always, never
}

/// How output looks: colour, how much is said, and the pager. Every command takes these.
struct DisplayOptions: ParsableArguments {
    @Option(
        name: .customLong("color"),
        help: ArgumentHelp(
            "Colour diffs, statuses and warnings: auto (on a terminal, unless NO_COLOR is set), always or never.",
            valueName: "when"))
    var color: ColorMode = .auto

    @Flag(name: .shortAndLong, help: "Say less: only warnings, errors and the closing summary.")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Say more: where each handler runs and its full command line.")
    var verbose = false

    @Flag(name: .customLong("no-pager"), help: "Do not page long output through $PAGER on a terminal.")
    var noPager = false

    func validate() throws {
        if quiet && verbose { throw ValidationError("give -q or -v, not both") }
    }
}

/// Writes human output and diagnostics: stdout for results, stderr for diagnostics (stdout is
/// flushed first, so a redirected run reads in order), colour only where a person sees it.
struct Console {
    enum Style: String {
        case red = "31", green = "32", yellow = "33", blue = "34", magenta = "35", cyan = "36", bold = "1", dim = "2"
    }

    let json: Bool
    let quiet: Bool
    let verbose: Bool
    let colorOut: Bool
    let colorErr: Bool
    let pager: Bool

    init(_ options: DisplayOptions, json: Bool) {
        self.init(json: json, color: options.color, quiet: options.quiet, verbose: options.verbose, noPager: options.noPager)
    }

    /// For commands without DisplayOptions: colour as --color=auto, no pager.
    init(json: Bool, color: ColorMode = .auto, quiet: Bool = false, verbose: Bool = false, noPager: Bool = true) {
        self.json = json
        self.quiet = quiet
        self.verbose = verbose
        let environment = ProcessInfo.processInfo.environment
        let noColor = !(environment["NO_COLOR"] ?? "").isEmpty || environment["TERM"] == "dumb"
        switch color {
        case .always:
            colorOut = true
            colorErr = true
        case .never:
            colorOut = false
            colorErr = false
        case .auto:
            colorOut = !noColor && isatty(1) == 1
            colorErr = !noColor && isatty(2) == 1
        }
        pager = !noPager && !json && isatty(1) == 1
    }

    func paint(_ text: String, _ style: Style, stderr: Bool = false) -> String {
        guard stderr ? colorErr : colorOut, !text.isEmpty else { return text }
        return "\u{1B}[\(style.rawValue)m\(text)\u{1B}[0m"
    }

    /// A unified diff with git's colours: file headers bold, hunks cyan, removals red, additions green.
    func diff(_ text: String) -> String {
        guard colorOut else { return text }
        var out = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast(text.hasSuffix("\n") ? 1 : 0) {
            let style: Style?
            if line.hasPrefix("+++ ") || line.hasPrefix("--- ") || line.hasPrefix("diff ") {
                style = .bold
            } else if line.hasPrefix("@@") {
                style = .cyan
            } else if line.hasPrefix("+") {
                style = .green
            } else if line.hasPrefix("-") {
                style = .red
            } else if line.hasPrefix("# ") {
                style = .yellow
            } else {
                style = nil
            }
            out += (style.map { paint(String(line), $0) } ?? String(line)) + "\n"
        }
        return text.hasSuffix("\n") ? out : String(out.dropLast())
    }

    /// A step status word, padded, in its colour.
    func status(_ word: String, width: Int = 8) -> String {
        let padded = word.padding(toLength: max(width, word.count), withPad: " ", startingAt: 0)
        switch word {
        case "changed": return paint(padded, .yellow)
        case "ok", "ran", "pass", "PASS": return paint(padded, .green)
        case "failed", "fail", "FAIL": return paint(padded, .red)
        case "skipped", "skip", "SKIP": return paint(padded, .cyan)
        default: return padded
        }
    }

    /// "warning: …" yellow, "error: …" red; other levels as they are.
    func notice(_ level: String, _ text: String) -> String {
        switch level {
        case "warning": return paint("warning:", .yellow) + " " + text
        default: return "\(level): \(text)"
        }
    }

    func out(_ text: String) {
        guard !text.isEmpty else { return }
        fflush(nil)
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// A diagnostic on stderr, after whatever stdout holds.
    func err(_ text: String) {
        fflush(nil)
        FileHandle.standardError.write(Data(text.utf8))
    }

    func warn(_ text: String) {
        err("provision: " + paint("warning:", .yellow, stderr: true) + " \(text)\n")
    }

    /// Long output on a terminal goes through $PAGER (default `less`, with LESS=FRX as git sets it,
    /// so a screenful prints and exits), else straight to stdout.
    func page(_ text: String) {
        let environment = ProcessInfo.processInfo.environment
        let command = (environment["PAGER"] ?? "less").trimmingCharacters(in: .whitespaces)
        let program = command.split(separator: " ").first.map(String.init) ?? ""
        guard pager, !command.isEmpty, program != "cat", Tools.onHost(program) != nil,
            text.split(separator: "\n", omittingEmptySubsequences: false).count > terminalRows()
        else {
            out(text)
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        var env = environment
        if env["LESS"] == nil { env["LESS"] = "FRX" }
        process.environment = env
        let pipe = Pipe()
        process.standardInput = pipe
        do {
            try process.run()
        } catch {
            out(text)
            return
        }
        // A pager that quits early closes the pipe: the rest is not wanted.
        signal(SIGPIPE, SIG_IGN)
        try? pipe.fileHandleForWriting.write(contentsOf: Data(text.utf8))
        try? pipe.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    func terminalRows() -> Int {
        var size = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0 { return Int(size.ws_row) - 1 }
        return 23
    }
}
