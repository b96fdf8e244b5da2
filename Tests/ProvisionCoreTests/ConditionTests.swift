import Foundation
import ProvisionCore
import Testing

/// `when:`'s grammar: what it reads, what it refuses at load (with the column), and its values.
@Suite struct ConditionTests {
    let here = SourceLocation(file: "r.yaml", line: 7, column: 11)
    let context = InterpolationContext(
        vars: ["flavour": .string("desktop"), "flag": .string("false"), "empty": .string(""), "names": .list([.string("a"), .string("b")])],
        facts: .map(["os": .map(["id": .string("arch")]), "kernels": .list([.string("6.8")])]))

    func holds(_ text: String) throws -> Bool {
        let condition = try Condition.parse(text, at: here, vars: ["flavour", "flag", "empty", "names"])
        var values: [String: String] = [:]
        return try condition.evaluate(context, values: &values)
    }

    @Test(arguments: [
        ("${facts.os.id} == arch", true), ("${facts.os.id} == debian", false), ("${facts.os.id} != debian", true),
        ("${facts.os.id} in [arch, manjaro]", true), ("${facts.os.id} in [debian]", false), ("${facts.os.id} not in [debian]", true),
        ("${flavour} in ['desktop', \"cloud image\"]", true), ("a in ${names}", true), ("c in ${names}", false),
        ("${flag}", false), ("not ${flag}", true), ("${empty}", false), ("${flavour}", true), ("${names}", true),
        ("${flag} or ${flavour} == desktop", true), ("${flavour} == desktop and ${facts.os.id} == debian", false),
        ("not (${flag} or ${empty})", true), ("${vars.flavour} == desktop", true), ("6.8 in ${facts.kernels}", true),
    ])
    func evaluates(_ text: String, _ expected: Bool) throws {
        #expect(try holds(text) == expected, "\(text)")
    }

    @Test(arguments: [
        ("${facts.os.id} = debian", 26, "unexpected \"=\""), ("debian", 11, "\"debian\" alone is not a condition"),
        ("", 11, "the condition is empty"), ("${facts.os.id} ==", 28, "expected a value, found end"),
        ("${a} == b", 11, "unknown variable \"a\""), ("(${flag}", 19, "expected \")\", found end"),
        ("${flag} ${flavour}", 19, "expected ==, != or in after ${flag}"), ("${flavour} in [a b]", 28, "expected \",\" or \"]\""),
        ("'open", 11, "unclosed '"), ("${flag} && ${flavour}", 19, "unexpected \"&\""), ("${1x}", 11, "is not a variable or fact reference"),
    ])
    func refusesAtLoadWithTheColumn(_ text: String, _ column: Int, _ message: String) {
        do {
            _ = try Condition.parse(text, at: here, vars: ["flavour", "flag"])
            Issue.record("\(text) parsed")
        } catch let error as ProvisionError {
            #expect(error.location == SourceLocation(file: "r.yaml", line: 7, column: column), "\(text): \(error)")
            #expect(error.message.contains(message), "\(text): \(error.message)")
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func aQuotedScalarCountsItsQuote() throws {
        do {
            _ = try Condition.parse("x = y", at: here, quoted: true, vars: [])
        } catch let error as ProvisionError {
            #expect(error.location?.column == 14)
        }
    }

    @Test func listsAndMapsAreNotComparedAndMissingFactsAreErrors() throws {
        #expect(throws: ProvisionError.self) { try holds("${names} == a") }
        #expect(throws: ProvisionError.self) { try holds("${facts.os.nope} == a") }
        #expect(throws: ProvisionError.self) { try holds("a in ${flavour}") }
    }
}
