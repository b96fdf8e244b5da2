import Foundation

/// The CLI run on a pseudo-terminal, as a person sees it: util-linux `script` gives it a tty for
/// stdout and stderr (so isatty is true, as on a console), and every line is stamped with the
/// moment it reached the terminal, to show what appears while a slow handler runs.
public enum Terminal {
    public struct Line: Sendable {
        /// Seconds since the command started.
        public var time: Double
        /// The line as the terminal got it (escape codes included, the tty's \r removed).
        public var text: String
    }

    public struct Result: Sendable {
        public var status: Int32
        public var lines: [Line]
        public var text: String { lines.map(\.text).joined(separator: "\n") }

        /// The first line containing `needle`.
        public func line(_ needle: String) -> Line? { lines.first { $0.text.contains(needle) } }
    }

    static func quote(_ word: String) -> String { "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// `provision ARGUMENTS` on a terminal; `environment` is added to the test's own.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let command = ([CLI.binary] + arguments).map(quote).joined(separator: " ")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qfec", command, "/dev/null"]
        var env = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        env["TERM"] = env["TERM"].flatMap { $0 == "dumb" ? nil : $0 } ?? "xterm"
        if environment["NO_COLOR"] == nil { env["NO_COLOR"] = nil }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let started = Date()
        try process.run()
        var lines: [Line] = []
        var pending = Data()
        let reader = pipe.fileHandleForReading
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            let now = Date().timeIntervalSince(started)
            pending.append(chunk)
            while let newline = pending.firstIndex(of: 0x0A) {
                let text = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self).replacingOccurrences(of: "\r", with: "")
                lines.append(Line(time: now, text: text))
                pending.removeSubrange(pending.startIndex...newline)
            }
        }
        if !pending.isEmpty {
            lines.append(Line(time: Date().timeIntervalSince(started), text: String(decoding: pending, as: UTF8.self)))
        }
        process.waitUntilExit()
        return Result(status: process.terminationStatus, lines: lines)
    }
}
