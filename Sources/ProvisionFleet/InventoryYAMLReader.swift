import Foundation
import ProvisionCore
import Yams

/// Ansible's YAML inventory: a mapping of groups, each with `hosts` (name or range -> variables),
/// `vars` and `children` (more groups); and YAML vars files. Scalars resolve as PyYAML resolves
/// them; every error names the file, line and column.
struct InventoryYAMLReader {
    let file: String

    /// Bound on the values walked in one file.
    static let maxValues = 1_000_000

    func read(_ text: String) throws -> Inventory {
        guard let root = try compose(text) else { throw error("the YAML inventory is empty", at: nil) }
        guard case .mapping(let groups) = root else {
            throw error("a YAML inventory is a mapping of groups (all: {hosts, vars, children}), found \(kindName(root))", at: root.mark)
        }
        if groups.contains(where: { $0.key.string == "plugin" }) {
            throw error("this is the configuration of an inventory plugin (plugin:), not an inventory", at: root.mark)
        }
        var inventory = Inventory(path: file, format: .yaml)
        var budget = Self.maxValues
        for (key, value) in groups {
            _ = try parseGroup(key, value, &inventory, &budget)
        }
        return inventory
    }

    /// A vars file: a mapping, or nothing (an empty file).
    func readVarsFile(_ text: String) throws -> [String: InventoryValue]? {
        guard let root = try compose(text) else { return nil }
        var budget = Self.maxValues
        switch try value(root, &budget) {
        case .null: return nil
        case .map(let entries): return entries.isEmpty ? nil : entries
        default: throw error("a vars file must be a mapping of variable names to values, found \(kindName(root))", at: root.mark)
        }
    }

    private func compose(_ text: String) throws -> Node? {
        if let found = YAMLAnchorScan.firstAnchorOrAlias(in: text) {
            let sigil = found.isAlias ? "*" : "&"
            throw ProvisionError(
                .invalidInput,
                "YAML anchors and aliases are not read by provision (found \(found.isAlias ? "alias" : "anchor") \(sigil)\(found.name)): "
                    + "write the value out in full",
                at: SourceLocation(file: file, line: found.line, column: found.column))
        }
        do {
            return try Yams.compose(yaml: text)
        } catch let yamlError as YamlError {
            throw translate(yamlError)
        }
    }

    /// Returns the group's name (Ansible adds a child by this name even when its body was skipped).
    private func parseGroup(_ key: Node, _ body: Node?, _ inventory: inout Inventory, _ budget: inout Int) throws -> String {
        guard case .string(let name) = try scalarKey(key, &budget), !name.isEmpty else {
            throw error("a group name must be a non-empty string, found \(key.string ?? kindName(key))", at: key.mark)
        }
        let entries: Node.Mapping
        switch body {
        case .mapping(let mapping)?: entries = mapping
        case nil:
            inventory.addGroup(name)
            return name
        case .scalar(let scalar)? where YAMLScalar.resolve(scalar.string) == .null && scalar.style == .plain:
            inventory.addGroup(name)
            return name
        default:
            inventory.addWarning("\(location(body?.mark)): skipping \"\(name)\": not a valid group definition (a mapping)")
            return name
        }
        inventory.addGroup(name)
        for (sectionKey, section) in entries {
            let sectionName = sectionKey.string ?? ""
            guard ["vars", "children", "hosts"].contains(sectionName) else {
                inventory.addWarning(
                    "\(location(sectionKey.mark)): skipping unexpected key (\(sectionName)) in group (\(name)): only vars, children and hosts are valid")
                continue
            }
            // A single name stands for a mapping with that one key.
            let pairs: [(Node, Node?)]
            switch section {
            case .mapping(let mapping): pairs = mapping.map { ($0.key, $0.value) }
            case .scalar(let scalar) where scalar.style == .plain && YAMLScalar.resolve(scalar.string) == .null:
                continue
            case .scalar:
                pairs = [(section, nil)]
            default:
                throw error("invalid \"\(sectionName)\" entry for group \"\(name)\": it must be a mapping, found \(kindName(section))", at: section.mark)
            }
            for (entryKey, entryValue) in pairs {
                switch sectionName {
                case "vars":
                    let variable = try scalarKey(entryKey, &budget)
                    do {
                        try inventory.setGroupVariable(name, variable.keyText, try entryValue.map { try value($0, &budget) } ?? .null)
                    } catch let issue as InventoryIssue {
                        throw error(issue.message, at: entryKey.mark)
                    }
                case "children":
                    let child = try parseGroup(entryKey, entryValue, &inventory, &budget)
                    do {
                        try inventory.addChild(name, child)
                    } catch let issue as InventoryIssue {
                        throw error(issue.message, at: entryKey.mark)
                    }
                default:
                    guard case .string(let pattern) = try scalarKey(entryKey, &budget) else {
                        throw error("host pattern \(entryKey.string ?? "") must be a string: quote numbers", at: entryKey.mark)
                    }
                    let expanded: (names: [String], port: Int?)
                    do {
                        expanded = try HostRange.expand(pattern)
                    } catch let failure as HostRange.Failure {
                        throw error("\(failure.description) in \"\(pattern)\"", at: entryKey.mark)
                    }
                    let variables: [String: InventoryValue]
                    switch try entryValue.map({ try value($0, &budget) }) ?? .null {
                    case .null: variables = [:]
                    case .map(let map): variables = map
                    case let other:
                        throw error("the variables of host \(pattern) must be a mapping, found \(other)", at: entryValue?.mark)
                    }
                    for host in expanded.names {
                        inventory.addHost(host, group: name, port: expanded.port)
                        for (variable, setting) in variables { inventory.setHostVariable(host, variable, setting) }
                    }
                }
            }
        }
        return name
    }

    private func scalarKey(_ node: Node, _ budget: inout Int) throws -> InventoryValue {
        let key = try value(node, &budget)
        switch key {
        case .list, .map: throw error("a mapping key must be a scalar", at: node.mark)
        default: return key
        }
    }

    /// A node as Ansible's loader builds it.
    func value(_ node: Node, _ budget: inout Int) throws -> InventoryValue {
        budget -= 1
        guard budget >= 0 else { throw error("more than \(Self.maxValues) values", at: node.mark) }
        switch node {
        case .scalar(let scalar):
            let tag = Tag.Name(rawValue: scalar.tag.rawValue)
            switch tag {
            case .implicit:
                return scalar.style == .plain ? YAMLScalar.resolve(scalar.string) : .string(scalar.string)
            case .str, .nonSpecific: return .string(scalar.string)
            case .int, .float, .bool, .null:
                let resolved = YAMLScalar.resolve(scalar.string)
                let matches: Bool
                switch (tag, resolved) {
                case (.int, .int), (.float, .float), (.bool, .bool), (.null, .null): matches = true
                case (.float, .int(let number)): return .float(Double(number))
                default: matches = false
                }
                guard matches else { throw error("\"\(scalar.string)\" is not a valid \(tag.rawValue)", at: node.mark) }
                return resolved
            default:
                if tag.rawValue == "!unsafe" { return .string(scalar.string) }
                throw error("the YAML tag \(tag.rawValue) is not supported here (Ansible vault values are not read)", at: node.mark)
            }
        case .sequence(let sequence):
            var items: [InventoryValue] = []
            for item in sequence { items.append(try value(item, &budget)) }
            return .list(items)
        case .mapping(let mapping):
            var entries: [String: InventoryValue] = [:]
            for (key, item) in mapping {
                if case .scalar(let scalar) = key, scalar.string == "<<", scalar.style == .plain {
                    throw error("YAML merge keys (<<) are not read by provision: write the values out in full", at: key.mark)
                }
                entries[try scalarKey(key, &budget).keyText] = try value(item, &budget)
            }
            return .map(entries)
        case .alias:
            throw error("YAML aliases are not read by provision", at: node.mark)
        }
    }

    private func kindName(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): return "the scalar \"\(scalar.string)\""
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        case .alias: return "an alias"
        }
    }

    private func location(_ mark: Mark?) -> SourceLocation {
        SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }

    private func error(_ message: String, at mark: Mark?) -> ProvisionError {
        ProvisionError(.invalidInput, message, at: location(mark))
    }

    private func translate(_ yamlError: YamlError) -> ProvisionError {
        switch yamlError {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let text = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
            return ProvisionError(.invalidInput, "malformed YAML: \(text)", at: location(mark))
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ProvisionError(
                .invalidInput, "duplicate key \(duplicates.map { "\"\($0)\"" }.joined(separator: ", "))", at: location(context.mark))
        default:
            return ProvisionError(.invalidInput, "malformed YAML: \(yamlError)", at: SourceLocation(file: file, line: 1, column: 1))
        }
    }
}
