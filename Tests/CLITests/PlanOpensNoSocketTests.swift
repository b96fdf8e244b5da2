import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// `provision plan` of the whole recipe, ROM step enabled, on every snapshot: in a network
/// namespace without interfaces and under strace, it succeeds and makes no socket() call at all.
/// Plugins read what lies outside the root only as declared inputs (here a ROM file beside the
/// recipe), which the core reads before the step plans.
@Suite(.serialized) struct PlanOpensNoSocketTests {
    static let recipe = Package.path("recipes/vfio-passthrough.yaml")
    static let ipxe = "/usr/lib/ipxe/qemu/efi-virtio.rom"
    /// The guest GPU `gpu: auto` picks on each snapshot (SnapshotDeviceTests).
    static let gpus = ["arch": "10de:1b80", "fedora": "1002:73bf", "debian": "10de:1c82", "ubuntu": "10de:2484", "popos": "10de:2503"]

    /// iPXE's real ROM (a legacy and an EFI image) re-labelled for a card: every image's PCIR
    /// vendor and device set, the legacy image's checksum kept at zero through its last byte.
    static func rom(for id: String) throws -> Data {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ipxe)))
        let parts = id.split(separator: ":").map { UInt16($0, radix: 16)! }
        var offset = 0
        while offset + 0x1A < bytes.count, bytes[offset] == 0x55, bytes[offset + 1] == 0xAA {
            let pcir = offset + Int(bytes[offset + 0x18]) + Int(bytes[offset + 0x19]) << 8
            for (index, value) in parts.enumerated() {
                bytes[pcir + 4 + 2 * index] = UInt8(value & 0xFF)
                bytes[pcir + 5 + 2 * index] = UInt8(value >> 8)
            }
            let length = (Int(bytes[pcir + 0x10]) + Int(bytes[pcir + 0x11]) << 8) * 512
            if bytes[pcir + 0x14] == 0 {
                let covered = Int(bytes[offset + 2]) * 512
                let sum = bytes[offset..<(offset + covered - 1)].reduce(0) { ($0 + Int($1)) & 0xFF }
                bytes[offset + covered - 1] = UInt8((256 - sum) & 0xFF)
            }
            if bytes[pcir + 0x15] & 0x80 != 0 { break }
            offset += length
        }
        return Data(bytes)
    }

    @Test(arguments: SnapshotFamily.all) func planOpensNoSocket(_ family: SnapshotFamily) throws {
        guard FileManager.default.fileExists(atPath: Self.ipxe) else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("\(Self.ipxe) is missing: scripts/install-deps.sh installs ipxe-qemu") }
            return
        }
        let temp = try TempRoot(copying: family.name)
        let romPath = "/tmp/provision-rom-\(UUID().uuidString).rom"
        try Self.rom(for: Self.gpus[family.name]!).write(to: URL(fileURLWithPath: romPath))
        defer { unlink(romPath) }
        let original = try temp.fingerprint(excludingHistory: false)
        let trace = "/tmp/provision-strace-\(UUID().uuidString)"
        defer { unlink(trace) }
        let command = [
            "unshare", "--net", "--", "strace", "-f", "-qq", "-e", "trace=socket,connect", "-o", trace, CLI.binary, "plan", Self.recipe,
            "--root", temp.path, "--var", "rom_file=\(romPath)", "--json",
        ] + family.vars
        let result = try ProcessRunner.run(command)
        let start = try #require(result.output.firstIndex(of: "{"), "\(result.output)")
        let document = try CLI.json(String(result.output[start...]))
        let steps = try #require(document["steps"] as? [[String: Any]], "\(result.output)")
        #expect(steps.first { $0["id"] as? String == "rom-from-file" }?["status"] as? String == "changed", "\(result.output)")
        #expect(result.status == 0, "\(result.output)")
        let calls = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n").filter { $0.contains("socket(") || $0.contains("connect(") }
        #expect(calls.isEmpty, "plan made socket calls:\n\(calls.joined(separator: "\n"))")
        #expect(try temp.fingerprint(excludingHistory: false) == original)
    }

    /// A download is an input too, fetched by the core before the step plans: with no network it
    /// fails there, naming the URL's line, and nothing changes.
    @Test func aDownloadWithoutNetworkFailsBeforeTheStepPlans() throws {
        let temp = try TempRoot(copying: "arch")
        let original = try temp.fingerprint(excludingHistory: false)
        let result = try ProcessRunner.run([
            "unshare", "--net", "--", CLI.binary, "apply", Self.recipe, "--root", temp.path,
            "--var", "rom_url=https://127.0.0.1:9/vbios.rom", "--var", "rom_sha256=" + String(repeating: "0", count: 64),
        ])
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.contains("vfio-passthrough.yaml:104:12: download of https://127.0.0.1:9/vbios.rom failed"), "\(result.output)")
        #expect(try temp.fingerprint(excludingHistory: false) == original)
    }
}
