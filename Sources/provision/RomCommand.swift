import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionROM

struct RomCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rom", abstract: "Work with PCI option ROMs (VBIOS).", subcommands: [RomInspectCommand.self])
}

struct RomInspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Walk a ROM's images and check them; exits 1 when the ROM is not valid.")

    @Argument(help: "The ROM file.", completion: .file()) var file: String
    @Flag(name: .long, help: "Print one JSON document on stdout (errors too), with a \"schema\" version field.") var json = false
    @OptionGroup var display: DisplayOptions

    func run() throws {
        let console = Console(display, json: json)
        try runReporting(console) {
            let data = try Fetch.localFile(file, maxBytes: OptionROM.maximumSize + 1)
            let rom = try OptionROM.parse(data, name: file)
            if json {
                struct Document: Encodable {
                    var file: String
                    var valid: Bool
                    var faults: [String]
                    var rom: OptionROM
                }
                Output.printJSON(Document(file: file, valid: rom.faults.isEmpty, faults: rom.faults, rom: rom))
            } else {
                console.out("\(file): \(rom.report)")
            }
            guard let fault = rom.faults.first else { return }
            let error = ProvisionError(.invalidInput, "\(file): \(fault)")
            // With --json the document above says valid: false; one document, the reason on stderr.
            if json {
                console.err("provision: " + console.paint("error:", .red, stderr: true) + " \(error.description)\n")
                throw ExitCode(error.exitCode)
            }
            throw error
        }
    }
}
