import ArgumentParser
import Foundation
import ProvisionCore
import ProvisionVerify

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "After the reboot: check the running host (IOMMU, /proc/cmdline, vfio-pci binding, initramfs contents).",
        discussion: "Expectations come from the last apply in history, or from the root's devices. Exit 0 when nothing failed, 4 when a check failed.")

    @OptionGroup var global: GlobalOptions

    struct Document: Encodable {
        var root: String
        var expectedFrom: String
        var passed: Bool
        var checks: [Verifier.Check]
    }

    func run() throws {
        var failed = false
        let console = global.console
        try runReporting(console) {
            let engine = try global.engine()
            let verifier = try Verifier(root: engine.root)
            let expected = try verifier.expectations(from: try engine.lastApplied())
            let checks = verifier.run(expected)
            failed = checks.contains { $0.status == .fail }
            if global.json {
                Output.printJSON(Document(root: engine.root.path, expectedFrom: expected.source, passed: !failed, checks: checks))
                return
            }
            var out = "verify \(engine.root.path) (expected: \(expected.source))\n"
            for check in checks {
                out += "  \(console.status(check.status.rawValue.uppercased(), width: 4))  "
                    + "\(check.name.padding(toLength: 9, withPad: " ", startingAt: 0))  \(check.detail)\n"
                if let next = check.next, check.status != .pass { out += "        next: \(next)\n" }
            }
            out += failed ? console.paint("some checks failed", .red) + "\n" : console.paint("all checks passed", .green) + "\n"
            console.out(out)
        }
        if failed { throw ExitCode(4) }
    }
}
