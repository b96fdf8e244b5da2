import Foundation
import ProvisionPluginAPI

/// PCI vendor:device ids as users write them ("10de:1b80", or several joined by commas).
public enum PCIIDs {
    /// Lower-cased, validated ids; an error naming the option's line for anything else.
    public static func parse(_ raw: [String], options: StepOptions, option: String) throws -> [String] {
        try raw.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }.map { id in
            let parts = id.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, parts.allSatisfy({ $0.count == 4 && $0.allSatisfy(\.isHexDigit) }) else {
                throw options.error(option, "\"\(id)\" is not a PCI vendor:device id (four hex digits each, like 10de:1b80)")
            }
            return id.lowercased()
        }
    }

    /// The ids from an option, else `fallback` (the selected GPU's, `facts.gpu.ids`), else nil.
    public static func from(_ options: StepOptions, option: String, fallback: [String]?) throws -> [String]? {
        if let given = try options.stringList(option) { return try parse(given, options: options, option: option) }
        if let fallback { return try parse(fallback, options: options, option: option) }
        return nil
    }
}
