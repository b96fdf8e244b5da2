import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// A step fixture as the built-ins' tests write them (`{step, options, files, expected | error,
/// notices}`), run the way they are: the step applied to a scratch root holding `files`, applied
/// again (must change nothing) and rolled back (must restore every byte, mode and owner).
/// `provision plugin test DIR` runs a plugin's fixtures with it.
public struct PluginFixture: Decodable, Sendable {
    public var name = ""
    public var step: String
    public var options: [String: Value]
    public var files: [String: String]
    /// Host path -> octal mode of an input file ("0600").
    public var file_modes: [String: String]?
    /// Host path -> content after the apply; null for absent.
    public var expected: [String: String?]?
    /// Text the error must contain when the step is refused.
    public var error: String?
    /// Text the notices together must contain.
    public var notices: [String]?
    /// A declared input's source (URL, or file path) -> its content: fixtures give inputs as data.
    public var inputs: [String: String]?

    enum CodingKeys: String, CodingKey { case step, options, files, file_modes, expected, error, notices, inputs }

    /// Every `*.json` in a directory, by name.
    public static func load(_ directory: String) throws -> [PluginFixture] {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
        return try names.map { file in
            let path = directory + "/" + file
            do {
                var fixture = try JSONDecoder().decode(PluginFixture.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
                fixture.name = String(file.dropLast(5))
                return fixture
            } catch let error as DecodingError {
                throw ProvisionError(.invalidInput, "fixture \(path): \(Value.describe(error))")
            }
        }
    }

    /// What went wrong, one line each; empty when the fixture passed.
    public func check(registry: PluginRegistry) throws -> [String] {
        let scratch = try ScratchDirectory()
        // The history's parents, so the only thing a run adds is provision's own state.
        try FileManager.default.createDirectory(atPath: scratch.path + "/var/lib", withIntermediateDirectories: true)
        try scratch.write("/etc/passwd", Data("root:x:0:0::/root:/bin/sh\n".utf8), mode: 0o644)
        try scratch.write("/etc/group", Data("root:x:0:\n".utf8), mode: 0o644)
        for (path, content) in files {
            guard let mode = FileMeta.parseMode(file_modes?[path] ?? "0644") else { return ["file_modes of \(path) is not an octal mode"] }
            try scratch.write(path, Data(content.utf8), mode: mode)
        }
        let before = try scratch.fingerprint()
        let recipeText = String(
            decoding: try JSONEncoder.sorted.encode(
                Value.map(["name": .string(name), "steps": .list([.map(["id": .string(name), "uses": .string(step), "with": .map(options)])])])),
            as: UTF8.self)
        let engine = try Engine(root: HostRoot(scratch.path), registry: registry)
        engine.runHandlers = false
        engine.inputs = DataInputs((inputs ?? [:]).mapValues { Data($0.utf8) })
        let recipe = try Recipe.parse(recipeText, file: "\(name).json", registry: registry)
        var failures: [String] = []
        let report: RunReport
        do {
            report = try engine.apply(recipe)
        } catch let error as ProvisionError {
            guard let expected = self.error else { return ["refused: \(error.description)"] }
            if !error.description.contains(expected) { failures.append("the error does not say \"\(expected)\": \(error.description)") }
            if try scratch.fingerprint() != before { failures.append("the refused step changed the root") }
            return failures
        }
        if let expected = error { return ["expected an error saying \"\(expected)\", but the step applied"] }
        for (path, content) in (expected ?? [:]).sorted(by: { $0.key < $1.key }) {
            let actual = scratch.read(path)
            if actual != content {
                failures.append("\(path): expected \(content.map { $0.debugDescription } ?? "absent"), got \(actual.map { $0.debugDescription } ?? "absent")")
            }
        }
        let said = (report.plan?.notices.map(\.message) ?? []).joined(separator: "\n")
        for text in notices ?? [] where !said.contains(text) { failures.append("no notice says \"\(text)\" (notices: \(said))") }
        let again = try engine.apply(recipe)
        if !again.changes.isEmpty { failures.append("a second apply changed \(again.changes.map(\.path).joined(separator: ", "))") }
        if !report.changes.isEmpty { _ = try engine.rollback() }
        if try scratch.fingerprint() != before { failures.append("rollback did not restore the root byte for byte") }
        return failures
    }
}

/// Inputs given as data, by the source's text (the URL, or the file's path, or its last
/// component): how fixtures and tests hand a step its download without a server.
public struct DataInputs: InputProvider {
    let contents: [String: Data]

    public init(_ contents: [String: Data]) { self.contents = contents }

    public func fetch(_ input: DeclaredInput, root: HostRoot) throws -> Data {
        let key = input.source.description
        guard let data = contents[key] ?? contents[(key as NSString).lastPathComponent] else {
            throw ProvisionError(.notFound, "no input \"\(key)\" was given (a fixture lists it in \"inputs\")")
        }
        guard data.count <= input.maxBytes else {
            throw ProvisionError(.invalidInput, "\(key) is \(data.count) bytes, more than the limit of \(input.maxBytes)")
        }
        return data
    }
}

/// A directory under /tmp removed with everything in it when dropped.
final class ScratchDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/provision-fixture-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw ProvisionError.io("cannot create a scratch directory in", "/tmp")
        }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ hostPath: String, _ data: Data, mode: UInt32) throws {
        let target = path + hostPath
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: target))
        chmod(target, mode_t(mode))
    }

    func read(_ hostPath: String) -> String? {
        FileManager.default.contents(atPath: path + hostPath).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Content, mode and owner of every file and directory, provision's own state left out.
    func fingerprint() throws -> [String: String] {
        var result: [String: String] = [:]
        for case let relative as String in FileManager.default.enumerator(atPath: path)?.allObjects ?? []
        where !relative.hasPrefix("var/lib/provision") {
            var info = stat()
            guard lstat(path + "/" + relative, &info) == 0 else { continue }
            let content = (info.st_mode & S_IFMT) == S_IFREG ? SHA256.hex(try Data(contentsOf: URL(fileURLWithPath: path + "/" + relative))) : "-"
            result[relative] = "\(info.st_mode) \(info.st_uid):\(info.st_gid) \(content)"
        }
        return result
    }
}
