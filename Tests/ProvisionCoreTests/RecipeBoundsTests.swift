import Foundation
@testable import ProvisionCore
import ProvisionPlugins
import ProvisionTestSupport
import Testing
import Yams

#if canImport(Glibc)
import Glibc
#endif

/// Hostile recipes: anchors and aliases (billion laughs), huge or endless files, deep nesting, too
/// many values. Each gives an error with the file and line, quickly and in little memory.
@Suite struct RecipeBoundsTests {
    func refusal(_ text: String) -> ProvisionError? {
        do {
            _ = try Recipe.parse(text, file: "recipe.yaml", registry: builtinRegistry)
            return nil
        } catch {
            return error as? ProvisionError
        }
    }

    /// Nine levels of ten aliases each: 10^9 strings once expanded. Refused from the text, at the
    /// first anchor, before Yams composes anything.
    @Test func billionLaughsIsRefusedBeforeYams() throws {
        var text = "name: lol\nvars:\n  l0: &l0 lol\n"
        for level in 1...9 {
            text += "  l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        text += "steps: []\n"
        let start = ContinuousClock.now
        let error = try #require(refusal(text))
        #expect(ContinuousClock.now - start < .seconds(1))
        #expect(error.description.hasPrefix("recipe.yaml:3:7: YAML anchors and aliases are not allowed in recipes (found anchor &l0"), "\(error)")
    }

    /// Aliases as mapping keys blew up inside Yams' composer (it hashes keys).
    @Test func aliasAsAKeyIsRefused() throws {
        let error = try #require(refusal("name: x\nvars:\n  a: &a [1, 2]\n  ? *a\n  : 1\nsteps: []\n"))
        #expect(error.description.hasPrefix("recipe.yaml:3:6: YAML anchors and aliases"), "\(error)")
        let keyOnly = try #require(refusal("name: x\nsteps: []\nvars: {*a : 1}\n"))
        #expect(keyOnly.description.hasPrefix("recipe.yaml:3:8: YAML anchors and aliases are not allowed in recipes (found alias *a"), "\(keyOnly)")
    }

    /// Every place libyaml starts a node, and so an anchor or alias, with the line and column.
    @Test(arguments: [
        ("name: x\nsteps:\n- &s {uses: file.absent, with: {path: /a}}\n", 3, 3),
        ("name: x\nsteps: [{uses: file.absent, with: {path: *p}}]\n", 2, 42),
        ("name: x\nsteps: [&s {uses: file.absent, with: {path: /a}}]\n", 2, 9),
        ("name: x\nsteps: []\nvars: {a: !!str &x b}\n", 3, 17),
        ("name: x\nsteps: []\nvars:\n  ? &k a\n  : b\n", 4, 5),
        ("name: x\nsteps: []\nvars:\n  &k a: b\n", 4, 3),
        ("name: x\nsteps: []\nvars:\n  a:\n    *x\n", 5, 5),
        ("name: x\nsteps: []\nvars: {a: [b,*x]}\n", 3, 14),
        ("name: x\nsteps: []\nvars: {\"a\":*x}\n", 3, 12),
        ("--- &doc\nname: x\nsteps: []\n", 1, 5),
        // The body of a block scalar is what is more indented than the block holding it: here the
        // line is not, so *x starts a token of its own.
        ("name: x\nsteps: []\nvars:\n  - a: |\n    *x\n", 5, 5),
    ])
    func anchorsAndAliasesAreFoundWhereLibyamlStartsANode(text: String, line: Int, column: Int) throws {
        let error = try #require(refusal(text))
        #expect(error.description.hasPrefix("recipe.yaml:\(line):\(column): YAML anchors and aliases are not allowed in recipes"), "\(error)")
    }

    /// `&` and `*` where YAML says they are text: inside plain scalars, quoted scalars over several
    /// lines, comments, tags, block scalar bodies and plain scalar continuation lines.
    @Test func ampersandsAndStarsInTextStillWork() throws {
        let recipe = try Recipe.parse(
            """
            # &comment *comment
            name: x
            vars:
              url: a?x=1&y=2        # a query string, *not* an alias
              glob: "*.conf"
              path: /etc/*
              quoted: 'it''s *so* &x'
              double: "a \\" *b
                *c &d"
              single: 'first
                *second &third'
              block: |
                *literal &lines
                  *deeper
              folded: >-
                &folded *text
              continued: plain
                *continued &line
              tagged: !!str a&b*c
              flow: [a&b, c*d, {e: f*}]
              amp: AT&T
            steps: []
            """, file: "recipe.yaml", registry: builtinRegistry)
        #expect(recipe.vars["url"] == .string("a?x=1&y=2"))
        #expect(recipe.vars["glob"] == .string("*.conf"))
        #expect(recipe.vars["path"] == .string("/etc/*"))
        #expect(recipe.vars["quoted"] == .string("it's *so* &x"))
        #expect(recipe.vars["double"] == .string("a \" *b *c &d"))
        #expect(recipe.vars["single"] == .string("first *second &third"))
        #expect(recipe.vars["block"] == .string("*literal &lines\n  *deeper\n"))
        #expect(recipe.vars["folded"] == .string("&folded *text"))
        #expect(recipe.vars["continued"] == .string("plain *continued &line"))
        #expect(recipe.vars["tagged"] == .string("a&b*c"))
        #expect(recipe.vars["flow"] == .list([.string("a&b"), .string("c*d"), .map(["e": .string("f*")])]))
        #expect(recipe.vars["amp"] == .string("AT&T"))
    }

    /// A value that starts with * is an alias to YAML: refused, with the way out in the message.
    @Test func unquotedLeadingStarIsAnAlias() throws {
        let error = try #require(refusal("name: x\nsteps: []\nvars:\n  glob: *.conf\n"))
        #expect(error.description == "recipe.yaml:4:9: YAML anchors and aliases are not allowed in recipes (found alias *: "
            + "write the value out in full; quote a string that starts with *)")
    }

    /// The second line of defence: had an alias slipped past the scan, the walk over Yams' nodes
    /// sees the anchored node twice.
    @Test func theWalkCatchesAnExpandedAlias() throws {
        let parser = RecipeParser(file: "recipe.yaml")
        let text = "name: x\nsteps: &s [{uses: file.absent, with: {path: /a}}]\nvars: {a: *s}\n"
        let error = try #require(throws: ProvisionError.self) { try parser.parse(text, scanFirst: false) }
        #expect(error.description.hasPrefix("recipe.yaml:2:8: YAML anchors and aliases are not allowed in recipes"), "\(error)")
        // Billion laughs without the scan: the walk stops at the first repeat, long before 10^9.
        var laughs = "l0: &l0 [lol]\n"
        for level in 1...9 { laughs += "l\(level): &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ") + "]\n" }
        let start = ContinuousClock.now
        #expect(throws: ProvisionError.self) { try parser.parse(laughs, scanFirst: false) }
        #expect(ContinuousClock.now - start < .seconds(2))
    }

    @Test func moreThanAHundredThousandValuesAreRefused() throws {
        let text = "name: x\nsteps: []\nvars:\n  big: [" + Array(repeating: "x", count: RecipeParser.maxNodes).joined(separator: ",") + "]\n"
        let error = try #require(refusal(text))
        #expect(error.description.hasPrefix("recipe.yaml:4:"), "\(error)")
        #expect(error.description.contains("the recipe has more than 100000 values"))
    }

    /// libyaml stops at 1,000 levels: a clean error with the line, not a crash.
    @Test func twentyThousandLevelsOfNestingGiveAnErrorWithALine() throws {
        let text = "name: x\nsteps: []\nvars:\n  deep: " + String(repeating: "[", count: 20_000) + String(repeating: "]", count: 20_000) + "\n"
        let error = try #require(refusal(text))
        #expect(error.description.hasPrefix("recipe.yaml:4:"), "\(error)")
        #expect(error.description.hasSuffix("malformed YAML: nested deeper than 1000 levels"), "\(error)")
    }

    @Test func aRecipeOverOneMebibyteIsRefusedWithItsSize() throws {
        let directory = NSTemporaryDirectory() + "provision-recipe-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/big.yaml"
        try Data(("name: x\nsteps: []\n# " + String(repeating: "x", count: Recipe.maxBytes)).utf8).write(to: URL(fileURLWithPath: path))
        let error = try #require(throws: ProvisionError.self) { try Recipe.load(path: path, registry: builtinRegistry) }
        #expect(error.description == "recipe \(path) is 1048596 bytes, more than the limit of 1048576 (1 MiB)")
    }

    /// A FIFO would block a plain read forever (nobody writes to it): refused at once.
    @Test func aFIFOIsRefusedWithoutBlocking() throws {
        let directory = NSTemporaryDirectory() + "provision-recipe-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/fifo.yaml"
        #expect(mkfifo(path, 0o600) == 0)
        let start = ContinuousClock.now
        let error = try #require(throws: ProvisionError.self) { try Recipe.load(path: path, registry: builtinRegistry) }
        #expect(error.description == "recipe \(path) is not a regular file")
        #expect(ContinuousClock.now - start < .seconds(1))
        let missing = try #require(throws: ProvisionError.self) { try Recipe.load(path: directory + "/none.yaml", registry: builtinRegistry) }
        #expect(missing.kind == .notFound)
    }
}

/// The scan against libyaml itself: random one-character edits of real recipes; wherever Yams
/// composes the result, the scan finds an anchor or alias exactly when Yams' tree has one.
@Suite struct YAMLAnchorScanAgainstLibyamlTests {
    static let corpus = [
        try! String(contentsOfFile: Package.path("recipes/vfio-passthrough.yaml"), encoding: .utf8),
        """
        name: corpus
        vars:
          a: plain text with & and * inside
          b: "double *quoted* &x
            over lines"
          c: 'single ''quoted'' *x'
          d: |
            block *x
             &y more
          e: >-
            folded
          f: [x, {y: z}, "w", 'v']
          g:
            - one
            - two: three
              four: !!str five
          h: continued
            plain line
          ? complex
          : value
        steps: []  # comment &x
        """,
        "%YAML 1.1\r\n--- !!map\r\na: b\r\nc:\r\n- d\r\n- 'e\r\n  f'\r\n- \"g\\\r\n  h\"\r\n? [x, y]\r\n: {z: 1, ? w : !t v}\r\n"
            + "i: |2-\r\n   j\r\n  k\r\nl: >+\r\n\r\n  m\r\n\r\nn: [o, p: q, {r: s}, [t]]\r\n...\r\n",
    ]
    static let insertions = ["&a ", "*a", "&", "*", "'", "\"", "|", ">", "#", " ", "\n", ":", "- ", "? ", "[", "]", "{", "}", ",", "!t ", "\t", "--- "]

    /// Whether Yams' tree for `text` holds an anchor (aliases resolve to anchored nodes); nil
    /// when libyaml refuses the text.
    static func yamsSeesAnAnchor(_ text: String) -> Bool? {
        guard let parser = try? Parser(yaml: text), let root = try? parser.singleRoot() else { return nil }
        func anchored(_ node: Node) -> Bool {
            if node.anchor != nil { return true }
            switch node {
            case .scalar: return false
            case .sequence(let sequence): return sequence.contains(where: anchored)
            case .mapping(let mapping): return mapping.contains { anchored($0.key) || anchored($0.value) }
            case .alias: return true
            }
        }
        return withExtendedLifetime(parser) { anchored(root) }
    }

    @Test(arguments: 0..<corpus.count)
    func scanAgreesWithLibyaml(document: Int) {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ UInt64(document)
        func random(_ bound: Int) -> Int {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((seed >> 33) % UInt64(bound))
        }
        let base = Array(Self.corpus[document].unicodeScalars)
        var compared = 0
        for _ in 0..<800 {
            var text = base
            var insertion = ""
            for _ in 0..<(1 + random(3)) {
                let piece = Self.insertions[random(Self.insertions.count)]
                insertion += piece
                text.insert(contentsOf: piece.unicodeScalars, at: random(text.count + 1))
            }
            let yaml = String(String.UnicodeScalarView(text))
            guard let expected = Self.yamsSeesAnAnchor(yaml) else { continue }
            compared += 1
            let found = YAMLAnchorScan.firstAnchorOrAlias(in: yaml)
            #expect((found != nil) == expected, "inserted \(insertion.debugDescription): \(String(describing: found))\n\(yaml)")
        }
        #expect(compared > 100)
    }
}
