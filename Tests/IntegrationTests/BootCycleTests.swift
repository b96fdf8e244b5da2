import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// Proven on a machine that boots: a Debian 12 guest in QEMU (q35, emulated Intel IOMMU, software
/// emulation) whose "card" is a VGA function and an HDA audio function on one slot. The recipe is
/// applied on the guest's own `/` (its handlers rebuild the initramfs and grub.cfg in the guest), and
/// after each reboot the guest shows what users want: both functions on vfio-pci, the command line
/// carrying the run's parameters; after rollback and a reboot, the functions back on their own
/// drivers; after a power cut in the middle of an apply, the next apply recovers and the host boots
/// into the applied state with a clean history. scripts/vm/stage.sh is the guest's side.
@Suite(.serialized) struct BootCycleTests {
    static let card = ["0000:00:06.0", "0000:00:06.1"]

    func statuses(_ document: [String: Any]?) -> [String] {
        ((document?["checks"] as? [[String: Any]]) ?? []).map { "\($0["name"] ?? "?")=\($0["status"] ?? "?")" }
    }

    func handlers(_ document: [String: Any]?) -> [String: String] {
        var result: [String: String] = [:]
        for handler in (document?["handlers"] as? [[String: Any]]) ?? [] {
            result[((handler["argv"] as? [String]) ?? []).joined(separator: " ")] = handler["status"] as? String
        }
        return result
    }

    @Test(
        .enabled(if: VirtualMachine.qemu != nil, "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)"),
        arguments: VirtualMachine.generators)
    func applyRebootRollbackPowerCut(generator: String) throws {
        let started = Date()
        // What the run puts on the command line, and the handler that rebuilds the images.
        let parameters: [Substring] = ["intel_iommu=on", "iommu=pt"] + (generator == "dracut" ? ["rd.driver.pre=vfio-pci"] : [])
        let rebuild = generator == "dracut" ? "dracut --regenerate-all --force" : "update-initramfs -u -k all"
        let vm = try VirtualMachine(generator: generator, vars: [])
        print("boot-cycle: \(generator), MODULES=\(VirtualMachine.modules), logs in \(vm.logs)")
        defer {
            let total = Date().timeIntervalSince(started)
            let boots = vm.boots.map { "\($0.name) \(Int($0.seconds)) s" }.joined(separator: ", ")
            print("boot-cycle: whole test \(Int(total)) s (\(boots))")
        }

        // 1: the guest sees the card alone in its group with the IOMMU on; apply for real.
        let first = try vm.boot("stage1")
        try #require(first.has("PROVISION-STAGE 1 END"), "\(first.evidence)")
        let devices = try #require(first.json("devices"), "\(first.evidence)")
        #expect(devices["iommu_active"] as? Bool == true)
        let gpus = (devices["gpus"] as? [[String: Any]]) ?? []
        let card = try #require(gpus.first { ($0["device"] as? [String: Any])?["address"] as? String == Self.card[0] }, "\(gpus)")
        #expect(card["verdict"] as? String == "alone", "\(card)")
        #expect(((card["functions"] as? [[String: Any]]) ?? []).compactMap { $0["address"] as? String } == Self.card)
        #expect(gpus.contains { ($0["device"] as? [String: Any])?["boot_vga"] as? Bool == true }, "a boot VGA for the host")
        #expect(first.drivers == [Self.card[0]: "bochs-drm", Self.card[1]: "snd_hda_intel"], "\(first.drivers)")
        #expect(first.exit("apply") == 0, "\(first.evidence)")
        let applied = handlers(first.json("apply"))
        #expect(applied[rebuild] == "ran", "\(applied)")
        #expect(applied["update-grub"] == "ran", "\(applied)")

        // 2: rebooted into what the run wrote: verify passes; roll back.
        let second = try vm.boot("stage2")
        try #require(second.has("PROVISION-STAGE 2 END"), "\(second.evidence)")
        for parameter in parameters { #expect(second.cmdline.contains(parameter), "\(second.cmdline)") }
        #expect(second.drivers == [Self.card[0]: "vfio-pci", Self.card[1]: "vfio-pci"], "\(second.drivers)")
        #expect(second.exit("verify") == 0)
        #expect(statuses(second.json("verify")) == ["iommu=pass", "cmdline=pass", "vfio-pci=pass", "initramfs=pass"], "\(second.evidence)")
        #expect(second.exit("rollback") == 0, "\(second.evidence)")
        let rolledBack = handlers(second.json("rollback"))
        #expect(rolledBack[rebuild] == "ran", "\(rolledBack)")
        #expect(rolledBack["update-grub"] == "ran", "\(rolledBack)")

        // 3: rebooted into the original state: the card on its own drivers, verify says what is
        // missing, history has both runs. Then (4) apply again, and cut the power while the
        // initramfs is being rebuilt.
        let third = try vm.boot("stage3-4", cutPowerAfter: "PROVISION-MARK handler initramfs running", delay: 5)
        try #require(third.has("PROVISION-STAGE 3 END"), "\(third.evidence)")
        for parameter in parameters { #expect(!third.cmdline.contains(parameter), "\(third.cmdline)") }
        #expect(third.drivers == [Self.card[0]: "bochs-drm", Self.card[1]: "snd_hda_intel"], "\(third.drivers)")
        #expect(third.exit("verify") == 4)
        #expect(statuses(third.json("verify")) == ["iommu=pass", "cmdline=fail", "vfio-pci=fail", "initramfs=fail"], "\(third.evidence)")
        let runs = (third.jsonArray("history") ?? []).compactMap { $0["action"] as? String }
        #expect(runs.filter { $0 == "apply" || $0 == "rollback" } == ["rollback", "apply"], "\(runs)")
        #expect(third.exit("fsck-before-cut") == 0, "\(third.evidence)")
        #expect(third.cut, "the power was cut during the apply")
        #expect(!third.has("PROVISION-MARK apply was not interrupted"))
        #expect(third.exit("apply-cut") == nil)

        // 5: the host still boots; apply recovers the interrupted run first, then applies.
        let fifth = try vm.boot("stage5")
        try #require(fifth.has("PROVISION-STAGE 5 END"), "\(fifth.evidence)")
        #expect(fifth.exit("journal") == 0, "the cut run's journal survived the power cut: \(fifth.evidence)")
        #expect(fifth.exit("apply-recover") == 0, "\(fifth.evidence)")
        let recovered = fifth.json("apply-recover")
        #expect(recovered?["recovered"] as? Int != nil, "apply says it recovered the interrupted run: \(fifth.evidence)")
        let reapplied = handlers(recovered)
        #expect(reapplied[rebuild] == "ran", "\(reapplied)")
        #expect(reapplied["update-grub"] == "ran", "\(reapplied)")

        // 6: rebooted into the applied state; the history is sound.
        let sixth = try vm.boot("stage6")
        try #require(sixth.has("PROVISION-STAGE 6 END"), "\(sixth.evidence)")
        for parameter in parameters { #expect(sixth.cmdline.contains(parameter), "\(sixth.cmdline)") }
        #expect(sixth.drivers == [Self.card[0]: "vfio-pci", Self.card[1]: "vfio-pci"], "\(sixth.drivers)")
        #expect(sixth.exit("verify") == 0)
        #expect(statuses(sixth.json("verify")) == ["iommu=pass", "cmdline=pass", "vfio-pci=pass", "initramfs=pass"], "\(sixth.evidence)")
        #expect(sixth.exit("fsck") == 0, "\(sixth.evidence)")
        let all = (sixth.jsonArray("history") ?? []).compactMap { $0["action"] as? String }.filter { $0 != "drift" && $0 != "pre-state" }
        #expect(all == ["apply", "recover", "rollback", "apply"], "\(all)")

        for boot in [first, second, third, fifth, sixth] { print("boot-cycle: \(boot.name) ttyS1:\n\(boot.excerpt)") }
    }
}
