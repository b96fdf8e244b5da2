import Foundation
import ProvisionCore
import ProvisionDevices
import ProvisionTestSupport
import Testing

/// `facts.gpu` is a type: readers decode it, and a field that is missing or of the wrong type is an
/// error naming the step that exported it, never a default.
@Suite struct GPUFactsTests {
    /// Exports whatever `facts.gpu` it is given, as a broken or foreign plugin might.
    struct Exporter: StepPlugin {
        let kind = "test.export-gpu"
        let summary = "exports facts.gpu as given"
        let options: [OptionSpec] = [OptionSpec("gpu", .map, help: "the value")]
        func plan(_ step: StepContext) throws -> StepPlan {
            guard let gpu = try step.options.value("gpu") else { return StepPlan() }
            return StepPlan(exports: ["gpu": gpu])
        }
    }

    static let registry = PluginRegistry([Exporter(), BindAddress(), GPUSelect()])

    func plan(_ gpu: String, root: TempRoot) throws -> Plan {
        let recipe = """
            name: facts
            steps:
              - id: export
                uses: test.export-gpu
                with:
                  gpu: \(gpu)
              - id: bind
                uses: vfio.bind-address
            """
        return try Engine(root: HostRoot(root.path), registry: Self.registry)
            .plan(try Recipe.parse(recipe, file: "facts.yaml", registry: Self.registry))
    }

    @Test func aMissingFieldNamesTheExportingStep() throws {
        let root = try TempRoot()
        let error = try #require(throws: ProvisionError.self) { try plan("{address: '0000:01:00.0', bind: address}", root: root) }
        #expect(error.description.contains("facts.gpu exported by step export (test.export-gpu) is not a GPUFacts: field \"addresses\" is missing"), "\(error)")
        #expect(error.description.hasPrefix("facts.yaml:"), "\(error)")
    }

    @Test func aFieldOfTheWrongTypeNamesTheExportingStep() throws {
        let root = try TempRoot(copying: "arch")
        let exported = try Engine(root: HostRoot(root.path), registry: Self.registry)
            .plan(try Recipe.parse("name: g\nsteps:\n  - uses: gpu.select\n", file: "g.yaml", registry: Self.registry)).exports["gpu"]
        guard case .map(var fields)? = exported else { Issue.record("gpu.select exported \(String(describing: exported))"); return }
        #expect(try Value.map(fields).decode(GPUFacts.self).ids == ["10de:1b80", "10de:10f0"])
        fields["ids"] = .string("10de:1b80")
        let text = String(decoding: try JSONEncoder().encode(Value.map(fields)), as: UTF8.self)
        let error = try #require(throws: ProvisionError.self) { try plan(text, root: root) }
        #expect(error.description.contains("facts.gpu exported by step export (test.export-gpu) is not a GPUFacts: field \"ids\" is not a list"), "\(error)")
    }
}
