import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionPlugins

struct PluginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin", abstract: "Work on an external plugin.", subcommands: [PluginTestCommand.self])
}

struct PluginTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run a plugin's JSON step fixtures (DIR/fixtures/*.json): apply, apply again with no change, roll back byte for byte.")

    @Argument(help: "The plugin's directory: its provision-step-KIND, and fixtures/ beside it.") var directory: String
    @OptionGroup var plugins: PluginOptions

    func run() throws {
        let fixturesDirectory = directory + "/fixtures"
        let catalog = PluginCatalog.load(
            builtins: builtinRegistry, searchPath: [directory] + PluginCatalog.searchPath(pluginDirs: plugins.directories))
        let absolute = URL(fileURLWithPath: directory).standardizedFileURL.path
        for entry in catalog.entries where entry.status != .active && entry.path?.hasPrefix(absolute + "/") == true {
            FileHandle.standardError.write(Data("provision: \(entry.path!) is \(entry.status.rawValue): \(entry.reason ?? "")\n".utf8))
        }
        let fixtures: [PluginFixture]
        do {
            fixtures = try PluginFixture.load(fixturesDirectory)
        } catch let error as ProvisionError {
            throw ValidationError(error.message)
        } catch {
            throw ValidationError("cannot read fixtures in \(fixturesDirectory): \(error.localizedDescription)")
        }
        guard !fixtures.isEmpty else { throw ValidationError("no fixtures (*.json) in \(fixturesDirectory)") }
        var failed = 0
        for fixture in fixtures {
            let failures: [String]
            do {
                failures = try fixture.check(registry: catalog.registry)
            } catch let error as ProvisionError {
                failures = [error.description]
            }
            if failures.isEmpty {
                print("PASS \(fixture.name)")
            } else {
                failed += 1
                print("FAIL \(fixture.name)\n" + failures.map { "  \($0)" }.joined(separator: "\n"))
            }
        }
        print("\(fixtures.count - failed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode(1) }
    }
}
