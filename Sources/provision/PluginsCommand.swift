import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionPlugins

struct PluginsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plugins", abstract: "List step kinds and their options.")

    @Flag(name: .long, help: "Print one JSON document on stdout.") var json = false

    func run() throws {
        if json {
            struct Option: Encodable { var name, type, help: String; var required: Bool; var defaultValue: String? }
            struct Kind: Encodable { var kind, summary: String; var options: [Option] }
            Output.printJSON(builtinRegistry.plugins.map { plugin in
                Kind(kind: plugin.kind, summary: plugin.summary, options: plugin.options.map {
                    Option(name: $0.name, type: $0.type.description, help: $0.help, required: $0.required, defaultValue: $0.defaultText)
                })
            })
            return
        }
        for plugin in builtinRegistry.plugins {
            print("\(plugin.kind)\n  \(plugin.summary)")
            for option in plugin.options {
                let flags = option.required ? ", required" : option.defaultText.map { ", default \($0)" } ?? ""
                print("    \(option.name) (\(option.type)\(flags)): \(option.help)")
            }
            print("")
        }
    }
}
