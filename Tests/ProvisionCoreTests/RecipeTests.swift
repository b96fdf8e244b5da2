import Foundation
import ProvisionCore
import ProvisionPlugins
import Testing

@Suite struct RecipeTests {
    func parse(_ text: String) throws -> Recipe {
        try Recipe.parse(text, file: "r.yaml", registry: builtinRegistry)
    }

    func failure(_ text: String) -> ProvisionError? {
        do {
            _ = try parse(text)
            return nil
        } catch let error as ProvisionError {
            return error
        } catch {
            return nil
        }
    }

    @Test func parsesStepsVarsAndDefaults() throws {
        let recipe = try parse("""
            name: demo
            vars:
              ids: "10de:1b80"
              devices: [/dev/a, /dev/b]
            steps:
              - uses: file.content
                id: one
                with: {path: /etc/x, content: "ids=${ids}"}
              - uses: file.absent
                with: {path: /etc/y}
            """)
        #expect(recipe.name == "demo")
        #expect(recipe.steps.map(\.id) == ["one", "file.absent#2"])
        #expect(recipe.vars["devices"] == .list([.string("/dev/a"), .string("/dev/b")]))
        #expect(recipe.steps[0].location == SourceLocation(file: "r.yaml", line: 6, column: 5))
    }

    @Test(arguments: [
        ("name: x\nsteps:\n  - uses: file.content\n    with: {path: /a, content: [unclosed\n", 5, "malformed YAML"),
        ("name: x\nsteps:\n  - uses: nosuch.kind\n", 3, "unknown step kind \"nosuch.kind\""),
        ("name: x\nsteps: []\nextra: 1\n", 3, "unknown key \"extra\""),
        ("name: x\nsteps:\n  - uses: file.absent\n    with:\n      path: /a\n      colour: red\n", 6, "has no option \"colour\""),
        ("name: x\nsteps:\n  - uses: file.content\n    with:\n      path: /a\n      content: x\n      mode: rw-r--r--\n", 7, "octal mode"),
        ("name: x\nsteps:\n  - uses: file.content\n    with:\n      path: [/a]\n      content: x\n", 5, "must be a absolute path"),
        ("name: x\nsteps:\n  - uses: file.content\n    with: {path: /a, content: \"${nope}\"}\n", 4, "unknown variable \"nope\""),
        ("name: x\nsteps:\n  - uses: file.absent\n    with: {path: /a}\n    with: {path: /b}\n", 4, "duplicate key \"with\""),
        ("name: x\nsteps:\n  - uses: file.absent\n", 3, "needs option \"path\""),
        ("name: x\nsteps:\n  - {uses: file.absent, id: a, with: {path: /a}}\n  - {uses: file.absent, id: a, with: {path: /b}}\n", 4, "used twice"),
        ("name: x\nsteps:\n  - uses: file.absent\n    with: {path: \"/etc/../../x\"}\n", 4, "\"..\" component"),
        ("name: x\nsteps:\n  - uses: file.absent\n    when: ${rom}\n    with: {path: /a}\n", 4, "unknown variable \"rom\""),
        ("name: x\nsteps:\n  - uses: file.absent\n    when: [a]\n    with: {path: /a}\n", 4, "when must be a string"),
    ])
    func reportsFileLineColumn(text: String, line: Int, message: String) throws {
        let error = try #require(failure(text))
        #expect(error.location?.file == "r.yaml")
        #expect(error.location?.line == line, "\(error)")
        #expect(error.description.contains(message), "\(error)")
        #expect(error.description.hasPrefix("r.yaml:\(line):"))
    }

    /// `when:` skips a step whose condition is empty or false, and says so.
    @Test func whenSkipsAStepOnAnEmptyOrFalseCondition() throws {
        let recipe = try parse("""
            name: when
            vars: {rom: "", enabled: "true"}
            steps:
              - {id: skipped, uses: file.content, when: "${rom}", with: {path: /etc/a, content: a}}
              - {id: ran, uses: file.content, when: "${enabled}", with: {path: /etc/b, content: b}}
            """)
        let root = NSTemporaryDirectory() + "provision-when-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let planner = Planner(root: try HostRoot(root), registry: builtinRegistry)
        let plan = try planner.plan(recipe, overrides: [:])
        #expect(plan.steps.map(\.status) == [.skipped, .changed])
        #expect(plan.changes.map(\.path) == ["/etc/b"])
        #expect(plan.notices.map(\.message) == ["skipped: when ${rom} is empty"])
        let forced = try planner.plan(recipe, overrides: ["rom": "/roms/gpu.rom", "enabled": "false"])
        #expect(forced.steps.map(\.status) == [.changed, .skipped])
    }

    @Test func unknownCommandLineVariableIsRejected() throws {
        let recipe = try parse("name: x\nvars: {a: 1}\nsteps: []\n")
        #expect(throws: ProvisionError.self) { try Planner.resolveVars(recipe, overrides: ["b": "2"]) }
        #expect(try Planner.resolveVars(recipe, overrides: ["a": "2"])["a"] == .string("2"))
    }

    @Test func interpolationSplicesVarsAndFactsAndKeepsShellDollars() throws {
        let context = InterpolationContext(
            vars: ["ids": .string("10de:1b80"), "list": .list([.string("a"), .string("b")])],
            facts: .map(["cpu": .map(["vendor": .string("amd")])]))
        let at = SourceLocation(file: "r.yaml", line: 1, column: 1)
        #expect(try context.render("x=${ids} ${facts.cpu.vendor}_iommu=on $HOME $${literal}", at: at)
            == .string("x=10de:1b80 amd_iommu=on $HOME ${literal}"))
        #expect(try context.render("${list}", at: at) == .list([.string("a"), .string("b")]))
        #expect(throws: ProvisionError.self) { try context.render("a ${list}", at: at) }
        #expect(throws: ProvisionError.self) { try context.render("${facts.nope}", at: at) }
    }
}
