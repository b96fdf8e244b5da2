import Foundation
import ProvisionPluginAPI

/// Parses `lspci -nnk` (with or without -D domains): what users paste, and the input for hosts
/// that cannot be scanned. IOMMU groups are not in that output.
public enum LspciParser {
    public static func parse(_ text: String, file: String = "lspci") throws -> [PCIDevice] {
        var devices: [PCIDevice] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            if line.hasPrefix("\t") || line.hasPrefix(" ") {
                guard !devices.isEmpty else { continue }
                let detail = line.trimmingCharacters(in: .whitespaces)
                if detail.hasPrefix("Kernel driver in use:") {
                    devices[devices.count - 1].driver = value(detail)
                } else if detail.hasPrefix("Kernel modules:") {
                    devices[devices.count - 1].modules = value(detail).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                } else if detail.hasPrefix("Subsystem:"), let ids = lastID(in: detail) {
                    devices[devices.count - 1].subsystemVendor = ids.vendor
                    devices[devices.count - 1].subsystemDevice = ids.device
                }
                continue
            }
            devices.append(try device(line, at: SourceLocation(file: file, line: index + 1, column: 1)))
        }
        return devices
    }

    private static func value(_ detail: String) -> String {
        String(detail[detail.index(after: detail.firstIndex(of: ":")!)...]).trimmingCharacters(in: .whitespaces)
    }

    /// The last "[vvvv:dddd]" in a line.
    static func lastID(in text: String) -> (vendor: String, device: String)? {
        var result: (String, String)?
        var search = text[...]
        while let open = search.firstIndex(of: "[") {
            let rest = search[search.index(after: open)...]
            if let close = rest.firstIndex(of: "]") {
                let inside = rest[..<close]
                let parts = inside.split(separator: ":")
                if parts.count == 2, parts.allSatisfy({ $0.count == 4 && $0.allSatisfy(\.isHexDigit) }) {
                    result = (parts[0].lowercased(), parts[1].lowercased())
                }
                search = rest[rest.index(after: close)...]
            } else {
                break
            }
        }
        return result
    }

    private static func device(_ line: String, at location: SourceLocation) throws -> PCIDevice {
        func fail() -> ProvisionError {
            ProvisionError(.invalidInput, "not an lspci -nnk device line: \"\(line)\"", at: location)
        }
        guard let space = line.firstIndex(of: " ") else { throw fail() }
        var address = String(line[..<space])
        if address.split(separator: ":").count == 2 { address = "0000:" + address }
        let addressParts = address.split(separator: ":")
        guard addressParts.count == 3, addressParts[2].contains(".") else { throw fail() }
        let rest = line[line.index(after: space)...]
        // "VGA compatible controller [0300]: NVIDIA Corporation GP104 [GeForce GTX 1080] [10de:1b80] (rev a1)"
        guard let classOpen = rest.firstIndex(of: "["), let colon = rest[classOpen...].firstIndex(of: ":") else { throw fail() }
        let classText = rest[rest.index(after: classOpen)..<rest[classOpen...].firstIndex(of: "]")!]
        guard classText.count == 4, let classCode = UInt32(classText, radix: 16) else { throw fail() }
        let className = rest[..<classOpen].trimmingCharacters(in: .whitespaces)
        var description = String(rest[rest.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
        // Trailing "(rev a1)" and "(prog-if 00 [VGA controller])" groups go first.
        while description.hasSuffix(")"), let open = description.range(of: " (", options: .backwards) {
            description = String(description[..<open.lowerBound])
        }
        guard let ids = lastID(in: description), description.hasSuffix("[\(ids.vendor):\(ids.device)]") else { throw fail() }
        let name = String(description.dropLast(11)).trimmingCharacters(in: .whitespaces)
        return PCIDevice(
            address: address.lowercased(), classCode: classCode << 8, vendor: ids.vendor, device: ids.device, subsystemVendor: nil,
            subsystemDevice: nil, driver: nil, modules: nil, iommuGroup: nil, bootVGA: false, hasROM: false,
            name: name.isEmpty ? nil : name, className: className)
    }
}
