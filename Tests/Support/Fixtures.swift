import Foundation
import ProvisionCore
import Testing

/// A step fixture, pyinfra-style: `{step, options, files, expected | error}` plus the kernels the
/// root has. Running one applies the step to a root holding `files`, then applies it again and rolls
/// it back, and reports what happened; the tests judge the report.
public struct StepFixture: Decodable, Sendable, CustomStringConvertible {
    public var name = ""
    public var step: String
    public var options: [String: Value]
    public var files: [String: String]
    /// Host path -> a file beside the fixture holding the content (whole documents such as domain XML).
    public var files_from: [String: String]?
    public var file_modes: [String: String]?
    /// Kernel release -> loadable module names (written as lib/modules/RELEASE/modules.dep).
    public var kernels: [String: [String]]?
    /// Kernel release -> built-in module names (modules.builtin).
    public var builtin: [String: [String]]?
    /// Directories that must exist (e.g. a generator's data directory).
    public var directories: [String]?
    /// A directory beside the fixture copied into the root first, links kept (a machine's sys/ and proc/).
    public var tree: String?
    public var expected: [String: String?]?
    /// Host path -> a golden file beside the fixture.
    public var expected_from: [String: String]?
    public var expected_mode: [String: String]?
    /// File -> array name -> the elements a real bash sees after sourcing the file.
    public var bash_arrays: [String: [String: [String]]]?
    /// File -> variable -> the value a real sh sees after sourcing the file.
    public var sh_variables: [String: [String: String]]?
    public var error: String?
    /// Text every notice together must contain.
    public var notices: [String]?

    enum CodingKeys: String, CodingKey {
        case step, options, files, files_from, expected_from, file_modes, kernels, builtin, directories, tree, expected, expected_mode, bash_arrays,
            sh_variables, error, notices
    }

    public var description: String { name }
    var directory = ""

    /// `files` and `files_from` together.
    public func inputFiles() throws -> [String: String] {
        var all = files
        for (path, source) in files_from ?? [:] { all[path] = try String(contentsOfFile: directory + "/" + source, encoding: .utf8) }
        return all
    }

    /// `expected` and `expected_from` together.
    public func expectedFiles() throws -> [String: String?] {
        var all = expected ?? [:]
        for (path, source) in expected_from ?? [:] { all[path] = try String(contentsOfFile: directory + "/" + source, encoding: .utf8) }
        return all
    }

    public static func load(_ directory: String) throws -> [StepFixture] {
        let path = Package.path(directory)
        return try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".json") }.sorted().map { file in
            var fixture = try JSONDecoder().decode(StepFixture.self, from: Data(contentsOf: URL(fileURLWithPath: path + "/" + file)))
            fixture.name = String(file.dropLast(5))
            fixture.directory = path
            return fixture
        }
    }

    public struct Outcome {
        public var error: ProvisionError?
        /// True when a refused run left the root exactly as it was.
        public var unchangedAfterError = true
        public var files: [String: String?] = [:]
        public var modes: [String: String] = [:]
        public var bashArrays: [String: [String: [String]]] = [:]
        public var shVariables: [String: [String: String]] = [:]
        public var notices: [String] = []
        public var secondApplyChanges = 0
        public var rollbackRestored = true
    }

    public func run(registry: PluginRegistry) throws -> Outcome {
        let temp = try TempRoot()
        try FileManager.default.createDirectory(atPath: temp.real("/var/lib"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: temp.real("/usr/lib/modules"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: temp.real("/lib"), withDestinationPath: "usr/lib")
        try temp.write("/etc/passwd", "root:x:0:0::/root:/bin/sh\nalex:x:1000:1000::/home/alex:/bin/sh\n")
        if let tree {
            let result = try ProcessRunner.run(["cp", "-a", directory + "/" + tree + "/.", temp.path])
            guard result.status == 0 else { throw ProvisionError(.io, "cp failed: \(result.output)") }
        }
        for directory in directories ?? [] {
            try FileManager.default.createDirectory(atPath: temp.real(directory), withIntermediateDirectories: true)
        }
        for (release, modules) in kernels ?? [:] {
            try temp.write("/usr/lib/modules/\(release)/modules.dep", modules.map { "kernel/drivers/\($0).ko.zst:\n" }.joined())
            try temp.write("/usr/lib/modules/\(release)/modules.builtin", (builtin?[release] ?? []).map { "kernel/drivers/\($0).ko\n" }.joined())
        }
        for (path, content) in try inputFiles() {
            try temp.write(path, content, mode: mode_t(FileMeta.parseMode(file_modes?[path] ?? "0644")!))
        }
        let original = try temp.fingerprint()
        // JSON is YAML, so the recipe is the fixture's options as they are.
        let recipeText = String(
            decoding: try JSONEncoder.sorted.encode(
                Value.map(["name": .string(name), "steps": .list([.map(["uses": .string(step), "with": .map(options)])])])),
            as: UTF8.self)
        let engine = try Engine(root: HostRoot(temp.path), registry: registry)
        engine.runHandlers = false
        var outcome = Outcome()
        let report: RunReport
        do {
            report = try engine.apply(try Recipe.parse(recipeText, file: "\(name).json", registry: registry))
        } catch let error as ProvisionError {
            outcome.error = error
            outcome.unchangedAfterError = try temp.fingerprint(excludingHistory: false) == original
            return outcome
        }
        outcome.notices = report.plan?.notices.map(\.message) ?? []
        for path in try expectedFiles().keys {
            outcome.files[path] = temp.read(path)
        }
        for path in (expected_mode ?? [:]).keys {
            var info = stat()
            stat(temp.real(path), &info)
            outcome.modes[path] = String(format: "%04o", info.st_mode & 0o7777)
        }
        for (path, arrays) in bash_arrays ?? [:] {
            for name in arrays.keys {
                // The real consumer: bash sources the file and prints the array one element a line.
                let script = "set -e; source \"$1\"; printf '%s\\n' \"${\(name)[@]}\""
                let result = try ProcessRunner.run(["bash", "-c", script, "bash", temp.real(path)])
                outcome.bashArrays[path, default: [:]][name] =
                    result.status == 0 ? result.output.split(separator: "\n").map(String.init) : ["bash failed: \(result.output)"]
            }
        }
        for (path, variables) in sh_variables ?? [:] {
            for name in variables.keys {
                let result = try ProcessRunner.run(["sh", "-c", ". \"$1\"; printf '%s' \"$\(name)\"", "sh", temp.real(path)])
                outcome.shVariables[path, default: [:]][name] = result.status == 0 ? result.output : "sh failed: \(result.output)"
            }
        }
        let recipe = try Recipe.parse(recipeText, file: "\(name).json", registry: registry)
        outcome.secondApplyChanges = try engine.apply(recipe).changes.count
        if !report.changes.isEmpty { _ = try engine.rollback() }
        outcome.rollbackRestored = try temp.fingerprint() == original
        return outcome
    }
}

extension StepFixture {
    /// The assertions every step fixture gets.
    public func check(registry: PluginRegistry, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
        let outcome = try run(registry: registry)
        if let expectedError = error {
            #expect(outcome.error?.description.contains(expectedError) == true, "\(String(describing: outcome.error))", sourceLocation: sourceLocation)
            #expect(outcome.unchangedAfterError, "a refused step changes nothing", sourceLocation: sourceLocation)
            return
        }
        #expect(outcome.error == nil, "\(String(describing: outcome.error))", sourceLocation: sourceLocation)
        for (path, content) in try expectedFiles() {
            let actual = outcome.files[path] ?? nil
            #expect(actual == content, "\(path)\n\(Diff.describe(path: path, before: Self.state(content), after: Self.state(actual)))", sourceLocation: sourceLocation)
        }
        for (path, mode) in expected_mode ?? [:] { #expect(outcome.modes[path] == mode, "\(path)", sourceLocation: sourceLocation) }
        for (path, arrays) in bash_arrays ?? [:] {
            for (name, elements) in arrays {
                #expect(outcome.bashArrays[path]?[name] == elements, "\(name) in \(path)", sourceLocation: sourceLocation)
            }
        }
        for (path, variables) in sh_variables ?? [:] {
            for (name, value) in variables {
                #expect(outcome.shVariables[path]?[name] == value, "\(name) in \(path)", sourceLocation: sourceLocation)
            }
        }
        let allNotices = outcome.notices.joined(separator: "\n")
        for text in notices ?? [] { #expect(allNotices.contains(text), "notice \(text) in \(allNotices)", sourceLocation: sourceLocation) }
        #expect(outcome.secondApplyChanges == 0, "a second apply changes nothing", sourceLocation: sourceLocation)
        #expect(outcome.rollbackRestored, "rollback restores the input byte for byte", sourceLocation: sourceLocation)
    }
}

extension StepFixture {
    static func state(_ text: String?) -> FileState {
        text.map { .file(Data($0.utf8), FileMeta(mode: 0o644, uid: 0, gid: 0)) } ?? .absent
    }
}

extension StepFixture {
    /// Applies several fixtures' steps in turn to one root made from this fixture, and returns the
    /// content of this fixture's files (and the dracut drop-in) at the end.
    public func runSequence(_ steps: [StepFixture], registry: PluginRegistry) throws -> [String: String?] {
        let temp = try TempRoot()
        try FileManager.default.createDirectory(atPath: temp.real("/usr/lib/modules"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: temp.real("/lib"), withDestinationPath: "usr/lib")
        for directory in directories ?? [] {
            try FileManager.default.createDirectory(atPath: temp.real(directory), withIntermediateDirectories: true)
        }
        for (release, modules) in kernels ?? [:] {
            try temp.write("/usr/lib/modules/\(release)/modules.dep", modules.map { "kernel/drivers/\($0).ko.zst:\n" }.joined())
        }
        for (path, content) in files { try temp.write(path, content) }
        let engine = try Engine(root: HostRoot(temp.path), registry: registry)
        engine.runHandlers = false
        for (index, fixture) in steps.enumerated() {
            let text = String(
                decoding: try JSONEncoder.sorted.encode(
                    Value.map(["name": .string("\(name)-\(index)"), "steps": .list([.map(["uses": .string(fixture.step), "with": .map(fixture.options)])])])),
                as: UTF8.self)
            _ = try engine.apply(try Recipe.parse(text, file: "\(name)-\(index).json", registry: registry))
        }
        var result: [String: String?] = [:]
        for path in Array(files.keys) + ["/etc/dracut.conf.d/vfio.conf"] { result[path] = temp.read(path) }
        return result
    }
}
