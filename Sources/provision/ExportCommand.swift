import ArgumentParser
import Foundation
import ProvisionCore

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write the history as one archive (git bundle, run records, SHA-256 manifest), or check one with --verify.",
        discussion: """
            The compression follows FILE's name: .tar, .tar.gz or .tar.zst. The bundle is made without a git binary and \
            clones with plain `git clone`. By default its shadow and gshadow blobs have their password hashes redacted \
            (every commit re-created on the redacted files, run tags kept); --include-secrets exports the history as it is. \
            --verify checks every byte of the archive, each member against the manifest, and the bundle; exit 1 if not valid.
            """)

    @Argument(help: "The archive to write (or to check with --verify).") var file: String
    @Option(help: "Only what was recorded after this run (number, run/N, commit id) or since this date.") var since: String?
    @Flag(name: .customLong("include-secrets"), help: "Keep password hashes in the bundle (the history's real bytes).")
    var includeSecrets = false
    @Flag(help: "Check an existing export instead of writing one.") var verify = false
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if verify && (since != nil || includeSecrets) { throw ValidationError("--verify takes only the FILE to check") }
    }

    func run() throws {
        let console = global.console
        if verify {
            let result = Engine.verifyExport(file)
            if global.json {
                Output.printJSON(result)
            } else {
                var out = ""
                for problem in result.problems { out += "problem: \(problem)\n" }
                for note in result.notes { out += "note: \(note)\n" }
                if result.valid, let manifest = result.manifest {
                    out += "\(file): " + console.paint("valid", .green) + " export of \(manifest.history) (\(manifest.commits) commit(s), runs \(Output.ranges(manifest.runs)), "
                    out += "\(manifest.members.count + 2) members, \(manifest.redacted ? "password hashes redacted" : "with secrets"))\n"
                } else {
                    out += "\(file): " + console.paint("NOT a valid export", .red) + "\n"
                }
                console.out(out)
            }
            if !result.valid { throw ExitCode(1) }
            return
        }
        try runReporting(console) {
            let report = try global.engine().export(ExportOptions(file: file, since: since, includeSecrets: includeSecrets))
            if global.json {
                Output.printJSON(report)
                return
            }
            let manifest = report.manifest
            console.out("exported \(manifest.commits) commit(s) (runs \(Output.ranges(manifest.runs))) to \(report.file): "
                + "\(manifest.members.count + 2) members, \(report.bytes) bytes, \(report.compression.rawValue), "
                + (manifest.redacted ? "password hashes redacted" : "with secrets (--include-secrets)") + "\n")
        }
    }
}
