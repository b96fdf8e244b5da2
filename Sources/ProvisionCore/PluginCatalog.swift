import Foundation
import ProvisionPluginAPI

/// Every step kind a run can use: the built-ins, then the external plugins found on the search
/// path (`--plugin-dir`, `$PROVISION_PLUGIN_PATH`, /etc/provision/plugins, /usr/lib/provision/plugins,
/// in that order). A built-in kind is never shadowed; of two external plugins of one kind the first
/// on the path wins; a plugin whose `describe` fails is left out. Each of these is listed with its
/// reason, so nothing disappears silently.
public struct PluginCatalog: Sendable {
    public struct Entry: Sendable, Codable, Equatable {
        public enum Status: String, Sendable, Codable { case active, shadowed, broken }
        public var kind: String
        /// "built-in" or "external".
        public var source: String
        public var status: Status
        public var summary: String?
        /// The executable, for external plugins.
        public var path: String?
        /// Why a plugin is shadowed or broken.
        public var reason: String?
    }

    public static let prefix = "provision-step-"
    public static let systemDirectories = ["/etc/provision/plugins", "/usr/lib/provision/plugins"]

    public let registry: PluginRegistry
    public let entries: [Entry]

    /// The directories searched, in order.
    public static func searchPath(pluginDirs: [String], environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        let fromEnvironment = (environment["PROVISION_PLUGIN_PATH"] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
        return pluginDirs + fromEnvironment + systemDirectories
    }

    public static func load(builtins: PluginRegistry, searchPath: [String]) -> PluginCatalog {
        var plugins = builtins.plugins
        var entries = builtins.plugins.map { Entry(kind: $0.kind, source: "built-in", status: .active, summary: $0.summary) }
        var winners: [String: String] = [:]
        for directory in searchPath {
            let absolute = URL(fileURLWithPath: directory).standardizedFileURL.path
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: absolute)) ?? []).filter { $0.hasPrefix(prefix) }.sorted()
            for name in names {
                let path = absolute + "/" + name
                let kind = String(name.dropFirst(prefix.count))
                var entry = Entry(kind: kind, source: "external", status: .broken, path: path)
                if builtins.plugin(kind) != nil {
                    entry.status = .shadowed
                    entry.reason = "\(kind) is a built-in step kind, which a plugin cannot replace"
                } else if let winner = winners[kind] {
                    entry.status = .shadowed
                    entry.reason = "\(winner) comes first on the plugin path"
                } else if !isValidKind(kind) {
                    entry.reason = "\"\(kind)\" is not a step kind (letters, digits, . - _; starting with a letter)"
                } else if access(path, X_OK) != 0 || isDirectory(path) {
                    entry.reason = "not an executable file"
                } else {
                    do {
                        let plugin = try ExternalPlugin.describe(path: path, kind: kind)
                        entry.status = .active
                        entry.summary = plugin.summary
                        winners[kind] = path
                        plugins.append(plugin)
                    } catch let error as ProvisionError {
                        entry.reason = error.message
                    } catch {
                        entry.reason = "\(error)"
                    }
                }
                entries.append(entry)
            }
        }
        return PluginCatalog(registry: PluginRegistry(plugins), entries: entries)
    }

    static func isValidKind(_ kind: String) -> Bool {
        guard let first = kind.first, first.isASCII, first.isLetter else { return false }
        return kind.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
    }

    static func isDirectory(_ path: String) -> Bool {
        var directory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &directory) && directory.boolValue
    }
}
