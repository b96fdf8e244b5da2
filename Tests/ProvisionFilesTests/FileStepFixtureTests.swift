import Foundation
import ProvisionCore
import ProvisionFiles
import ProvisionTestSupport
import Testing

/// One JSON fixture per case, `{step, options, files, expected | error}`: apply the step to a root
/// holding `files`, compare with `expected`; then a second apply must change nothing and a
/// rollback must restore the input byte for byte.
struct Fixture: Decodable, CustomTestStringConvertible {
    var name = ""
    var step: String
    var options: [String: Value]
    var files: [String: String]
    var file_modes: [String: String]?
    var expected: [String: String?]?
    var expected_mode: [String: String]?
    var error: String?

    enum CodingKeys: String, CodingKey {
        case step, options, files, file_modes, expected, expected_mode, error
    }

    var testDescription: String { name }

    static func all() throws -> [Fixture] {
        let directory = Package.path("Tests/ProvisionFilesTests/Fixtures")
        return try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted().map { file in
            var fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/" + file)))
            fixture.name = String(file.dropLast(5))
            return fixture
        }
    }
}

@Suite struct FileStepFixtureTests {
    static let registry = PluginRegistry(fileSteps)

    @Test(arguments: try Fixture.all())
    func fixture(_ fixture: Fixture) throws {
        let temp = try TempRoot()
        try FileManager.default.createDirectory(atPath: temp.real("/var/lib"), withIntermediateDirectories: true)
        try temp.write("/etc/passwd", "root:x:0:0::/root:/bin/sh\nalex:x:1000:1000::/home/alex:/bin/sh\n")
        for (path, content) in fixture.files {
            try temp.write(path, content, mode: mode_t(FileMeta.parseMode(fixture.file_modes?[path] ?? "0644")!))
        }
        let original = try temp.fingerprint()
        // JSON is YAML, so the recipe is the fixture's options as they are.
        let recipeText = String(decoding: try JSONEncoder.sorted.encode(
            Value.map(["name": .string(fixture.name), "steps": .list([.map(["uses": .string(fixture.step), "with": .map(fixture.options)])])])),
            as: UTF8.self)
        let engine = try Engine(root: HostRoot(temp.path), registry: Self.registry)

        if let expectedError = fixture.error {
            do {
                let recipe = try Recipe.parse(recipeText, file: "\(fixture.name).json", registry: Self.registry)
                _ = try engine.apply(recipe)
                Issue.record("expected an error containing \(expectedError)")
            } catch let error as ProvisionError {
                #expect(error.description.contains(expectedError), "\(error)")
            }
            #expect(try temp.fingerprint(excludingHistory: false) == original, "a refused step changes nothing")
            return
        }

        let recipe = try Recipe.parse(recipeText, file: "\(fixture.name).json", registry: Self.registry)
        _ = try engine.apply(recipe)
        for (path, content) in fixture.expected ?? [:] {
            #expect(temp.read(path) == content, "\(path)")
        }
        for (path, mode) in fixture.expected_mode ?? [:] {
            var info = stat()
            stat(temp.real(path), &info)
            #expect(String(format: "%04o", info.st_mode & 0o7777) == mode, "\(path)")
        }
        let second = try engine.apply(recipe)
        #expect(second.changes.isEmpty, "a second apply changes nothing")
        if try engine.history().contains(where: { $0.action == .apply && !$0.files.isEmpty }) {
            _ = try engine.rollback()
        }
        #expect(try temp.fingerprint() == original, "rollback restores the input byte for byte")
    }
}
