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

    @Argument(help: "The ROM file.") var file: String
    @Flag(name: .long, help: "Print one JSON document on stdout.") var json = false

    func run() throws {
        try runReporting(json: json) {
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
                print("\(file): \(rom.report)", terminator: "")
            }
            if let fault = rom.faults.first { throw ProvisionError(.invalidInput, "\(file): \(fault)") }
        }
    }
}
