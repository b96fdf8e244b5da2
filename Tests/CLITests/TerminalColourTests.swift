import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// Colour where a person reads it, plain text anywhere else: on a terminal (util-linux `script`),
/// piped, with NO_COLOR, and with --color=always|never overriding both.
@Suite struct TerminalColourTests {
    let recipe = Package.path("recipes/vfio-passthrough.yaml")
    let escape = "\u{1B}["

    @Test func colourOnATerminalNoneWhenPipedOrWithNoColor() throws {
        let temp = try TempRoot(copying: "arch")
        let plan = ["plan", recipe, "--root", temp.path]

        let terminal = try Terminal.run(plan)
        #expect(terminal.status == 0)
        #expect(terminal.line("modprobe-vfio      modprobe.vfio")?.text.contains("\u{1B}[33mchanged") == true, "\(terminal.text)")
        #expect(terminal.text.contains("\u{1B}[31m-GRUB_CMDLINE_LINUX_DEFAULT=\"loglevel=3 quiet\""), "removed lines red")
        #expect(terminal.text.contains("\u{1B}[32m+options vfio-pci ids=10de:1b80,10de:10f0"), "added lines green")
        #expect(terminal.text.contains("\u{1B}[1m--- a/etc/default/grub"), "file headers bold")
        #expect(terminal.text.contains("\u{1B}[33mwarning:\u{1B}[0m [kernel-cmdline]"), "warnings yellow")
        #expect(terminal.text.contains("\u{1B}[33mwould be skipped"), "handler statuses coloured")

        let piped = try CLI.run(plan)
        #expect(piped.status == 0)
        #expect(!piped.stdout.contains(escape) && !piped.stderr.contains(escape))
        #expect(piped.stdout.contains("\n  changed  modprobe-vfio"))

        let noColor = try Terminal.run(plan, environment: ["NO_COLOR": "1"])
        #expect(noColor.status == 0)
        #expect(!noColor.text.contains(escape), "\(noColor.text)")
        #expect(noColor.text.contains("-GRUB_CMDLINE_LINUX_DEFAULT"))

        let never = try Terminal.run(plan + ["--color=never"])
        #expect(!never.text.contains(escape))
        let always = try CLI.run(plan + ["--color=always"])
        #expect(always.stdout.contains("\u{1B}[32m+options vfio-pci"), "--color=always colours a pipe")
        let forced = try Terminal.run(plan + ["--color=always"], environment: ["NO_COLOR": "1"])
        #expect(forced.text.contains(escape), "--color=always wins over NO_COLOR")

        let bad = try CLI.run(plan + ["--color=maybe"])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("--color"), "\(bad.stderr)")
    }

    @Test func errorsAreRedOnATerminalAndFilesNeverGetEscapes() throws {
        let temp = try TempRoot(copying: "debian")
        let refused = try Terminal.run(["apply", recipe, "--root", temp.path])
        #expect(refused.status == 1)
        #expect(refused.text.contains("provision: \u{1B}[31merror:\u{1B}[0m "), "\(refused.text)")

        let arch = try TempRoot(copying: "arch")
        let apply = try CLI.run(["apply", recipe, "--root", arch.path, "--color=always"])
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(apply.stdout.contains(escape))
        for path in ["/etc/default/grub", "/etc/modprobe.d/vfio.conf", "/etc/mkinitcpio.conf", "/etc/libvirt/qemu/win10.xml"] {
            #expect(arch.read(path)?.contains("\u{1B}") == false, "\(path)")
        }
        let record = try arch.git("show", "HEAD:.provision/run.json")
        #expect(!record.contains("\\u001b") && !record.contains("\u{1B}"))
    }

    @Test func longOutputGoesThroughThePagerOnATerminal() throws {
        let temp = try TempRoot(copying: "arch")
        #expect(try CLI.run(["apply", recipe, "--root", temp.path]).status == 0)
        let show = ["show", "1", "--root", temp.path]
        // A pager that marks every line it is given: the output went through it.
        let paged = try Terminal.run(show, environment: ["PAGER": "sed 's/^/PAGED: /'"])
        #expect(paged.status == 0)
        #expect(paged.lines.count > 40)
        #expect(paged.lines.filter { !$0.text.isEmpty }.allSatisfy { $0.text.hasPrefix("PAGED: ") }, "\(paged.text.prefix(400))")
        let unpaged = try Terminal.run(show + ["--no-pager"], environment: ["PAGER": "sed 's/^/PAGED: /'"])
        #expect(!unpaged.text.contains("PAGED: "))
        #expect(unpaged.text.contains("+MODULES=(vfio_pci vfio vfio_iommu_type1)"))
        let piped = try CLI.run(show, environment: ["PAGER": "sed 's/^/PAGED: /'"])
        #expect(!piped.stdout.contains("PAGED: "), "no pager when stdout is not a terminal")
    }
}
