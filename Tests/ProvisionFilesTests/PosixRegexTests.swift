import Foundation
import ProvisionCore
@testable import ProvisionFiles
import ProvisionTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The patterns of file.line and file.block: POSIX extended syntax judged against glibc's own
/// `regcomp`/`regexec` (the engine of grep -E), and matching that stays linear where both
/// Swift's Regex and glibc blow up.
@Suite struct PosixRegexTests {
    /// glibc's answer, in C.UTF-8 as the tool would run: nil when it refuses the pattern.
    static func glibc(_ pattern: String, _ line: String) -> Bool? {
        let utf8 = newlocale(1 << 0 /* LC_CTYPE_MASK */, "C.UTF-8", nil)
        let previous = utf8.map { uselocale($0) }
        defer {
            if let previous { uselocale(previous) }
            if let utf8 { freelocale(utf8) }
        }
        var compiled = regex_t()
        guard regcomp(&compiled, pattern, REG_EXTENDED | REG_NOSUB) == 0 else { return nil }
        defer { regfree(&compiled) }
        return regexec(&compiled, line, 0, nil, 0) == 0
    }

    static func ours(_ pattern: String, _ line: String) throws -> Bool {
        let regex = try PosixRegex(pattern)
        var steps = Int.max
        return try #require(regex.contains(line, scratch: regex.makeScratch(), steps: &steps) as Bool?)
    }

    static let patterns = [
        "^a=", #"^\[section\]"#, "^options vfio", "^GRUB_CMDLINE_LINUX(_DEFAULT)?=", #"\.conf$"#, "a|b", "(ab)+c", "x{2,3}", "^x{2}$",
        "[[:digit:]]+", "[^a-c]", "^[^a-c]*$", #"\<word\>"#, #"a\b"#, #"\Bor"#, "^$", "()", "(|a)b", "a**", "a{,2}b", "[]a]", "[a-]",
        "a.c", #"\w+=\S"#, "[[:space:]]#", "x?y+z*", "(a|ab)(c|bcd)(d*)", "a)", "^(a+)+$", "[[:upper:]][[:lower:]]+",
        "[[:alpha:]]", "[[:punct:]]", #"é"#, "^.$", "[éü]", #"\$HOME"#, #"[\]"#, "[[.-.]]", "(a|)+b", "((a*)*)*c", "^#?[[:blank:]]*Port ",
    ]
    static let lines = [
        "", "a", "a=1", "[section]", "ab", "abc", "abcd", "xx", "xxx", "x", "word", "a word here", "sword", "cord",
        #"GRUB_CMDLINE_LINUX_DEFAULT="quiet""#, "foo.conf", "key= value", "key=value", "  # comment", "ü=1", "é", "aé", "tab\there",
        "Hello", "HELLO", "a)", "aab", "b", "yz", "$HOME/x", #"back\slash"#, "a-b", "#Port 22", "  Port 2222", "aaaaaaaaaaaaaaaaaaab",
    ]

    @Test(arguments: patterns)
    func agreesWithGlibc(pattern: String) throws {
        for line in Self.lines {
            let expected = try #require(Self.glibc(pattern, line) as Bool?, "glibc refuses \(pattern)")
            #expect(try Self.ours(pattern, line) == expected, "\(pattern) on \(line)")
        }
    }

    @Test(arguments: ["([", "a{", "a{1", "a{x}", "a{1,2", "a{ 1}", "*a", "x|*", "(*a)", "^*", "{1}", "a{2,1}", "[z-a]", "[[:foo:]]", "\\", "[a", "(a", "[à-ÿ]", "[a-é]"])
    func refusesWhatGlibcRefuses(pattern: String) {
        #expect(Self.glibc(pattern, "") == nil, "glibc accepts \(pattern)")
        #expect(throws: PosixRegex.SyntaxError.self, "\(pattern)") { try PosixRegex(pattern) }
    }

    /// Back-references make every engine exponential; escapes that mean something else elsewhere
    /// (`\d` is a plain d to POSIX) would silently match the wrong lines; huge expansions are refused.
    @Test(arguments: [
        (#"(a)\1"#, "back-references (\\1) are not supported"), (#"^(.*)\9$"#, "back-references (\\9)"),
        (#"\d+"#, "\\d is not part of POSIX extended regular expressions (use [0-9])"), (#"\t"#, "\\t is not part of"),
        ("a{256}", "repetition count 256 is above 255"), ("((a{100}){100})", "expands to more than 2000 states"),
        ("(a{255}){255}", "expands to more than 2000 states"), (String(repeating: "a", count: 1001), "longer than 1000 bytes"),
        (String(repeating: "(", count: 101) + String(repeating: ")", count: 101), "groups nested deeper than 100"),
        ("[[=ab=]]", "[=ab=] is not supported"),
    ])
    func refusesWhatCannotBeMatchedSafely(pattern: String, message: String) {
        let error = #expect(throws: PosixRegex.SyntaxError.self) { try PosixRegex(pattern) }
        #expect(error?.message.contains(message) == true, "\(String(describing: error))")
    }

    /// Patterns that make backtracking engines (and glibc) take minutes, on long lines: linear here.
    @Test(arguments: [
        ("^(a+)+$", String(repeating: "a", count: 50_000) + "b", false),
        ("(a|b)*a(a|b){20}c", String(repeating: "ab", count: 25_000), false),
        ("(.*a){20}c", String(repeating: "a", count: 50_000), false),
        ("(x+x+)+y", String(repeating: "x", count: 50_000) + "y", true),
        ("((a*)*)*b", String(repeating: "a", count: 50_000), false),
    ])
    func hostilePatternsStayLinear(pattern: String, line: String, expected: Bool) throws {
        let start = ContinuousClock.now
        #expect(try Self.ours(pattern, line) == expected)
        #expect(ContinuousClock.now - start < .seconds(2), "\(pattern)")
    }

    /// Work past the budget stops the search instead of running on.
    @Test func theBudgetStopsASearch() throws {
        let regex = try PosixRegex("(.*a){20}c")
        var steps = 1000
        #expect(regex.contains(String(repeating: "a", count: 10_000), scratch: regex.makeScratch(), steps: &steps) == nil)
    }

    /// The brief's case: `^(a+)+$` on a 10,000-line file through file.line (apply, re-apply, rollback),
    /// well under 5 s and with the right line replaced.
    @Test func nestedQuantifierOnATenThousandLineFile() throws {
        var lines = Array(repeating: String(repeating: "a", count: 30) + "b", count: 10_000)
        lines[4999] = "aaaaa"
        let input = lines.joined(separator: "\n") + "\n"
        lines[4999] = "aaa"
        let json = try JSONSerialization.data(withJSONObject: [
            "step": "file.line",
            "options": ["path": "/etc/hostile.conf", "match": "^(a+)+$", "line": "aaa"],
            "files": ["/etc/hostile.conf": input],
            "expected": ["/etc/hostile.conf": lines.joined(separator: "\n") + "\n"],
        ])
        var fixture = try JSONDecoder().decode(StepFixture.self, from: json)
        fixture.name = "line-nested-quantifier-10000-lines"
        let start = ContinuousClock.now
        try fixture.check(registry: PluginRegistry(fileSteps))
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    /// A refused pattern names the option's line and column in the recipe.
    @Test func backReferenceIsRefusedAtTheOption() throws {
        let temp = try TempRoot()
        try temp.write("/etc/a.conf", "x=1\n")
        let recipe = try Recipe.parse(
            "name: r\nsteps:\n  - uses: file.line\n    with:\n      path: /etc/a.conf\n      line: x=2\n      match: '^(x)=\\1'\n",
            file: "r.yaml", registry: PluginRegistry(fileSteps))
        let engine = try Engine(root: HostRoot(temp.path), registry: PluginRegistry(fileSteps))
        engine.runHandlers = false
        let error = try #require(throws: ProvisionError.self) { try engine.apply(recipe) }
        #expect(error.description.hasPrefix("r.yaml:7:14: option \"match\" is not a valid regular expression (POSIX extended, as grep -E): "
            + "back-references (\\1) are not supported"), "\(error)")
        #expect(temp.read("/etc/a.conf") == "x=1\n")
    }
}
