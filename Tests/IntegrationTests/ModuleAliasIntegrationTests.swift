import Foundation
import ProvisionCore
import ProvisionDevices
import ProvisionTestSupport
import Testing

/// Module alias resolution held to the real consumer: for every function of every snapshot (and
/// the devices of the boot test's QEMU guest), the modules provision finds in a real Debian 12
/// kernel's modules.alias and modules.builtin.modinfo are exactly what that root's
/// `modprobe -R MODALIAS` prints.
@Suite struct ModuleAliasIntegrationTests {
    @Test func resolutionMatchesModprobe() throws {
        let roots = ProcessInfo.processInfo.environment["PROVISION_TEST_ROOTS"] ?? "/var/cache/provision-tests"
        let path = "\(roots)/bookworm-initramfs-tools"
        guard FileManager.default.fileExists(atPath: path + "/.complete") else {
            if ProcessInfo.processInfo.environment["CI"] != nil { Issue.record("\(path) is missing: scripts/make-test-roots.sh builds it") }
            return
        }
        let host = try HostView(root: HostRoot(path))
        let kernel = try #require(host.facts.lookup(["kernels"])?.strings?.last)
        let table = try ModuleAliases.read(host, kernel: kernel)
        var modaliases: [String] = []
        for snapshot in ["arch", "fedora", "debian", "ubuntu", "popos"] {
            modaliases += SysfsScanner.scan(try HostView(root: HostRoot(Package.path("snapshots/\(snapshot)")))).compactMap(\.modalias)
        }
        modaliases += [
            "pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00",  // QEMU stdvga (bochs)
            "pci:v00001AF4d00001050sv00001AF4sd00001100bc03sc00i00",  // virtio-vga
            "pci:v00008086d0000293Esv00001AF4sd00001100bc04sc03i00",  // ich9-intel-hda
            "pci:v00001B36d00000100sv00001AF4sd00001100bc03sc00i00",  // qxl-vga
        ]
        var compared = 0
        for modalias in Set(modaliases).sorted() {
            let result = try ProcessRunner.run(
                ["chroot", path, "modprobe", "-S", kernel, "-R", modalias], environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
            let expected = result.status == 0 ? Set(result.output.split(separator: "\n").map { $0.replacingOccurrences(of: "-", with: "_") }) : []
            #expect(Set(table.modules(for: modalias).map(\.module)) == expected, "\(modalias): modprobe says \(result.output)")
            compared += 1
        }
        #expect(compared > 30)
    }
}
