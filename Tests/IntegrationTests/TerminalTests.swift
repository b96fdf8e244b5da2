import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// What a person sees on a terminal while a run does slow work: in a debootstrapped Debian 12 root
/// the real update-initramfs rebuilds the image (seconds), and the step lines, the handler's start
/// and its own output are on the screen before it ends, not all at once afterwards.
@Suite(.serialized) struct TerminalTests {
    @Test func stepAndHandlerLinesAppearWhileTheHandlerRuns() throws {
        guard let root = try debootstrappedRoot("bookworm-initramfs-tools") else { return }
        try root.write("/tmp/vfio.yaml", """
            name: vfio-initramfs
            steps:
              - {id: modprobe, uses: modprobe.vfio, with: {ids: "10de:1b80,10de:10f0"}}
              - {id: initramfs, uses: initrd.modules}
            """)
        let result = try Terminal.run(["apply", root.real("/tmp/vfio.yaml"), "--root", root.path])
        #expect(result.status == 0, "\(result.text)")
        let step = try #require(result.line("initramfs  initrd.modules"), "\(result.text)")
        let started = try #require(result.line("handler: update-initramfs -u -k all: running"), "\(result.text)")
        let ended = try #require(result.line("handler: update-initramfs -u -k all: \u{1B}[32mran\u{1B}[0m ("), "\(result.text)")
        let output = result.lines.filter { $0.text.contains("    | ") && $0.text.contains("update-initramfs: Generating /boot/initrd.img-") }
        #expect(!output.isEmpty, "the handler's own output, indented: \(result.text)")
        // The rebuild takes seconds; the lines before it were on the screen all that time.
        #expect(ended.time - started.time >= 1.0, "started at \(started.time) s, ended at \(ended.time) s")
        #expect(step.time <= started.time && ended.time - step.time >= 1.0)
        #expect(output.allSatisfy { $0.time >= started.time && $0.time <= ended.time })
        #expect(output.contains { $0.time < ended.time - 0.2 }, "output streamed while the handler ran, not after it")
        // Its duration is told, and the order is the run's: steps, diffs, handler, summary.
        #expect(ended.text.hasSuffix(" s)"), "\(ended.text)")
        let summary = try #require(result.line("run 1 recorded as"))
        #expect(summary.time >= ended.time)
        // Colour on a terminal: the status word and the diff.
        #expect(step.text.contains("\u{1B}[33mchanged"), "\(step.text)")
        #expect(result.text.contains("\u{1B}[32m+vfio_pci"), "added lines green")
        // None of it in the files written.
        #expect(root.read("/etc/initramfs-tools/modules")?.contains("\u{1B}") == false)
    }
}
