import Foundation
import ProvisionCore

/// Ansible's INI inventory: host lines (a name or range, an optional `:PORT`, then `k=v` words split
/// as a shell would, `#` starting a comment) under `[group]` (before any section: `ungrouped`),
/// `[group:children]` naming groups that may be declared later, `[group:vars]` with `k = v` lines.
/// Values are Python literals when they parse as one (`True`, `22`, `[1, 2]`, `'text'`), the text
/// otherwise. Lines starting with `#` or `;` are comments. Errors name the file and line.
struct InventoryINIReader {
    let file: String

    private enum Section {
        case hosts, children, vars
    }

    private struct Pending {
        var line: Int
        var section: Section
        var parents: [String]
    }

    func read(_ text: String) throws -> Inventory {
        var inventory = Inventory(path: file, format: .ini)
        var pending: [String: Pending] = [:]
        var pendingOrder: [String] = []
        var group = "ungrouped"
        var section = Section.hosts
        var lineNumber = 0

        func fail(_ message: String, line: Int? = nil) -> ProvisionError {
            ProvisionError(.invalidInput, message, at: SourceLocation(file: file, line: line ?? lineNumber, column: 1))
        }

        /// A group named as a child before it was declared is added once it is.
        func resolvePending(_ name: String) throws {
            guard let entry = pending[name] else { return }
            pending[name] = nil
            for parent in entry.parents {
                do { try inventory.addChild(parent, name) } catch let issue as InventoryIssue { throw fail(issue.message, line: entry.line) }
                if let parentEntry = pending[parent], parentEntry.section == .children { try resolvePending(parent) }
            }
        }

        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }

            if let header = sectionHeader(line) {
                group = header.name
                switch header.kind {
                case nil, "hosts": section = .hosts
                case "children": section = .children
                case "vars": section = .vars
                case let other?: throw fail("section [\(header.name):\(other)] has unknown type: \(other)")
                }
                if inventory.groups[group] == nil {
                    // [NAME:vars] alone does not declare a group: it must be declared somewhere.
                    if section == .vars && pending[group] == nil {
                        pending[group] = Pending(line: lineNumber, section: .vars, parents: [])
                        pendingOrder.append(group)
                    }
                    inventory.addGroup(group)
                }
                if let entry = pending[group], section != .vars {
                    if entry.section == .children { try resolvePending(group) } else { pending[group] = nil }
                }
                continue
            }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                throw fail("invalid section entry: \(line) (a section is [NAME], [NAME:children] or [NAME:vars], without spaces)")
            }

            switch section {
            case .hosts:
                let words: [String]
                do { words = try ShellWords.split(line, comments: true) } catch let problem as ShellWords.Unbalanced {
                    throw fail("cannot split host line \"\(line)\": \(problem.description)")
                }
                guard let entry = words.first else { continue }
                if entry == "---" { throw fail("\"---\" starts a YAML document: is this file YAML? (name it .yml)") }
                if entry.hasSuffix(":") && !entry.hasSuffix("]:") {
                    throw fail("host entry \"\(entry)\" ends in \":\", which is reserved for a port")
                }
                let expanded: (names: [String], port: Int?)
                do { expanded = try HostRange.expand(entry) } catch let failure as HostRange.Failure {
                    throw fail("\(failure.description) in \"\(entry)\"")
                }
                var variables: [(String, InventoryValue)] = []
                for word in words.dropFirst() {
                    guard let equals = word.firstIndex(of: "=") else {
                        throw fail("expected key=value host variable assignment, got: \(word)")
                    }
                    variables.append((String(word[..<equals]), PythonLiteral.value(of: String(word[word.index(after: equals)...]))))
                }
                for host in expanded.names {
                    inventory.addHost(host, group: group, port: expanded.port)
                    for (name, value) in variables { inventory.setHostVariable(host, name, value) }
                }
            case .vars:
                guard let equals = line.firstIndex(of: "=") else { throw fail("expected key=value, got: \(line)") }
                let name = line[..<equals].trimmingCharacters(in: .whitespaces)
                let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                do {
                    try inventory.setGroupVariable(group, name, PythonLiteral.value(of: value))
                } catch let issue as InventoryIssue {
                    throw fail(issue.message)
                }
            case .children:
                guard let child = groupName(line) else { throw fail("expected group name, got: \(line)") }
                if inventory.groups[child] == nil {
                    if pending[child] == nil {
                        pending[child] = Pending(line: lineNumber, section: .children, parents: [group])
                        pendingOrder.append(child)
                    } else {
                        pending[child]!.parents.append(group)
                    }
                } else {
                    do { try inventory.addChild(group, child) } catch let issue as InventoryIssue { throw fail(issue.message) }
                }
            }
        }
        for name in pendingOrder {
            guard let entry = pending[name] else { continue }
            switch entry.section {
            case .vars: throw fail("section [\(name):vars] is not valid for undefined group \(name)", line: entry.line)
            default: throw fail("section [\(entry.parents.last!):children] includes undefined group \(name)", line: entry.line)
            }
        }
        return inventory
    }

    /// `[name]` or `[name:kind]`, optionally followed by blanks and a `#` comment.
    private func sectionHeader(_ line: String) -> (name: String, kind: String?)? {
        guard line.hasPrefix("["), let close = line.firstIndex(of: "]") else { return nil }
        let rest = line[line.index(after: close)...].trimmingCharacters(in: .whitespaces)
        guard rest.isEmpty || rest.hasPrefix("#") else { return nil }
        let inside = line[line.index(after: line.startIndex)..<close]
        let parts = inside.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let name = String(parts[0])
        guard !name.isEmpty, !name.contains(where: { $0.isWhitespace || $0 == "]" }) else { return nil }
        if parts.count == 2 {
            let kind = String(parts[1])
            guard !kind.isEmpty, kind.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
            return (name, kind)
        }
        return (name, nil)
    }

    /// A group name line of a `:children` section, optionally followed by a comment.
    private func groupName(_ line: String) -> String? {
        var name = ""
        var rest = Substring(line)
        while let c = rest.first, !c.isWhitespace, c != ":", c != "]" {
            name.append(c)
            rest = rest.dropFirst()
        }
        let tail = rest.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, tail.isEmpty || tail.hasPrefix("#") else { return nil }
        return name
    }
}
