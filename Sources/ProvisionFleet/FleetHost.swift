import Foundation
import ProvisionCore

/// One host of a fleet run: how to reach it over ssh, where provision works on it, and its recipe
/// variables, all taken from the inventory's variables for it.
public struct FleetHost: Sendable, Hashable {
    /// The inventory name (what patterns, recaps and `refs/hosts/NAME` use).
    public var name: String
    /// `ansible_host` (or `ansible_ssh_host`), else the name.
    public var address: String
    /// `ansible_port` (or `ansible_ssh_port`, or `NAME:PORT` in the inventory); nil leaves it to ssh.
    public var port: Int?
    /// `ansible_user` (or `ansible_ssh_user`); nil leaves it to ssh.
    public var user: String?
    /// `ansible_ssh_private_key_file` (or `ansible_private_key_file`), `~/` expanded.
    public var privateKeyFile: String?
    /// `ansible_ssh_common_args` then `ansible_ssh_extra_args`, split as a shell would.
    public var sshArguments: [String]
    /// `ansible_become`: run provision through `sudo -n` (as `becomeUser`, default root).
    public var become: Bool
    public var becomeUser: String?
    /// `provision_root`: the root provision works on (`--root`), `/` by default.
    public var root: String
    /// `provision_path`: a provision already installed on the host; nil means the controller pushes its own.
    public var provisionPath: String?
    /// Every group the host is in (`all` included).
    public var groups: [String]
    /// Every other variable of the host (not `ansible_*`, not `provision_*`).
    public var recipeVariables: [String: InventoryValue]

    /// The connection and provision variables this type reads (and keeps out of `recipeVariables`).
    public static let connectionVariables: Set<String> = [
        "ansible_host", "ansible_ssh_host", "ansible_port", "ansible_ssh_port", "ansible_user", "ansible_ssh_user",
        "ansible_ssh_private_key_file", "ansible_private_key_file", "ansible_ssh_common_args", "ansible_ssh_extra_args",
        "ansible_become", "ansible_become_user", "provision_root", "provision_path",
    ]

    /// `--var NAME=TEXT` pairs for a recipe that declares `declared` (nil: every variable). A host
    /// carries every variable of its groups, most of them for other tools; only those the recipe
    /// declares are handed over. A map or a nested list cannot be a recipe variable: asking for
    /// one is an error naming the host and the variable.
    public func recipeArguments(declared: Set<String>? = nil) throws -> [String: String] {
        var result: [String: String] = [:]
        for (name, value) in recipeVariables where declared?.contains(name) ?? true {
            guard let text = value.recipeText else {
                throw ProvisionError(
                    .invalidInput, "host \(self.name): variable \"\(name)\" is \(value.jsonText), which a recipe variable cannot hold (text or a list of words)")
            }
            result[name] = text
        }
        return result
    }
}

extension Inventory {
    /// The typed host: connection, provision's own settings, groups and recipe variables. Values that
    /// must be a number or a flag and are not, or that hold a Jinja template, are errors naming the
    /// host and variable.
    public func fleetHost(_ name: String) throws -> FleetHost {
        guard inlineHostVars[name] != nil else { throw ProvisionError(.notFound, "inventory \(path) has no host \(name)") }
        let variables = variables(of: name)

        func text(_ names: String...) throws -> String? {
            for variable in names {
                guard let value = variables[variable] else { continue }
                switch value {
                case .null: continue
                case .list, .map:
                    throw ProvisionError(.invalidInput, "host \(name): \(variable) must be text, found \(value.jsonText) (inventory \(path))")
                default:
                    let written = value.scalarText
                    if written.contains("{{") || written.contains("{%") {
                        throw ProvisionError(
                            .invalidInput, "host \(name): \(variable) is a Jinja template (\(written)), which provision does not render (inventory \(path))")
                    }
                    return written
                }
            }
            return nil
        }

        var port: Int? = nil
        if let written = try text("ansible_port", "ansible_ssh_port") {
            guard let number = Int(written.trimmingCharacters(in: .whitespaces)), (1...65535).contains(number) else {
                throw ProvisionError(.invalidInput, "host \(name): ansible_port must be a port number (1-65535), found \"\(written)\" (inventory \(path))")
            }
            port = number
        }
        var become = false
        if let value = variables["ansible_become"] {
            switch value {
            case .bool(let flag): become = flag
            case .int(let number): become = number != 0
            case .null: become = false
            case .string(let word):
                // Ansible's boolean(): these words, case-insensitive, else false.
                switch word.lowercased().trimmingCharacters(in: .whitespaces) {
                case "yes", "on", "1", "true", "t", "y", "1.0": become = true
                case "no", "off", "0", "false", "f", "n", "0.0", "": become = false
                default:
                    throw ProvisionError(.invalidInput, "host \(name): ansible_become must be a boolean, found \"\(word)\" (inventory \(path))")
                }
            default:
                throw ProvisionError(.invalidInput, "host \(name): ansible_become must be a boolean, found \(value.jsonText) (inventory \(path))")
            }
        }
        var arguments: [String] = []
        for variable in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
            guard let written = try text(variable) else { continue }
            do {
                arguments += try ShellWords.split(written)
            } catch let problem as ShellWords.Unbalanced {
                throw ProvisionError(.invalidInput, "host \(name): \(variable) cannot be split: \(problem.description) (inventory \(path))")
            }
        }
        let root = try text("provision_root") ?? "/"
        guard root.hasPrefix("/") else {
            throw ProvisionError(.invalidInput, "host \(name): provision_root must be an absolute path, found \"\(root)\" (inventory \(path))")
        }
        let provisionPath = try text("provision_path")
        if let provisionPath, !provisionPath.hasPrefix("/") {
            throw ProvisionError(.invalidInput, "host \(name): provision_path must be an absolute path, found \"\(provisionPath)\" (inventory \(path))")
        }
        var key = try text("ansible_ssh_private_key_file", "ansible_private_key_file")
        if let written = key, written.hasPrefix("~/") {
            key = FileManager.default.homeDirectoryForCurrentUser.path + written.dropFirst()
        }
        return FleetHost(
            name: name, address: try text("ansible_host", "ansible_ssh_host") ?? name, port: port,
            user: try text("ansible_user", "ansible_ssh_user"), privateKeyFile: key, sshArguments: arguments,
            become: become, becomeUser: try text("ansible_become_user"), root: root, provisionPath: provisionPath,
            groups: groups(of: name),
            recipeVariables: variables.filter { !$0.key.hasPrefix("ansible_") && !$0.key.hasPrefix("provision_") })
    }

    /// The typed hosts a `--limit` leaves (every host without one), in inventory order.
    public func fleetHosts(limit: String? = nil) throws -> [FleetHost] {
        try hosts(limit: limit).map(fleetHost)
    }
}
