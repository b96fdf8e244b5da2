import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// Plugins are pure by construction: plugin modules see ProvisionPluginAPI, which cannot write,
/// spawn or download, and never ProvisionCore, which can. The compiler holds them to it.
@Suite(.serialized) struct PurityTests {
    /// Modules plugins are built from: every target under Plugins/, and the editors they share.
    static func pluginTargets(_ manifest: [String: Any]) -> [String: [String]] {
        var result: [String: [String]] = [:]
        for case let target as [String: Any] in manifest["targets"] as? [Any] ?? [] {
            guard let name = target["name"] as? String, let path = target["path"] as? String,
                path.hasPrefix("Plugins/") || path == "Sources/ProvisionEdit"
            else { continue }
            result[name] = dependencies(target)
        }
        return result
    }

    static func dependencies(_ target: [String: Any]) -> [String] {
        (target["dependencies"] as? [[String: Any]] ?? []).compactMap { dependency in
            for key in ["byName", "target", "product"] {
                if let entry = dependency[key] as? [Any], let name = entry.first as? String { return name }
            }
            return nil
        }
    }

    @Test func pluginModulesNeverReachTheCore() throws {
        // Its own scratch path: `swift test` holds the lock on the package's .build.
        let scratch = try TempRoot()
        let dump = try ProcessRunner.run(["swift", "package", "--package-path", Package.root, "--scratch-path", scratch.path, "dump-package"])
        try #require(dump.status == 0, "\(dump.output)")
        let start = dump.output.firstIndex(of: "{")!
        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(dump.output[start...].utf8)) as? [String: Any])
        var all: [String: [String]] = [:]
        for case let target as [String: Any] in manifest["targets"] as? [Any] ?? [] {
            if let name = target["name"] as? String { all[name] = Self.dependencies(target) }
        }
        let plugins = Self.pluginTargets(manifest)
        #expect(plugins.count >= 10, "\(plugins.keys.sorted())")
        for (name, _) in plugins {
            // Everything the module can import: its dependencies, and theirs.
            var reachable: Set<String> = []
            var pending = [name]
            while let next = pending.popLast() {
                for dependency in all[next] ?? [] where reachable.insert(dependency).inserted { pending.append(dependency) }
            }
            #expect(!reachable.contains("ProvisionCore"), "\(name) can reach ProvisionCore through \(reachable.sorted())")
            #expect(reachable.contains("ProvisionPluginAPI") || name == "ProvisionPluginAPI", "\(name)")
        }
        // SwiftPM lets a module import any module built before it; the sources must not try.
        for directory in ["Plugins", "Sources/ProvisionEdit"] {
            let grep = try ProcessRunner.run(["grep", "-rlE", "^(@testable |@_exported )?import ProvisionCore$", Package.path(directory)])
            #expect(grep.status == 1, "plugin sources importing the core:\n\(grep.output)")
        }
    }

    /// A tiny package: the plugin API as the package builds it, a plugin module that only reads
    /// (it builds), and one that reaches for the writing half of the core (it must not build).
    @Test(.timeLimit(.minutes(10))) func aPluginCallingTheWriteAPIDoesNotCompile() throws {
        let temp = try TempRoot()
        let fileManager = FileManager.default
        for module in ["CSystem", "ProvisionPluginAPI"] {
            try fileManager.createDirectory(atPath: temp.real("/Sources"), withIntermediateDirectories: true)
            try fileManager.createSymbolicLink(atPath: temp.real("/Sources/\(module)"), withDestinationPath: Package.path("Sources/\(module)"))
        }
        // The same package name as provision's, so `package` declarations are as visible as there.
        try temp.write("/Package.swift", """
            // swift-tools-version:6.0
            import PackageDescription
            let package = Package(
                name: "provision",
                targets: [
                    .target(name: "CSystem", path: "Sources/CSystem"),
                    .target(name: "ProvisionPluginAPI", dependencies: ["CSystem"], path: "Sources/ProvisionPluginAPI"),
                    .target(name: "ReadingPlugin", dependencies: ["ProvisionPluginAPI"], path: "Plugins/Reading"),
                    .target(name: "WritingPlugin", dependencies: ["ProvisionPluginAPI"], path: "Plugins/Writing"),
                ],
                swiftLanguageModes: [.v6]
            )
            """)
        try temp.write("/Plugins/Reading/Reading.swift", """
            import Foundation
            import ProvisionPluginAPI

            struct Reading: StepPlugin {
                let kind = "test.reading"
                let summary = "reads, and says what the file should be"
                let options: [OptionSpec] = []
                func plan(_ step: StepContext) throws -> StepPlan {
                    let text = try step.host.text("/etc/hostname") ?? ""
                    return StepPlan(files: [DesiredFile(path: "/etc/motd", state: .present(Data(text.utf8)))])
                }
            }
            """)
        try temp.write("/Plugins/Writing/Writing.swift", """
            import Foundation
            import ProvisionPluginAPI

            struct Writing: StepPlugin {
                let kind = "test.writing"
                let summary = "tries to change the host while planning"
                let options: [OptionSpec] = []
                func plan(_ step: StepContext) throws -> StepPlan {
                    let root = try HostRoot("/")
                    try root.writeAtomically("/etc/motd", content: Data(), meta: FileMeta(mode: 0o644, uid: 0, gid: 0))
                    try root.remove("/etc/motd")
                    try RootWriter(root).remove("/etc/motd")
                    _ = step.host.root
                    _ = try Engine(root: root, registry: PluginRegistry([]))
                    _ = try Fetch.download(URL(string: "https://example.org")!, maxBytes: 1, allowHTTP: false)
                    return StepPlan()
                }
            }
            """)
        let scratch = temp.real("/.build")
        let reading = try ProcessRunner.run(["swift", "build", "--package-path", temp.path, "--scratch-path", scratch, "--target", "ReadingPlugin"])
        #expect(reading.status == 0, "the reading plugin must build:\n\(reading.output.suffix(3000))")
        let writing = try ProcessRunner.run(["swift", "build", "--package-path", temp.path, "--scratch-path", scratch, "--target", "WritingPlugin"])
        #expect(writing.status != 0, "the writing plugin built")
        for expected in [
            "value of type 'HostRoot' has no member 'writeAtomically'",
            "value of type 'HostRoot' has no member 'remove'",
            "cannot find 'RootWriter' in scope",
            "'root' is inaccessible due to 'internal' protection level",
            "cannot find 'Engine' in scope",
            "cannot find 'Fetch' in scope",
        ] {
            #expect(writing.output.contains(expected), "\(expected)\n\(writing.output.suffix(3000))")
        }
    }
}
