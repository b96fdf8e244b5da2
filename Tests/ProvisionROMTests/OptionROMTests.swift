import Foundation
import ProvisionCore
import ProvisionROM
import ProvisionTestSupport
import Testing

/// Real option ROMs from Debian packages (ipxe-qemu, seabios), read field by field, and corrupted
/// copies of them, each rejected with a message naming the fault.
@Suite struct OptionROMTests {
    static let ipxe = "/usr/lib/ipxe/qemu/efi-virtio.rom"
    static let vgabios = "/usr/share/seabios/vgabios-stdvga.bin"

    static func load(_ path: String) throws -> Data {
        try #require(FileManager.default.contents(atPath: path), "\(path) missing: scripts/install-deps.sh installs ipxe-qemu and seabios")
    }

    @Test func ipxeVirtioHasALegacyAndAnEFIImage() throws {
        let rom = try OptionROM.parse(try Self.load(Self.ipxe))
        #expect(rom.size == 249_344)
        #expect(rom.headerLength == 0)
        #expect(rom.images.count == 2)
        let legacy = rom.images[0], efi = rom.images[1]
        #expect(legacy.offset == 0)
        #expect(legacy.codeType == .x86)
        #expect(legacy.length == 75_776)
        #expect(legacy.vendor == "1af4" && legacy.device == "1041")
        #expect(legacy.deviceList == ["1041"], "PCI 3.0 device list")
        #expect(legacy.revision == 3)
        #expect(legacy.classCode == "020000")
        #expect(legacy.last == false)
        #expect(legacy.checksumValid == true)
        #expect(efi.offset == 0x12800)
        #expect(efi.codeType == .efi)
        #expect(efi.length == 173_568)
        #expect(efi.ids == ["1af4:1041"])
        #expect(efi.last)
        #expect(efi.efi?.subsystemName == "boot service driver")
        #expect(efi.efi?.machineName == "x64")
        #expect(efi.efi?.compressed == false)
        #expect(efi.checksumValid == nil)
        #expect(rom.hasEFI && rom.hasLegacy && rom.faults.isEmpty)
        #expect(rom.supports("1af4:1041") && !rom.supports("1af4:1000"))
    }

    @Test func seabiosStdVGAIsOneLegacyImage() throws {
        let rom = try OptionROM.parse(try Self.load(Self.vgabios))
        #expect(rom.size == 39_936)
        #expect(rom.images.count == 1)
        let image = rom.images[0]
        #expect(image.codeType == .x86)
        #expect(image.vendor == "1234" && image.device == "1111")
        #expect(image.classCode == "030000")
        #expect(image.length == 39_936)
        #expect(image.last)
        #expect(image.checksumValid == true)
        #expect(!rom.hasEFI)
    }

    /// Corrupted copies of the iPXE ROM, and what the rejection must name.
    static let corruptions: [(String, String)] = [
        ("bad legacy checksum", "legacy image 1 at offset 0x0 has a bad checksum"),
        ("truncated image", "claims 173568 bytes but the file ends"),
        ("PCIR pointer out of range", "PCIR pointer 0xfff0 points past the end of the file"),
        ("PCIR pointer unaligned", "PCIR pointer 0x1d is not 4-byte aligned"),
        ("wrong PCIR signature", "wrong PCIR signature \"PCIX\""),
        ("last-image bit never set", "the last-image bit is never set"),
        ("zero-length file", "the file is empty"),
        ("random bytes", "no option ROM image: no 55 AA signature with a valid PCIR structure anywhere"),
        ("larger than any real ROM", "larger than any PCI option ROM"),
    ]

    static func corrupt(_ kind: String, _ original: Data) -> Data {
        var bytes = [UInt8](original)
        switch kind {
        case "bad legacy checksum": bytes[0x100] &+= 1
        case "truncated image": bytes = Array(bytes[0..<200_000])
        case "PCIR pointer out of range": bytes[0x18] = 0xF0; bytes[0x19] = 0xFF
        case "PCIR pointer unaligned": bytes[0x18] = 0x1D; bytes[0x19] = 0x00
        case "wrong PCIR signature": bytes[0x1C + 3] = UInt8(ascii: "X")
        case "last-image bit never set": bytes[0x12800 + 0x1C + 0x15] &= 0x7F
        case "zero-length file": bytes = []
        case "random bytes":
            var generator = SystemRandomNumberGenerator()
            bytes = (0..<65_536).map { _ in UInt8.random(in: 0...255, using: &generator) }
            bytes[0] = 0
        case "larger than any real ROM": bytes += [UInt8](repeating: 0xFF, count: 17 << 20)
        default: break
        }
        return Data(bytes)
    }

    @Test(arguments: corruptions)
    func corruptedCopyIsRejected(kind: String, message: String) throws {
        // The small VGA BIOS, so a 16-bit PCIR pointer can point past its end.
        let base = kind == "PCIR pointer out of range" ? Self.vgabios : Self.ipxe
        let data = Self.corrupt(kind, try Self.load(base))
        do {
            let rom = try OptionROM.parse(data, name: kind)
            #expect(rom.faults.contains { $0.contains(message) }, "\(kind): parsed without the fault (\(rom.faults))")
        } catch {
            #expect("\(error)".contains(message), "\(kind): \(error)")
        }
    }

    @Test func vendorHeaderIsRecognised() throws {
        let original = try Self.load(Self.vgabios)
        let header = Data("NVGI".utf8) + Data(repeating: 0, count: 0x17C)
        let rom = try OptionROM.parse(header + original)
        #expect(rom.headerLength == 0x180)
        #expect(rom.images.count == 1 && rom.images[0].offset == 0x180)
    }

    @Test func inspectCommandReportsAndFails() throws {
        let good = try CLI.run(["rom", "inspect", Self.ipxe, "--json"])
        #expect(good.status == 0, "\(good.stderr)")
        let document = try CLI.json(good.stdout)
        #expect(document["valid"] as? Bool == true)
        let images = try #require((document["rom"] as? [String: Any])?["images"] as? [[String: Any]])
        #expect(images.map { $0["code_type"] as? String } == ["x86 (legacy BIOS)", "EFI"])
        let human = try CLI.run(["rom", "inspect", Self.vgabios])
        #expect(human.stdout.contains("image 1 at 0x0: x86 (legacy BIOS), 39936 bytes, ids 1234:1111, class 030000"))

        let temp = try TempRoot()
        try Self.corrupt("bad legacy checksum", try Self.load(Self.ipxe)).write(to: URL(fileURLWithPath: temp.real("/bad.rom")))
        let bad = try CLI.run(["rom", "inspect", temp.real("/bad.rom")])
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("BAD CHECKSUM"))
        #expect(bad.stderr.contains("has a bad checksum"))
        let badJSON = try CLI.run(["rom", "inspect", temp.real("/bad.rom"), "--json"])
        #expect(badJSON.status == 1)
        let badDocument = try CLI.json(badJSON.stdout)
        #expect(badDocument["valid"] as? Bool == false && badDocument["schema"] as? Int == 1, "one document: the report")
        #expect(badJSON.stderr.contains("has a bad checksum"))
        try Data().write(to: URL(fileURLWithPath: temp.real("/empty.rom")))
        let empty = try CLI.run(["rom", "inspect", temp.real("/empty.rom")])
        #expect(empty.status == 1)
        #expect(empty.stderr.contains("the file is empty"))
    }

    @Test func sha256MatchesSha256sum() throws {
        for path in [Self.ipxe, Self.vgabios] {
            let expected = try ProcessRunner.run(["sha256sum", path]).output.split(separator: " ")[0]
            #expect(SHA256.hex(try Self.load(path)) == expected)
        }
        #expect(SHA256.hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}
