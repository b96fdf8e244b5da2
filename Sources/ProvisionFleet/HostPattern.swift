import Foundation
import ProvisionCore

/// Ansible's host patterns, as `ansible PATTERN` and `--limit` read them: `a,b` or `a:b` (union),
/// `a:&b` (intersection), `a:!b` (exclusion), evaluated unions first, then intersections, then
/// exclusions, whatever the order written; a name matching a group stands for its hosts; globs
/// (`web*`, `db?`, `[ab]x`, `[!a]x`) match group and host names whole; `~regex` matches from the
/// start of the name (Python's `re.match`); `group[0]`, `group[-1]`, `group[1:3]` take part of a
/// group's hosts; `@file` (in a limit) reads one pattern per line. A pattern that matches nothing
/// adds nothing, as in Ansible (which warns).
extension Inventory {
    /// The hosts a pattern selects, in the pattern's order (`ansible -i INV PATTERN --list-hosts`).
    public func hosts(matching pattern: String) throws -> [String] {
        try evaluate(Self.splitPatterns(pattern))
    }

    /// The inventory's hosts (inventory order) left by `--limit LIMIT`: what `ansible all --limit
    /// LIMIT` runs on. `@file` entries are read relative to the current directory, as Ansible does.
    public func hosts(limit: String?) throws -> [String] {
        let all = hosts(in: "all")
        guard let limit else { return all }
        var patterns: [String] = []
        for entry in Self.splitPatterns(limit) {
            if entry.hasPrefix("@") {
                let file = String(entry.dropFirst())
                let text = try Self.readText(file, what: "limit file")
                patterns += text.split(separator: "\n", omittingEmptySubsequences: false)
                    .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            } else {
                patterns.append(entry)
            }
        }
        let chosen = Set(try evaluate(patterns))
        return all.filter { chosen.contains($0) }
    }

    /// Ansible's split: commas if there are any; else the text is one pattern when it reads as a
    /// host name or address (which may hold `:` in a range or an IPv6 address); else colons split
    /// it, except inside `[...]`.
    static func splitPatterns(_ text: String) -> [String] {
        var parts: [String]
        if text.contains(",") {
            parts = text.components(separatedBy: ",")
        } else if HostRange.parseAddress(text) != nil {
            parts = [text]
        } else {
            parts = []
            var current = ""
            var depth = 0
            for c in text {
                if c == "[" { depth += 1 } else if c == "]" { depth = max(0, depth - 1) }
                if depth == 0 && (c == ":" || c.isWhitespace) {
                    if !current.isEmpty { parts.append(current) }
                    current = ""
                } else {
                    current.append(c)
                }
            }
            if !current.isEmpty { parts.append(current) }
        }
        return parts.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func evaluate(_ patterns: [String]) throws -> [String] {
        var regular = patterns.filter { !$0.hasPrefix("!") && !$0.hasPrefix("&") }
        let intersections = patterns.filter { $0.hasPrefix("&") }
        let exclusions = patterns.filter { $0.hasPrefix("!") }
        if regular.isEmpty { regular = ["all"] }
        var result: [String] = []
        for pattern in regular + intersections + exclusions {
            if inlineHostVars[pattern] != nil {
                if !result.contains(pattern) { result.append(pattern) }
                continue
            }
            let matched = try matchOne(pattern)
            if pattern.hasPrefix("!") {
                let drop = Set(matched)
                result.removeAll { drop.contains($0) }
            } else if pattern.hasPrefix("&") {
                let keep = Set(matched)
                result.removeAll { !keep.contains($0) }
            } else {
                var present = Set(result)
                for host in matched where present.insert(host).inserted { result.append(host) }
            }
        }
        return result
    }

    private func matchOne(_ written: String) throws -> [String] {
        var pattern = written
        if pattern.hasPrefix("!") || pattern.hasPrefix("&") { pattern.removeFirst() }
        guard !pattern.isEmpty else { return [] }
        var subscriptRange: (start: Int, end: Int?)? = nil
        if !pattern.hasPrefix("~"), let (base, range) = Self.subscriptOf(pattern) {
            pattern = base
            subscriptRange = range
        }
        let matcher = try NameMatcher(pattern)
        var results: [String] = []
        let matchedGroups = try groupNames.filter { try matcher.matches($0) }
        for group in matchedGroups { results += hosts(in: group) }
        if matchedGroups.isEmpty || pattern.hasPrefix("~") || pattern.contains(where: { ".?*[".contains($0) }) {
            results += try hostNames.filter { try matcher.matches($0) }
        }
        guard let subscriptRange, !results.isEmpty else { return results }
        // Python slicing of the matches (duplicates included, as Ansible does before it dedups).
        let count = results.count
        func index(_ i: Int) -> Int { i < 0 ? count + i : i }
        if let end = subscriptRange.end {
            let from = max(0, min(count, index(subscriptRange.start)))
            let to = max(from, min(count, (end == -1 ? count - 1 : index(end)) + 1))
            return Array(results[from..<to])
        }
        let at = index(subscriptRange.start)
        guard at >= 0 && at < count else {
            throw ProvisionError(.invalidInput, "no hosts matched the subscripted pattern \"\(written)\"")
        }
        return [results[at]]
    }

    /// `name[3]`, `name[-1]`, `name[1:3]`, `name[2:]` (also the old `name[1-3]`).
    static func subscriptOf(_ pattern: String) -> (String, (start: Int, end: Int?))? {
        guard pattern.hasSuffix("]"), let open = pattern.lastIndex(of: "["), open > pattern.startIndex else { return nil }
        let inside = pattern[pattern.index(after: open)..<pattern.index(before: pattern.endIndex)]
        let base = String(pattern[..<open])
        if let single = Int(inside), inside.allSatisfy({ $0.isNumber || $0 == "-" }) { return (base, (single, nil)) }
        guard let separator = inside.firstIndex(where: { $0 == ":" || $0 == "-" }) else { return nil }
        let start = inside[..<separator], end = inside[inside.index(after: separator)...]
        guard !start.isEmpty, start.allSatisfy(\.isNumber), end.allSatisfy(\.isNumber), let from = Int(start) else { return nil }
        return (base, (from, end.isEmpty ? -1 : Int(end)!))
    }
}

/// A glob as Python's fnmatch (the whole name; `*`, `?`, `[seq]`, `[!seq]`), or after `~` a regular
/// expression matched from the start of the name. The regex runs in ICU (NSRegularExpression), a
/// backtracking engine like Python's `re`, so the syntax users write for Ansible works (Python's
/// `(?P<name>…)` groups included); the pattern is bounded in length and each match in time (an
/// error past 2 s), and a match that exhausts ICU's backtracking stack matches nothing, so a
/// pathological pattern can neither hang the controller nor select a host.
struct NameMatcher {
    static let maxPatternLength = 1_000
    static let regexTimeLimit = 2.0

    private let glob: [Character]?
    private let regex: NSRegularExpression?

    init(_ pattern: String) throws {
        guard pattern.count <= Self.maxPatternLength else {
            throw ProvisionError(.invalidInput, "host pattern longer than \(Self.maxPatternLength) characters")
        }
        if pattern.hasPrefix("~") {
            let python = String(pattern.dropFirst())
                .replacingOccurrences(of: "(?P<", with: "(?<")
                .replacingOccurrences(of: "(?P=", with: "\\k<")
            do {
                regex = try NSRegularExpression(pattern: python)
            } catch {
                throw ProvisionError(.invalidInput, "invalid host list pattern \"\(pattern)\": not a regular expression")
            }
            glob = nil
        } else {
            glob = Array(pattern)
            regex = nil
        }
    }

    func matches(_ name: String) throws -> Bool {
        if let glob { return Self.globMatch(glob[...], Array(name)[...]) }
        let started = Date()
        var found = false
        var timedOut = false
        regex!.enumerateMatches(in: name, options: [.anchored, .reportProgress], range: NSRange(name.startIndex..., in: name)) { match, _, stop in
            if match != nil {
                found = true
                stop.pointee = true
            } else if Date().timeIntervalSince(started) > Self.regexTimeLimit {
                timedOut = true
                stop.pointee = true
            }
        }
        if timedOut { throw ProvisionError(.invalidInput, "host pattern ~\(regex!.pattern) took more than \(Self.regexTimeLimit) s on \"\(name)\"") }
        return found
    }

    /// fnmatch: iterative, backtracking only to the last `*`.
    static func globMatch(_ pattern: ArraySlice<Character>, _ name: ArraySlice<Character>) -> Bool {
        var p = pattern.startIndex, n = name.startIndex
        var star: (p: Int, n: Int)? = nil
        while n < name.endIndex {
            if p < pattern.endIndex {
                let c = pattern[p]
                if c == "*" {
                    star = (p, n)
                    p += 1
                    continue
                }
                if c == "?" {
                    p += 1
                    n += 1
                    continue
                }
                if c == "[", let (matched, next) = classMatch(pattern, at: p, name[n]) {
                    if matched {
                        p = next
                        n += 1
                        continue
                    }
                } else if c == name[n] {
                    p += 1
                    n += 1
                    continue
                }
            }
            guard let last = star else { return false }
            star = (last.p, last.n + 1)
            p = last.p + 1
            n = last.n + 1
        }
        while p < pattern.endIndex && pattern[p] == "*" { p += 1 }
        return p == pattern.endIndex
    }

    /// A `[...]` class at `start`: whether `c` matches and where the pattern goes on; nil when the
    /// bracket is not closed (then it is a literal `[`).
    private static func classMatch(_ pattern: ArraySlice<Character>, at start: Int, _ c: Character) -> (Bool, Int)? {
        var i = start + 1
        var negate = false
        if i < pattern.endIndex && pattern[i] == "!" {
            negate = true
            i += 1
        }
        var first = true
        var matched = false
        while i < pattern.endIndex {
            let item = pattern[i]
            if item == "]" && !first { return (matched != negate, i + 1) }
            first = false
            if i + 2 < pattern.endIndex && pattern[i + 1] == "-" && pattern[i + 2] != "]" {
                if item <= c && c <= pattern[i + 2] { matched = true }
                i += 3
            } else {
                if item == c { matched = true }
                i += 1
            }
        }
        return nil
    }
}
