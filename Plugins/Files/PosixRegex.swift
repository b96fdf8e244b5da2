import Foundation

/// A POSIX extended regular expression, the dialect of `grep -E` and `sed -E`, matched without
/// backtracking: the pattern becomes a Thompson automaton that is run over a line as a set of
/// states, so the time is at most (line length) x (program size) whatever the pattern. Neither
/// Swift's `Regex` nor glibc's `regexec` promises that: `^(a+)+$` makes the first backtrack for
/// minutes, `(a|b)*a(a|b){20}c` makes the second take minutes and half a gigabyte.
///
/// Only whether a line contains a match is asked, so POSIX's leftmost-longest rule never comes up.
/// Refused, with the offset of the problem: back-references (`\1`…`\9`, exponential in any engine),
/// escapes that mean something else in other dialects (`\d`, `\t`, `\n`…: POSIX reads `\d` as a
/// plain d), repetition counts above 255, and patterns that expand to more than 2,000 states or
/// are longer than 1,000 bytes. GNU's `\w \W \s \S \b \B \< \> \` \'` are understood, as grep
/// understands them. Character classes are those of C.UTF-8: ASCII, plus Unicode letters, digits,
/// cases and spaces above it.
struct PosixRegex: Sendable {
    struct SyntaxError: Error, Sendable {
        var message: String
        /// Offset in Unicode scalars into the pattern, from 0.
        var offset: Int
    }

    static let maxPatternBytes = 1000
    static let maxCount = 255
    static let maxProgram = 2000
    static let maxGroupDepth = 100

    enum Assertion: Int32 { case lineStart, lineEnd, wordBoundary, notWordBoundary, wordStart, wordEnd }

    enum Op: UInt8 { case char, set, any, split, jump, assert, match }

    struct Inst: Sendable {
        var op: Op
        var a: Int32 = 0
        var b: Int32 = 0
    }

    let pattern: String
    let program: [Inst]
    let sets: [ScalarSet]
    /// Each set's ASCII bitmap and negation (low, high, negated), for the matching loop.
    let asciiSets: [UInt64]
    /// Every branch starts with `^`: a match can only begin at the start of the line.
    let anchored: Bool

    init(_ pattern: String) throws {
        guard pattern.utf8.count <= Self.maxPatternBytes else {
            throw SyntaxError(message: "longer than \(Self.maxPatternBytes) bytes", offset: 0)
        }
        var parser = Parser(Array(pattern.unicodeScalars))
        let tree = try parser.parse()
        var compiler = Compiler()
        compiler.emit(tree)
        compiler.program.append(Inst(op: .match))
        self.pattern = pattern
        program = compiler.program
        sets = compiler.sets
        asciiSets = sets.flatMap { [$0.low, $0.high, $0.negated ? 1 : 0] }
        anchored = tree.anchored
    }

    // MARK: - Matching

    /// Scratch space for one matcher, reused across lines: two state lists (sparse sets: O(1)
    /// insert, membership and clear) and the closure stack, as raw memory so the loop below pays
    /// neither bounds checks nor reference counting.
    final class Scratch {
        let size: Int
        let memory: UnsafeMutablePointer<Int32>
        var chars: [UInt32] = []

        init(size: Int) {
            self.size = size
            // Two lists of two arrays each, then the stack: it never holds more than size + 1 entries.
            memory = .allocate(capacity: 6 * size + 2)
            memory.initialize(repeating: 0, count: 6 * size + 2)
        }

        deinit { memory.deallocate() }
    }

    func makeScratch() -> Scratch { Scratch(size: program.count) }

    /// Whether `line` contains a match. `steps` is decreased by the work done (states visited);
    /// the search stops and returns nil when it would drop below zero.
    func contains(_ line: String, scratch: Scratch, steps: inout Int) -> Bool? {
        scratch.chars.removeAll(keepingCapacity: true)
        for scalar in line.unicodeScalars { scratch.chars.append(scalar.value) }
        let size = scratch.size
        var current = StateList(dense: scratch.memory, sparse: scratch.memory + size)
        var next = StateList(dense: scratch.memory + 2 * size, sparse: scratch.memory + 3 * size)
        let stack = scratch.memory + 4 * size
        let anchored = anchored
        return program.withUnsafeBufferPointer { program in
            asciiSets.withUnsafeBufferPointer { asciiSets in
                scratch.chars.withUnsafeBufferPointer { chars in
                    let count = chars.count
                    var index = 0
                    while true {
                        if index == 0 || !anchored {
                            if Self.addThread(0, to: &current, at: index, program, chars, stack) { return true }
                        }
                        if current.count == 0 && anchored { return false }
                        if index == count { return false }
                        steps -= current.count + 1
                        if steps < 0 { return nil }
                        let char = chars[index]
                        next.count = 0
                        for slot in 0..<current.count {
                            let pc = Int(current.dense[slot])
                            let inst = program[pc]
                            let consumes: Bool
                            switch inst.op {
                            case .char: consumes = inst.a == Int32(bitPattern: char)
                            case .any: consumes = char != 0
                            case .set:
                                if char < 128 {
                                    let bits = asciiSets[3 * Int(inst.a) + (char < 64 ? 0 : 1)]
                                    consumes = (bits & (1 << UInt64(char & 63)) != 0) != (asciiSets[3 * Int(inst.a) + 2] != 0)
                                } else {
                                    consumes = sets[Int(inst.a)].contains(char)
                                }
                            default: consumes = false
                            }
                            if consumes && Self.addThread(Int32(pc + 1), to: &next, at: index + 1, program, chars, stack) { return true }
                        }
                        swap(&current, &next)
                        index += 1
                    }
                }
            }
        }
    }

    /// A set of program counters over scratch memory.
    struct StateList {
        let dense: UnsafeMutablePointer<Int32>
        let sparse: UnsafeMutablePointer<Int32>
        var count = 0

        /// False when `pc` was there already.
        mutating func insert(_ pc: Int32) -> Bool {
            let slot = Int(sparse[Int(pc)])
            if slot < count && dense[slot] == pc { return false }
            sparse[Int(pc)] = Int32(count)
            dense[count] = pc
            count += 1
            return true
        }
    }

    /// Adds `pc` and every state reachable from it without consuming a character; true when one of
    /// them is the match.
    private static func addThread(
        _ pc: Int32, to list: inout StateList, at index: Int, _ program: UnsafeBufferPointer<Inst>, _ chars: UnsafeBufferPointer<UInt32>,
        _ stack: UnsafeMutablePointer<Int32>
    ) -> Bool {
        var depth = 1
        stack[0] = pc
        while depth > 0 {
            depth -= 1
            let pc = stack[depth]
            guard list.insert(pc) else { continue }
            let inst = program[Int(pc)]
            switch inst.op {
            case .match: return true
            case .jump:
                stack[depth] = inst.a
                depth += 1
            case .split:
                stack[depth] = inst.b
                stack[depth + 1] = inst.a
                depth += 2
            case .assert:
                if holds(Assertion(rawValue: inst.a)!, at: index, chars) {
                    stack[depth] = pc + 1
                    depth += 1
                }
            case .char, .any, .set: break
            }
        }
        return false
    }

    private static func holds(_ assertion: Assertion, at index: Int, _ chars: UnsafeBufferPointer<UInt32>) -> Bool {
        switch assertion {
        case .lineStart: return index == 0
        case .lineEnd: return index == chars.count
        default:
            let before = index > 0 && ScalarSet.isWord(chars[index - 1])
            let after = index < chars.count && ScalarSet.isWord(chars[index])
            switch assertion {
            case .wordBoundary: return before != after
            case .notWordBoundary: return before == after
            case .wordStart: return !before && after
            default: return before && !after
            }
        }
    }

    // MARK: - Character sets

    /// A bracket expression (or `\w`, `\s`…): ASCII as a bitmap, anything above as ranges and classes.
    struct ScalarSet: Sendable {
        var low: UInt64 = 0
        var high: UInt64 = 0
        var ranges: [ClosedRange<UInt32>] = []
        var classes: [CharClass] = []
        var negated = false

        func contains(_ char: UInt32) -> Bool {
            let found: Bool
            if char < 64 {
                found = low & (1 << UInt64(char)) != 0
            } else if char < 128 {
                found = high & (1 << UInt64(char - 64)) != 0
            } else {
                found = ranges.contains { $0.contains(char) } || classes.contains { $0.containsNonASCII(char) }
            }
            return found != negated
        }

        mutating func insert(_ range: ClosedRange<UInt32>) {
            if range.lowerBound < 128 {
                for char in range.lowerBound...min(range.upperBound, 127) { insertASCII(char) }
            }
            if range.upperBound >= 128 { ranges.append(max(range.lowerBound, 128)...range.upperBound) }
        }

        mutating func insert(_ charClass: CharClass) {
            for char in UInt32(0)..<128 where charClass.containsASCII(UInt8(char)) { insertASCII(char) }
            classes.append(charClass)
        }

        private mutating func insertASCII(_ char: UInt32) {
            if char < 64 { low |= 1 << UInt64(char) } else { high |= 1 << UInt64(char - 64) }
        }

        /// A word character for `\b \< \>`: [[:alnum:]_].
        static func isWord(_ char: UInt32) -> Bool {
            if char < 128 {
                return (0x30...0x39).contains(char) || (0x41...0x5A).contains(char) || (0x61...0x7A).contains(char) || char == 0x5F
            }
            return CharClass.alnum.containsNonASCII(char)
        }
    }

    enum CharClass: String, Sendable, CaseIterable {
        case alpha, digit, alnum, upper, lower, space, blank, punct, print, graph, cntrl, xdigit

        func containsASCII(_ byte: UInt8) -> Bool {
            let c = Character(Unicode.Scalar(byte))
            switch self {
            case .alpha: return c.isASCII && c.isLetter
            case .digit: return (0x30...0x39).contains(byte)
            case .alnum: return CharClass.alpha.containsASCII(byte) || CharClass.digit.containsASCII(byte)
            case .upper: return (0x41...0x5A).contains(byte)
            case .lower: return (0x61...0x7A).contains(byte)
            case .space: return byte == 0x20 || (0x09...0x0D).contains(byte)
            case .blank: return byte == 0x20 || byte == 0x09
            case .punct: return (0x21...0x7E).contains(byte) && !CharClass.alnum.containsASCII(byte)
            case .print: return (0x20...0x7E).contains(byte)
            case .graph: return (0x21...0x7E).contains(byte)
            case .cntrl: return byte < 0x20 || byte == 0x7F
            case .xdigit: return CharClass.digit.containsASCII(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
            }
        }

        func containsNonASCII(_ char: UInt32) -> Bool {
            guard let scalar = Unicode.Scalar(char) else { return false }
            let properties = scalar.properties
            switch self {
            case .alpha: return properties.isAlphabetic
            case .alnum: return properties.isAlphabetic || properties.generalCategory == .decimalNumber
            case .upper: return properties.isUppercase
            case .lower: return properties.isLowercase
            case .space: return properties.isWhitespace
            case .blank: return properties.generalCategory == .spaceSeparator
            case .punct: return [.connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
                                 .finalPunctuation, .otherPunctuation, .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol]
                    .contains(properties.generalCategory)
            case .print, .graph:
                let invisible: [Unicode.GeneralCategory] = [.control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator]
                return !invisible.contains(properties.generalCategory) && (self == .print || !properties.isWhitespace)
            case .cntrl: return properties.generalCategory == .control
            case .digit, .xdigit: return false
            }
        }
    }

    // MARK: - Parsing

    indirect enum Node {
        case empty
        case char(UInt32)
        case any
        case set(ScalarSet)
        case assert(Assertion)
        case concat([Node])
        case alternation([Node])
        case repetition(Node, min: Int, max: Int?)

        /// Instructions `Compiler.emit` produces for this node.
        var size: Int {
            switch self {
            case .empty: return 0
            case .char, .any, .set, .assert: return 1
            case .concat(let nodes): return nodes.reduce(0) { $0 + $1.size }
            case .alternation(let nodes): return nodes.reduce(0) { $0 + $1.size } + 2 * (nodes.count - 1)
            case .repetition(let node, let min, let max):
                let inner = node.size
                guard let max else { return min * inner + inner + 2 }
                return min * inner + (max - min) * (inner + 1)
            }
        }

        var anchored: Bool {
            switch self {
            case .assert(.lineStart): return true
            case .concat(let nodes): return nodes.first?.anchored ?? false
            case .alternation(let nodes): return nodes.allSatisfy(\.anchored)
            default: return false
            }
        }

        /// Assertions match no character: repeating one is a mistake, as glibc also says.
        var isAssertion: Bool {
            if case .assert = self { return true }
            return false
        }
    }

    struct Parser {
        let scalars: [Unicode.Scalar]
        var index = 0
        var depth = 0

        init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

        func fail(_ message: String, at offset: Int? = nil) -> SyntaxError {
            SyntaxError(message: message, offset: offset ?? index)
        }

        var peek: Unicode.Scalar? { index < scalars.count ? scalars[index] : nil }

        mutating func parse() throws -> Node {
            let node = try alternation()
            if index < scalars.count { throw fail("unexpected \(scalars[index])") }
            return node
        }

        mutating func alternation() throws -> Node {
            var branches = [try branch()]
            while peek == "|" {
                index += 1
                branches.append(try branch())
            }
            let node = branches.count == 1 ? branches[0] : Node.alternation(branches)
            try checkSize(node)
            return node
        }

        mutating func branch() throws -> Node {
            var pieces: [Node] = []
            while let char = peek, char != "|", !(char == ")" && depth > 0) {
                // A quantifier where an atom should be (at the start, after ( or |) fails in atom().
                var atom = try self.atom()
                while let quantifier = peek, "*+?{".unicodeScalars.contains(quantifier) {
                    let start = index
                    if atom.isAssertion { throw fail("nothing to repeat before \(quantifier)", at: start) }
                    let (min, max) = try bounds()
                    atom = .repetition(atom, min: min, max: max)
                    try checkSize(atom, at: start)
                }
                pieces.append(atom)
            }
            return pieces.count == 1 ? pieces[0] : .concat(pieces)
        }

        /// The quantifier at `index`: `*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}` or glibc's `{,m}`.
        mutating func bounds() throws -> (Int, Int?) {
            let open = index
            let char = scalars[index]
            index += 1
            switch char {
            case "*": return (0, nil)
            case "+": return (1, nil)
            case "?": return (0, 1)
            default: break
            }
            func number() throws -> Int? {
                let start = index
                while let c = peek, ("0"..."9").contains(c) { index += 1 }
                guard index > start else { return nil }
                let digits = String(String.UnicodeScalarView(scalars[start..<index]))
                guard digits.count <= 4, let value = Int(digits), value <= maxCount else {
                    throw fail("repetition count \(digits) is above \(maxCount)", at: open)
                }
                return value
            }
            let lower = try number()
            var upper = lower
            var comma = false
            if peek == "," {
                index += 1
                comma = true
                upper = try number()
            }
            guard index < scalars.count else { throw fail("unmatched {", at: open) }
            guard peek == "}", lower != nil || comma else { throw fail("invalid content of {}", at: open) }
            index += 1
            if let upper, upper < (lower ?? 0) { throw fail("invalid content of {}: \(lower ?? 0) is more than \(upper)", at: open) }
            return (lower ?? 0, upper)
        }

        func checkSize(_ node: Node, at offset: Int? = nil) throws {
            if node.size > maxProgram {
                throw fail("the pattern expands to more than \(maxProgram) states; use fewer or smaller repetition counts", at: offset ?? 0)
            }
        }

        mutating func atom() throws -> Node {
            let start = index
            let char = scalars[index]
            index += 1
            switch char {
            case "(":
                depth += 1
                guard depth <= maxGroupDepth else { throw fail("groups nested deeper than \(maxGroupDepth)", at: start) }
                let inner = try alternation()
                guard peek == ")" else { throw fail("unmatched (", at: start) }
                index += 1
                depth -= 1
                return inner
            case ")": return .char(char.value)  // an unmatched ) is an ordinary character, as in glibc
            case "*", "+", "?", "{":
                throw fail("nothing to repeat before \(char)", at: start)
            case ".": return .any
            case "^": return .assert(.lineStart)
            case "$": return .assert(.lineEnd)
            case "[": return .set(try bracket(start))
            case "\\": return try escape(start)
            default: return .char(char.value)
            }
        }

        mutating func escape(_ start: Int) throws -> Node {
            guard let char = peek else { throw fail("trailing backslash", at: start) }
            index += 1
            switch char {
            case "1"..."9":
                throw fail("back-references (\\\(char)) are not supported: they make matching exponential", at: start)
            case "w", "W", "s", "S":
                var set = ScalarSet()
                if char == "w" || char == "W" {
                    set.insert(.alnum)
                    set.insert(0x5F...0x5F)
                } else {
                    set.insert(.space)
                }
                set.negated = char == "W" || char == "S"
                return .set(set)
            case "b": return .assert(.wordBoundary)
            case "B": return .assert(.notWordBoundary)
            case "<": return .assert(.wordStart)
            case ">": return .assert(.wordEnd)
            case "`": return .assert(.lineStart)
            case "'": return .assert(.lineEnd)
            default:
                if char.properties.isAlphabetic || ("0"..."9").contains(char) {
                    let hint = ["d": " (use [0-9])", "t": " (write a tab itself, or [[:blank:]])", "n": " (lines never contain one)"][char] ?? ""
                    throw fail("\\\(char) is not part of POSIX extended regular expressions\(hint)", at: start)
                }
                return .char(char.value)  // \. \[ \( \\ \{ … stand for the character itself
            }
        }

        /// `[…]` after its `[`: ranges, `[:class:]`, single-character `[.x.]` and `[=x=]`; a `]` first
        /// and a `-` first or last are literal, a backslash is an ordinary character.
        mutating func bracket(_ start: Int) throws -> ScalarSet {
            var set = ScalarSet()
            if peek == "^" {
                set.negated = true
                index += 1
            }
            var first = true
            func unterminated() -> SyntaxError { fail("unmatched [", at: start) }
            /// One endpoint: a character, or `[.x.]` / `[=x=]` naming one.
            func endpoint() throws -> UInt32 {
                guard let char = peek else { throw unterminated() }
                if char == "[", index + 1 < scalars.count, scalars[index + 1] == "." || scalars[index + 1] == "=" {
                    let kind = scalars[index + 1]
                    let open = index
                    index += 2
                    var name: [Unicode.Scalar] = []
                    while index + 1 < scalars.count, !(scalars[index] == kind && scalars[index + 1] == "]") {
                        name.append(scalars[index])
                        index += 1
                    }
                    guard index + 1 < scalars.count else { throw unterminated() }
                    index += 2
                    guard name.count == 1 else {
                        throw fail("[\(kind)\(String(String.UnicodeScalarView(name)))\(kind)] is not supported: name one character", at: open)
                    }
                    return name[0].value
                }
                index += 1
                return char.value
            }
            while true {
                guard let char = peek else { throw unterminated() }
                if char == "]" && !first {
                    index += 1
                    return set
                }
                first = false
                if char == "[", index + 1 < scalars.count, scalars[index + 1] == ":" {
                    let open = index
                    index += 2
                    var name = ""
                    while index + 1 < scalars.count, !(scalars[index] == ":" && scalars[index + 1] == "]") {
                        name.unicodeScalars.append(scalars[index])
                        index += 1
                    }
                    guard index + 1 < scalars.count else { throw unterminated() }
                    index += 2
                    guard let charClass = CharClass(rawValue: name) else { throw fail("unknown character class [:\(name):]", at: open) }
                    set.insert(charClass)
                    continue
                }
                let open = index
                let low = try endpoint()
                if peek == "-", index + 1 < scalars.count, scalars[index + 1] != "]" {
                    index += 1
                    let high = try endpoint()
                    guard low <= high else { throw fail("invalid range end", at: open) }
                    // glibc refuses these in C.UTF-8 ("Invalid collation character"); so does grep -E.
                    guard high < 128 else { throw fail("a range must have ASCII ends; list other characters one by one", at: open) }
                    set.insert(low...high)
                } else {
                    set.insert(low...low)
                }
            }
        }
    }

    // MARK: - Compiling

    struct Compiler {
        var program: [Inst] = []
        var sets: [ScalarSet] = []

        mutating func emit(_ node: Node) {
            switch node {
            case .empty: break
            case .char(let char): program.append(Inst(op: .char, a: Int32(bitPattern: char)))
            case .any: program.append(Inst(op: .any))
            case .set(let set):
                sets.append(set)
                program.append(Inst(op: .set, a: Int32(sets.count - 1)))
            case .assert(let assertion): program.append(Inst(op: .assert, a: assertion.rawValue))
            case .concat(let nodes): nodes.forEach { emit($0) }
            case .alternation(let nodes):
                var jumps: [Int] = []
                for (offset, branch) in nodes.enumerated() {
                    if offset < nodes.count - 1 {
                        let split = program.count
                        program.append(Inst(op: .split, a: Int32(split + 1)))
                        emit(branch)
                        jumps.append(program.count)
                        program.append(Inst(op: .jump))
                        program[split].b = Int32(program.count)
                    } else {
                        emit(branch)
                    }
                }
                for jump in jumps { program[jump].a = Int32(program.count) }
            case .repetition(let inner, let min, let max):
                for _ in 0..<min { emit(inner) }
                if let max {
                    var splits: [Int] = []
                    for _ in min..<max {
                        splits.append(program.count)
                        program.append(Inst(op: .split, a: Int32(program.count + 1)))
                        emit(inner)
                    }
                    for split in splits { program[split].b = Int32(program.count) }
                } else {
                    let loop = program.count
                    program.append(Inst(op: .split, a: Int32(loop + 1)))
                    emit(inner)
                    program.append(Inst(op: .jump, a: Int32(loop)))
                    program[loop].b = Int32(program.count)
                }
            }
        }
    }
}
