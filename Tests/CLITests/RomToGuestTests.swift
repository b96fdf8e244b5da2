import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// The ROM travels from rom.fetch to the guest: a real option ROM (iPXE's, from Debian's
/// ipxe-qemu; its ids stand in for the card's) is verified and installed, and libvirt.domain puts
/// its installed path on the GPU function's hostdev, not on the audio function's.
@Suite struct RomToGuestTests {
    @Test func fetchedRomLandsOnTheGPUHostdev() throws {
        let rom = "/usr/lib/ipxe/qemu/efi-virtio.rom"
        guard FileManager.default.fileExists(atPath: rom) else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("\(rom) is missing: scripts/install-deps.sh installs ipxe-qemu") }
            return
        }
        let temp = try TempRoot(copying: "arch")
        try temp.write("/tmp/rom.yaml", """
            name: rom-to-guest
            vars: {rom_file: "\(rom)"}
            steps:
              - {id: select-gpu, uses: gpu.select}
              - {id: rom, uses: rom.fetch, when: "${rom_file}", with: {file: "${rom_file}", ids: ["1af4:1041"]}}
              - {id: guest, uses: libvirt.domain, with: {domain: win10}}
            """)
        let apply = try CLI.run(["apply", temp.real("/tmp/rom.yaml"), "--root", temp.path, "--json"])
        try #require(apply.status == 0, "\(apply.stderr)")
        let installed = try #require(
            try FileManager.default.contentsOfDirectory(atPath: temp.real("/var/lib/provision/roms")).first { $0.hasPrefix("1af4-1041-") })
        #expect(FileManager.default.contentsEqual(atPath: temp.real("/var/lib/provision/roms/\(installed)"), andPath: rom))
        let xml = try #require(temp.read("/etc/libvirt/qemu/win10.xml"))
        #expect(xml.contains("""
                    <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
                  </source>
                  <rom bar='on' file='/var/lib/provision/roms/\(installed)'/>
                </hostdev>
            """), "\(xml)")
        #expect(xml.components(separatedBy: "<rom ").count == 2, "only the GPU function carries the ROM")

        let skipped = try CLI.run(["plan", temp.real("/tmp/rom.yaml"), "--root", temp.path, "--var", "rom_file=", "--json"])
        let steps = try #require(try CLI.json(skipped.stdout)["steps"] as? [[String: Any]])
        #expect(steps.first { $0["id"] as? String == "rom" }?["status"] as? String == "skipped")
    }
}
