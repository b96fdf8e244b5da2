import ArgumentParser
import Foundation
import ProvisionCore

#if canImport(Glibc)
import Glibc
#endif

struct HistoryBundleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bundle",
        abstract: "Write the history as a git bundle (branch and run tags, real bytes) to FILE or standard output.",
        discussion: """
            What `provision fleet` fetches from each host into its central fleet.git: `git fetch FILE` or `git clone FILE` \
            read it. With --have, commits the receiver already holds are left out (they become the bundle's \
            prerequisites). Unlike `export`, nothing is redacted: the bundle holds what the history holds.
            """)

    @Argument(help: "Where to write the bundle; - or nothing for standard output.") var file: String = "-"
    @Option(help: "A commit the receiver already has (repeatable).") var have: [String] = []
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try runReporting(json: global.json) {
            let bundle = try global.engine().historyBundle(haves: have)
            if file == "-" {
                try FileHandle.standardOutput.write(contentsOf: bundle)
            } else {
                guard FileManager.default.createFile(atPath: file, contents: bundle, attributes: [.posixPermissions: 0o600]) else {
                    throw ProvisionError(.io, "cannot write \(file)")
                }
            }
        }
    }
}
