import Foundation
import ProvisionPluginAPI

/// A PCI expansion ROM, walked image by image through the PCIR structures (layout as in edk2's
/// Pci22.h and Pci30.h). Parsing never trusts an offset: every fault is an error naming it.
public struct OptionROM: Sendable, Encodable {
    /// The ROM BAR maps at most 16 MiB; anything larger is not a PCI option ROM.
    public static let maximumSize = 16 << 20

    public struct Image: Sendable, Encodable {
        public enum CodeType: Sendable, Encodable, Equatable {
            case x86, openFirmware, paRISC, efi, other(UInt8)

            init(_ raw: UInt8) {
                switch raw {
                case 0x00: self = .x86
                case 0x01: self = .openFirmware
                case 0x02: self = .paRISC
                case 0x03: self = .efi
                default: self = .other(raw)
                }
            }

            public var name: String {
                switch self {
                case .x86: return "x86 (legacy BIOS)"
                case .openFirmware: return "Open Firmware"
                case .paRISC: return "PA-RISC"
                case .efi: return "EFI"
                case .other(let raw): return String(format: "unknown (0x%02x)", raw)
                }
            }

            public func encode(to encoder: Encoder) throws {
                var container = encoder.singleValueContainer()
                try container.encode(name)
            }
        }

        public struct EFIInfo: Sendable, Encodable {
            public var subsystem: UInt16
            public var machine: UInt16
            public var compressed: Bool
            public var subsystemName: String {
                switch subsystem {
                case 0x0A: return "application"
                case 0x0B: return "boot service driver"
                case 0x0C: return "runtime driver"
                default: return String(format: "0x%04x", subsystem)
                }
            }
            public var machineName: String {
                switch machine {
                case 0x8664: return "x64"
                case 0x014C: return "IA32"
                case 0xAA64: return "AArch64"
                case 0x0EBC: return "EBC"
                default: return String(format: "0x%04x", machine)
                }
            }

            enum CodingKeys: String, CodingKey { case subsystem, machine, compressed }

            public func encode(to encoder: Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(subsystemName, forKey: .subsystem)
                try container.encode(machineName, forKey: .machine)
                try container.encode(compressed, forKey: .compressed)
            }
        }

        /// Byte offset of the image in the file.
        public var offset: Int
        public var length: Int
        public var codeType: CodeType
        public var vendor: String
        public var device: String
        /// PCI 3.0 device list (more device ids the image supports).
        public var deviceList: [String]
        public var classCode: String
        public var revision: UInt8
        public var codeRevision: UInt16
        public var last: Bool
        /// Legacy images: whether the bytes covered by the size field sum to 0 (mod 256).
        public var checksumValid: Bool?
        public var efi: EFIInfo?

        /// The image's id and its PCI 3.0 device list, without repeats.
        public var ids: [String] {
            var result = ["\(vendor):\(device)"]
            for other in deviceList where !result.contains("\(vendor):\(other)") { result.append("\(vendor):\(other)") }
            return result
        }
    }

    /// Bytes before the first image: a flash tool's header (nvflash and friends), not part of the ROM.
    public var headerLength: Int
    public var images: [Image]
    public var size: Int

    public var hasEFI: Bool { images.contains { $0.codeType == .efi } }
    public var hasLegacy: Bool { images.contains { $0.codeType == .x86 } }

    /// Whether `id` ("10de:1b80") is supported by any image.
    public func supports(_ id: String) -> Bool { images.contains { $0.ids.contains(id) } }

    static func u16(_ bytes: [UInt8], _ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
    static func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 { UInt32(u16(bytes, at)) | UInt32(u16(bytes, at + 2)) << 16 }

    public static func parse(_ data: Data, name: String = "ROM") throws -> OptionROM {
        let bytes = [UInt8](data)
        func fail(_ message: String) -> ProvisionError { ProvisionError(.invalidInput, "\(name): \(message)") }
        guard !bytes.isEmpty else { throw fail("the file is empty") }
        guard bytes.count <= maximumSize else {
            throw fail("\(bytes.count) bytes is larger than any PCI option ROM (the ROM BAR maps at most 16 MiB)")
        }
        // Only a file that does not start like a ROM may carry a vendor header; a ROM whose first
        // image is broken is reported as broken, not searched for a later image.
        let start: Int
        if bytes.count >= 2 && bytes[0] == 0x55 && bytes[1] == 0xAA {
            start = 0
        } else if let found = stride(from: 1, to: bytes.count - 1, by: 1).first(where: { pcirProblem(bytes, at: $0) == nil }) {
            start = found
        } else {
            throw fail("no option ROM image: no 55 AA signature with a valid PCIR structure anywhere in its \(bytes.count) bytes")
        }
        var images: [Image] = []
        var offset = start
        while true {
            if let problem = pcirProblem(bytes, at: offset) {
                throw fail("image \(images.count + 1) at offset 0x\(String(offset, radix: 16)): \(problem)")
            }
            let pcir = offset + Int(u16(bytes, offset + 0x18))
            let length = Int(u16(bytes, pcir + 0x10)) * 512
            guard length > 0 else { throw fail("image \(images.count + 1) at offset 0x\(String(offset, radix: 16)) has image length 0") }
            guard offset + length <= bytes.count else {
                throw fail(
                    "image \(images.count + 1) at offset 0x\(String(offset, radix: 16)) claims \(length) bytes but the file ends "
                        + "\(bytes.count - offset) bytes after it (truncated)")
            }
            let revision = bytes[pcir + 0x0C]
            let vendor = String(format: "%04x", u16(bytes, pcir + 4))
            var deviceList: [String] = []
            let listPointer = Int(u16(bytes, pcir + 8))
            if revision >= 3 && listPointer != 0 {
                var at = pcir + listPointer
                while at + 1 < offset + length, u16(bytes, at) != 0 {
                    deviceList.append(String(format: "%04x", u16(bytes, at)))
                    at += 2
                }
            }
            let codeType = Image.CodeType(bytes[pcir + 0x14])
            var image = Image(
                offset: offset, length: length, codeType: codeType, vendor: vendor, device: String(format: "%04x", u16(bytes, pcir + 6)),
                deviceList: deviceList, classCode: String(format: "%02x%02x%02x", bytes[pcir + 0x0F], bytes[pcir + 0x0E], bytes[pcir + 0x0D]),
                revision: revision, codeRevision: u16(bytes, pcir + 0x12), last: bytes[pcir + 0x15] & 0x80 != 0, checksumValid: nil, efi: nil)
            switch codeType {
            case .x86:
                let covered = Int(bytes[offset + 2]) * 512
                guard covered > 0, offset + covered <= bytes.count else {
                    throw fail("legacy image \(images.count + 1) at offset 0x\(String(offset, radix: 16)) has a size field of \(covered) bytes past the end")
                }
                image.checksumValid = bytes[offset..<(offset + covered)].reduce(UInt8(0), &+) == 0
            case .efi:
                guard u32(bytes, offset + 4) == 0x0EF1 else {
                    throw fail("EFI image \(images.count + 1) at offset 0x\(String(offset, radix: 16)) lacks the 0x0EF1 signature")
                }
                image.efi = Image.EFIInfo(
                    subsystem: u16(bytes, offset + 8), machine: u16(bytes, offset + 0x0A), compressed: u16(bytes, offset + 0x0C) != 0)
            default:
                break
            }
            images.append(image)
            if image.last { break }
            offset += length
            guard offset < bytes.count else {
                throw fail("the last-image bit is never set: image \(images.count) ends at the end of the file")
            }
        }
        return OptionROM(headerLength: start, images: images, size: bytes.count)
    }

    /// Why no image header with a valid PCIR starts at `offset`, or nil when one does.
    static func pcirProblem(_ bytes: [UInt8], at offset: Int) -> String? {
        guard offset + 0x1A <= bytes.count else { return "no room for an image header" }
        guard bytes[offset] == 0x55, bytes[offset + 1] == 0xAA else {
            return String(format: "no 55 AA signature (found %02X %02X)", bytes[offset], bytes[offset + 1])
        }
        let pointer = Int(u16(bytes, offset + 0x18))
        guard pointer != 0 else { return "PCIR pointer is 0" }
        guard pointer % 4 == 0 else { return "PCIR pointer 0x\(String(pointer, radix: 16)) is not 4-byte aligned" }
        guard offset + pointer + 0x18 <= bytes.count else { return "PCIR pointer 0x\(String(pointer, radix: 16)) points past the end of the file" }
        guard bytes[(offset + pointer)..<(offset + pointer + 4)].elementsEqual("PCIR".utf8) else {
            let found = String(decoding: bytes[(offset + pointer)..<(offset + pointer + 4)].map { (0x20...0x7e).contains($0) ? $0 : 0x3f }, as: UTF8.self)
            return "wrong PCIR signature \"\(found)\" at 0x\(String(offset + pointer, radix: 16))"
        }
        return nil
    }

    /// Problems that make the ROM unusable even though its structure parses.
    public var faults: [String] {
        images.enumerated().compactMap { index, image in
            image.checksumValid == false ? "legacy image \(index + 1) at offset 0x\(String(image.offset, radix: 16)) has a bad checksum" : nil
        }
    }

    /// A readable report, as `provision rom inspect` prints it.
    public var report: String {
        var out = "\(size) bytes, \(images.count) image(s)"
        if headerLength > 0 { out += ", \(headerLength) bytes of vendor header before the first image" }
        out += "\n"
        for (index, image) in images.enumerated() {
            out += "image \(index + 1) at 0x\(String(image.offset, radix: 16)): \(image.codeType.name), \(image.length) bytes, "
            out += "ids \(image.ids.joined(separator: " ")), class \(image.classCode), PCIR revision \(image.revision)"
            out += image.last ? ", last" : ""
            if let valid = image.checksumValid { out += valid ? ", checksum ok" : ", BAD CHECKSUM" }
            if let efi = image.efi {
                out += ", \(efi.subsystemName), \(efi.machineName)\(efi.compressed ? ", compressed" : "")"
            }
            out += "\n"
        }
        for fault in faults { out += "fault: \(fault)\n" }
        return out
    }
}
