import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionPlugins

struct PluginsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins",
        abstract: "List step kinds (built-in and external, with why a plugin is shadowed or broken), or describe one.")

    @Argument(help: "A step kind to describe with its options and an example.") var kind: String?
    @OptionGroup var plugins: PluginOptions
    @Flag(name: .long, help: "Print one JSON document on stdout.") var json = false

    struct OptionDocument: Encodable {
        var name, type, help: String
        var required: Bool
        var defaultValue: String?

        enum CodingKeys: String, CodingKey {
            case name, type, help, required
            case defaultValue = "default"
        }
    }

    struct KindDocument: Encodable {
        var kind, summary, source: String
        var path: String?
        var options: [OptionDocument]
        var example: String
    }

    struct ListDocument: Encodable {
        var kinds: [PluginCatalog.Entry]
        var searchPath: [String]

        enum CodingKeys: String, CodingKey {
            case kinds
            case searchPath = "search_path"
        }
    }

    func run() throws {
        let catalog = plugins.catalog()
        guard let kind else {
            if json {
                Output.printJSON(ListDocument(kinds: catalog.entries, searchPath: PluginCatalog.searchPath(pluginDirs: plugins.directories)))
                return
            }
            for plugin in catalog.registry.plugins {
                print("\(plugin.kind)\n  \(plugin.summary)")
                for option in plugin.options {
                    let flags = option.required ? ", required" : option.defaultText.map { ", default \($0)" } ?? ""
                    print("    \(option.name) (\(option.type)\(flags)): \(option.help)")
                }
                if let external = plugin as? ExternalPlugin { print("  external: \(external.path)") }
                print("")
            }
            for entry in catalog.entries where entry.status != .active {
                print("\(entry.kind) (\(entry.status.rawValue)): \(entry.path ?? "")\n  \(entry.reason ?? "")\n")
            }
            return
        }
        guard let plugin = catalog.registry.plugin(kind) else {
            let listed = catalog.entries.filter { $0.kind == kind }
            let why = listed.map { "\($0.path ?? $0.kind) is \($0.status.rawValue): \($0.reason ?? "")" }.joined(separator: "; ")
            throw ValidationError("no step kind \"\(kind)\"" + (why.isEmpty ? "; `provision plugins` lists them" : " (\(why))"))
        }
        let document = KindDocument(
            kind: plugin.kind, summary: plugin.summary, source: plugin is ExternalPlugin ? "external" : "built-in",
            path: (plugin as? ExternalPlugin)?.path,
            options: plugin.options.map {
                OptionDocument(name: $0.name, type: $0.type.description, help: $0.help, required: $0.required, defaultValue: $0.defaultText)
            }, example: Self.example(plugin))
        if json {
            Output.printJSON(document)
            return
        }
        var out = "\(plugin.kind) (\(document.source)\(document.path.map { ", \($0)" } ?? ""))\n  \(plugin.summary)\n\noptions:\n"
        if plugin.options.isEmpty { out += "  none\n" }
        for option in plugin.options {
            let flags = option.required ? ", required" : option.defaultText.map { ", default \($0)" } ?? ""
            out += "  \(option.name) (\(option.type)\(flags))\n      \(option.help)\n"
        }
        out += "\nexample:\n" + document.example
        print(out, terminator: "")
    }

    /// A recipe step using the kind: its required options with a placeholder of their type.
    static func example(_ plugin: any StepPlugin) -> String {
        var lines = ["steps:", "  - id: \(plugin.kind.replacingOccurrences(of: ".", with: "-"))", "    uses: \(plugin.kind)"]
        let shown = plugin.options.filter { $0.required }
        if !shown.isEmpty {
            lines.append("    with:")
            for option in shown {
                let value: String
                switch option.type {
                case .int: value = "1"
                case .bool: value = "true"
                case .stringList: value = "[first, second]"
                case .map: value = "{key: value}"
                case .mode: value = "\"0644\""
                case .path: value = "/etc/example"
                case .choice(let words): value = words.first ?? "\"\""
                case .string: value = "\"…\""
                }
                lines.append("      \(option.name): \(value)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
