import Foundation
import ProvisionCore
import ProvisionPlugins

/// Values the shell completions offer, read from what the command line names so far: run
/// numbers from the history of its --root, variable and step names from its recipe.
enum Completion {
    /// The value of `--NAME VALUE` or `--NAME=VALUE` among the words typed so far.
    static func option(_ name: String, in words: [String]) -> String? {
        for (index, word) in words.enumerated() {
            if word == "--\(name)", index + 1 < words.count { return unquote(words[index + 1]) }
            if word.hasPrefix("--\(name)=") { return unquote(String(word.dropFirst(name.count + 3))) }
        }
        return nil
    }

    static func unquote(_ word: String) -> String {
        var text = word
        if text.count >= 2, let first = text.first, first == "'" || first == "\"", text.last == first {
            text = String(text.dropFirst().dropLast())
        }
        return text.replacingOccurrences(of: "\\ ", with: " ")
    }

    static func engine(_ words: [String]) -> Engine? {
        guard let root = try? HostRoot(option("root", in: words) ?? "/") else { return nil }
        return try? Engine(root: root, historyPath: option("history", in: words), registry: builtinRegistry)
    }

    /// Run numbers in the history, newest first (apply, rollback and recover runs).
    @Sendable static func runs(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
        guard let engine = engine(words), let entries = try? engine.history(HistoryFilter()) else { return [] }
        var seen: Set<Int> = []
        return entries.filter { ["apply", "rollback", "recover"].contains($0.action.rawValue) && seen.insert($0.run).inserted }
            .map { String($0.run) }.filter { $0.hasPrefix(prefix) }
    }

    /// The recipe on the command line: the first word after the subcommand that names a YAML file.
    static func recipe(_ words: [String]) -> Recipe? {
        for word in words.dropFirst(2) where word.hasSuffix(".yaml") || word.hasSuffix(".yml") {
            if let recipe = try? Recipe.load(path: unquote(word), registry: builtinRegistry) { return recipe }
        }
        return nil
    }

    /// `NAME=` for every variable the recipe declares.
    @Sendable static func variables(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
        (recipe(words)?.varOrder ?? []).map { "\($0)=" }.filter { $0.hasPrefix(prefix) }
    }

    /// The recipe's step ids.
    @Sendable static func steps(_ words: [String], _ index: Int, _ prefix: String) -> [String] {
        (recipe(words)?.steps.map(\.id) ?? []).filter { $0.hasPrefix(prefix) }
    }
}
