import Foundation
import Yams
import ProvisionPluginAPI

/// Loading: the YAML text to a checked `Recipe`.
extension Recipe {
    /// Recipes are small; anything larger is refused before it is parsed.
    public static let maxBytes = 1 << 20

    public static func load(path: String, registry: PluginRegistry) throws -> Recipe {
        let data = try readBounded(path)
        guard let text = String(data: data, encoding: .utf8) else {
            throw ProvisionError(.invalidInput, "recipe \(path) is not UTF-8 text")
        }
        var recipe = try parse(text, file: path, registry: registry)
        recipe.sha256 = SHA256.hex(data)
        recipe.absolutePath = URL(fileURLWithPath: path).standardizedFileURL.path
        return recipe
    }

    /// The recipe file, read with a bound: a FIFO or device is refused without blocking (opened
    /// non-blocking, checked with fstat), and at most `maxBytes` + 1 bytes are ever read.
    static func readBounded(_ path: String, what: String = "recipe") throws -> Data {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT || code == ENOTDIR { throw ProvisionError(.notFound, "cannot read \(what) \(path): \(String(cString: strerror(code)))") }
            throw ProvisionError(.io, "cannot read \(what) \(path): \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ProvisionError(.io, "cannot read \(what) \(path): \(String(cString: strerror(errno)))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ProvisionError(.invalidInput, "\(what) \(path) is not a regular file")
        }
        func tooLarge(_ size: Int) -> ProvisionError {
            ProvisionError(.invalidInput, "\(what) \(path) is \(size) bytes, more than the limit of \(maxBytes) (1 MiB)")
        }
        guard Int(info.st_size) <= maxBytes else { throw tooLarge(Int(info.st_size)) }
        var data = Data(count: maxBytes + 1)
        var count = 0
        while count < data.count {
            let got = data.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if got < 0 {
                if errno == EINTR { continue }
                throw ProvisionError(.io, "cannot read \(what) \(path): \(String(cString: strerror(errno)))")
            }
            if got == 0 { break }
            count += got
        }
        // The file grew after fstat.
        guard count <= maxBytes else { throw tooLarge(count) }
        data.count = count
        return data
    }

    public static func parse(_ text: String, file: String, registry: PluginRegistry) throws -> Recipe {
        let root = try RecipeParser(file: file).parse(text)
        guard case .map(let entries) = root.kind else {
            throw ProvisionError(.invalidInput, "a recipe is a mapping with name, vars and steps; found \(root.typeName)", at: root.location)
        }
        var problems = Problems()
        var name: String?
        var description: String?
        var vars: [String: Value] = [:]
        var varOrder: [String] = []
        var stepsNode: RecipeNode?
        var badNames: [ProvisionError] = []
        for (key, keyLocation, value) in entries {
            problems.collect {
                switch key {
                case "name": name = try value.scalarString("name")
                case "description": description = try value.scalarString("description")
                case "vars":
                    guard case .map(let varEntries) = value.kind else {
                        throw ProvisionError(.invalidInput, "vars must be a mapping of name: default", at: value.location)
                    }
                    for (varName, varLocation, varValue) in varEntries {
                        guard Interpolation.isIdentifier(varName) else {
                            badNames.append(ProvisionError(.invalidInput, "variable name \"\(varName)\" must be letters, digits and _", at: varLocation))
                            continue
                        }
                        vars[varName] = varValue.literal
                        varOrder.append(varName)
                    }
                case "steps": stepsNode = value
                default:
                    throw ProvisionError(
                        .invalidInput, "unknown key \"\(key)\" (a recipe has name, description, vars, steps)", at: keyLocation)
                }
            }
        }
        badNames.forEach { problems.add($0) }
        if name == nil && !entries.contains(where: { $0.key == "name" }) {
            problems.add(ProvisionError(.invalidInput, "the recipe has no name", at: root.location))
        }
        var steps: [RecipeStep] = []
        var uses: [VariableUse] = []
        if let stepsNode {
            if case .list(let stepNodes) = stepsNode.kind {
                var seenIDs: Set<String> = []
                for (index, node) in stepNodes.enumerated() {
                    guard let (step, stepUses) = parseStep(node, index: index, registry: registry, vars: Set(vars.keys), &problems) else {
                        continue
                    }
                    guard seenIDs.insert(step.id).inserted else {
                        problems.add(ProvisionError(.invalidInput, "step id \"\(step.id)\" is used twice", at: step.location))
                        continue
                    }
                    steps.append(step)
                    uses += stepUses
                }
            } else {
                problems.add(ProvisionError(.invalidInput, "steps must be a list", at: stepsNode.location))
            }
        } else {
            problems.add(ProvisionError(.invalidInput, "the recipe has no steps", at: root.location))
        }
        try problems.throwIfAny()
        var recipe = Recipe(
            path: file, name: name ?? "", description: description, vars: vars, varOrder: varOrder, steps: steps,
            sha256: SHA256.hex(Data(text.utf8)))
        recipe.variableUses = uses
        return recipe
    }

    /// One step, or nil when it has errors (added to `problems`, all of them).
    private static func parseStep(
        _ node: RecipeNode, index: Int, registry: PluginRegistry, vars: Set<String>, _ problems: inout Problems
    ) -> (RecipeStep, [VariableUse])? {
        guard case .map(let entries) = node.kind else {
            problems.add(ProvisionError(.invalidInput, "a step is a mapping with uses, id and with", at: node.location))
            return nil
        }
        let before = problems.found.count
        var uses: (String, SourceLocation)?
        var id: String?
        var with: RecipeNode?
        var when: RecipeNode?
        var condition: Condition?
        var timeout: Int?
        for (key, keyLocation, value) in entries {
            problems.collect {
                switch key {
                case "uses": uses = (try value.scalarString("uses"), value.location)
                case "id":
                    let text = try value.scalarString("id")
                    guard !text.isEmpty, text.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                        throw ProvisionError(.invalidInput, "step id \"\(text)\" must be letters, digits, - _ and .", at: value.location)
                    }
                    id = text
                case "with": with = value
                case "when":
                    let text = try value.scalarString("when")
                    when = value
                    condition = try Condition.parse(text, at: value.location, quoted: value.quoted, vars: vars)
                case "timeout":
                    guard let seconds = Int(try value.scalarString("timeout")), (1...3600).contains(seconds) else {
                        throw ProvisionError(.invalidInput, "timeout must be a number of seconds from 1 to 3600", at: value.location)
                    }
                    timeout = seconds
                default:
                    throw ProvisionError(
                        .invalidInput, "unknown key \"\(key)\" in a step (a step has uses, id, with, when, timeout)", at: keyLocation)
                }
            }
        }
        guard let (kind, kindLocation) = uses else {
            if !entries.contains(where: { $0.key == "uses" }) {
                problems.add(ProvisionError(.invalidInput, "step \(index + 1) has no \"uses\"", at: node.location))
            }
            return nil
        }
        guard let plugin = registry.plugin(kind) else {
            problems.add(
                ProvisionError(
                    .invalidInput, "unknown step kind \"\(kind)\" (known: \(registry.kinds.joined(separator: ", ")))", at: kindLocation))
            return nil
        }
        let stepID = id ?? "\(kind)#\(index + 1)"
        var options: [String: RecipeNode] = [:]
        var variableUses: [VariableUse] = []
        if let with {
            if case .map(let optionEntries) = with.kind {
                for (key, keyLocation, value) in optionEntries {
                    guard let spec = plugin.options.first(where: { $0.name == key }) else {
                        let known = plugin.options.map(\.name).joined(separator: ", ")
                        problems.add(ProvisionError(.invalidInput, "\(kind) has no option \"\(key)\" (options: \(known))", at: keyLocation))
                        continue
                    }
                    problems.collect {
                        try spec.type.check(value, option: key)
                        try Interpolation.checkReferences(in: value, vars: vars)
                        options[key] = value
                        if let variable = value.variableReference {
                            variableUses.append(VariableUse(variable: variable, step: stepID, option: key, type: spec.type, location: value.location))
                        }
                    }
                }
            } else {
                problems.add(ProvisionError(.invalidInput, "\"with\" must be a mapping of options", at: with.location))
            }
        }
        let given = Set((with.flatMap { node -> [String]? in
            if case .map(let entries) = node.kind { return entries.map(\.key) }
            return nil
        }) ?? [])
        for spec in plugin.options where spec.required && !given.contains(spec.name) {
            problems.add(ProvisionError(.invalidInput, "\(kind) needs option \"\(spec.name)\"", at: node.location))
        }
        guard problems.found.count == before else { return nil }
        let step = RecipeStep(
            id: stepID, uses: kind, options: options, location: node.location, when: when, condition: condition, timeout: timeout)
        return (step, variableUses)
    }
}

extension Recipe {
    /// A variable file (`--var-file`, like Ansible's `-e @file`): a YAML mapping of names to single
    /// values, read with the recipe's bounds; a list or mapping as a value is refused with its line.
    public static func variableFile(_ path: String) throws -> [String: String] {
        let data = try readBounded(path, what: "variable file")
        guard let text = String(data: data, encoding: .utf8) else {
            throw ProvisionError(.invalidInput, "variable file \(path) is not UTF-8 text")
        }
        if text.allSatisfy(\.isWhitespace) { return [:] }
        let root = try RecipeParser(file: path).parse(text)
        guard case .map(let entries) = root.kind else {
            throw ProvisionError(.invalidInput, "a variable file is a mapping of name: value; found \(root.typeName)", at: root.location)
        }
        var vars: [String: String] = [:]
        var problems = Problems()
        for (name, location, value) in entries {
            guard case .scalar(let text) = value.kind else {
                problems.add(
                    ProvisionError(.invalidInput, "variable \"\(name)\" must be a single value (text, a number, true or false)", at: location))
                continue
            }
            vars[name] = text
        }
        try problems.throwIfAny()
        return vars
    }
}

extension RecipeNode {
    func scalarString(_ what: String) throws -> String {
        guard case .scalar(let text) = kind else {
            throw ProvisionError(.invalidInput, "\(what) must be a string, found \(typeName)", at: location)
        }
        return text
    }
}

/// Turns YAML into `RecipeNode`s, keeping positions, refusing duplicate keys and anchors/aliases
/// (which would make locations ambiguous, and which Yams expands: a "billion laughs" recipe would
/// take gigabytes). Anchors and aliases are refused from the text, before Yams sees it; the walk
/// over Yams' nodes then counts them and catches any expansion that slipped through.
struct RecipeParser {
    let file: String

    /// More nodes than any recipe needs; the bound on the walk.
    static let maxNodes = 100_000

    /// `scanFirst` false skips the scan of the text (tests of the walk's own defence only).
    func parse(_ text: String, scanFirst: Bool = true) throws -> RecipeNode {
        if scanFirst, let found = YAMLAnchorScan.firstAnchorOrAlias(in: text) {
            let sigil = found.isAlias ? "*" : "&"
            throw ProvisionError(
                .invalidInput,
                "YAML anchors and aliases are not allowed in recipes (found \(found.isAlias ? "alias" : "anchor") \(sigil)\(found.name): "
                    + "write the value out in full; quote a string that starts with \(sigil))",
                at: SourceLocation(file: file, line: found.line, column: found.column))
        }
        let node: Node?
        do {
            // The basic resolver: a recipe's scalars are text, typed by the option they fill, so
            // YAML 1.1's implicit tags are never needed (and the default resolver's regular
            // expressions cost a whole command about 9M instructions to compile).
            node = try Yams.compose(yaml: text, .basic)
        } catch let error as YamlError {
            throw translate(error)
        }
        guard let node else { throw ProvisionError(.invalidInput, "the recipe is empty", at: SourceLocation(file: file, line: 1, column: 1)) }
        var walk = Walk()
        return try convert(node, &walk)
    }

    /// What the walk has seen: how many nodes, and where each collection and non-empty scalar
    /// started. An alias expanded by Yams is the anchored node again, at the same start.
    struct Walk {
        var nodes = 0
        var starts: Set<Start> = []

        struct Start: Hashable {
            var kind: UInt8
            var line: Int
            var column: Int
        }
    }

    private func location(_ mark: Mark?) -> SourceLocation {
        SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    private func visit(_ node: Node, kind: UInt8, tracked: Bool, _ walk: inout Walk) throws {
        walk.nodes += 1
        guard walk.nodes <= Self.maxNodes else {
            throw ProvisionError(.invalidInput, "the recipe has more than \(Self.maxNodes) values", at: location(node.mark))
        }
        // Implicit empty scalars (a key with no value) can share a position with the next token.
        guard tracked, let mark = node.mark else { return }
        guard walk.starts.insert(Walk.Start(kind: kind, line: mark.line, column: mark.column)).inserted else {
            throw ProvisionError(
                .invalidInput, "YAML anchors and aliases are not allowed in recipes (the value here is used a second time)", at: location(mark))
        }
    }

    private func convert(_ node: Node, _ walk: inout Walk) throws -> RecipeNode {
        switch node {
        case .scalar(let scalar):
            try visit(node, kind: 0, tracked: !scalar.string.isEmpty, &walk)
            var converted = RecipeNode(.scalar(scalar.string), at: location(scalar.mark))
            converted.quoted = scalar.style == .singleQuoted || scalar.style == .doubleQuoted
            return converted
        case .sequence(let sequence):
            try visit(node, kind: 1, tracked: true, &walk)
            var items: [RecipeNode] = []
            for item in sequence { items.append(try convert(item, &walk)) }
            return RecipeNode(.list(items), at: location(sequence.mark))
        case .mapping(let mapping):
            try visit(node, kind: 2, tracked: true, &walk)
            var entries: [(key: String, keyLocation: SourceLocation, value: RecipeNode)] = []
            var seen: Set<String> = []
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw ProvisionError(.invalidInput, "mapping keys must be plain strings", at: location(key.mark))
                }
                _ = try convert(key, &walk)
                guard seen.insert(keyScalar.string).inserted else {
                    throw ProvisionError(.invalidInput, "duplicate key \"\(keyScalar.string)\"", at: location(keyScalar.mark))
                }
                entries.append((keyScalar.string, location(keyScalar.mark), try convert(value, &walk)))
            }
            return RecipeNode(.map(entries), at: location(mapping.mark))
        case .alias(let alias):
            throw ProvisionError(.invalidInput, "YAML anchors and aliases are not allowed in recipes", at: location(alias.mark))
        }
    }

    private func translate(_ error: YamlError) -> ProvisionError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            if problem.hasPrefix("Maximum nesting level reached") {
                return ProvisionError(.invalidInput, "malformed YAML: nested deeper than 1000 levels", at: location(mark))
            }
            let text = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
            return ProvisionError(.invalidInput, "malformed YAML: \(text)", at: location(mark))
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ProvisionError(
                .invalidInput, "duplicate key \(duplicates.map { "\"\($0)\"" }.joined(separator: ", "))", at: location(context.mark))
        case .reader(let problem, _, _, _):
            return ProvisionError(.invalidInput, "malformed YAML: \(problem)", at: SourceLocation(file: file, line: 1, column: 1))
        default:
            return ProvisionError(.invalidInput, "malformed YAML: \(error)", at: SourceLocation(file: file, line: 1, column: 1))
        }
    }
}
