import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// Every refusal's stderr, word for word, against Tests/CLITests/Golden/messages/NAME.stderr (the
/// temporary root shown as ROOT, paths in this repository relative to it). Nothing on the host
/// changes in any of them. PROVISION_UPDATE_GOLDEN=1 rewrites the files (scripts/update-golden.sh);
/// review the diff by eye. The texts they replaced are checked gone.
@Suite struct RefusalGoldenTests {
    static let recipe = Package.path("recipes/vfio-passthrough.yaml")

    struct Case: CustomStringConvertible, Sendable {
        var name: String
        var snapshot: String
        var arguments: @Sendable (TempRoot) throws -> [String]
        var status: Int32
        /// Texts of the old messages that misled (before this CLI), which must be gone.
        var gone: [String] = []
        var description: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "shared-iommu-group", snapshot: "debian", arguments: { ["apply", recipe, "--root", $0.path] }, status: 1,
            gone: ["set allow_shared_group: true"]),
        Case(
            name: "twin-gpus", snapshot: "ubuntu", arguments: { ["apply", recipe, "--root", $0.path] }, status: 1,
            gone: ["add a vfio.bind-address step", "vfio-passthrough.yaml:36:"]),
        Case(
            name: "var-refused-by-its-option", snapshot: "arch",
            arguments: { ["plan", recipe, "--root", $0.path, "--var", "identical_ids=whatever", "--var", "allow_shared_group=maybe"] },
            status: 1),
        Case(name: "var-undeclared", snapshot: "arch", arguments: { ["plan", recipe, "--root", $0.path, "--var", "gpus=auto"] }, status: 1),
        Case(
            name: "recipe-missing", snapshot: "arch", arguments: { ["plan", $0.real("/nope.yaml"), "--root", $0.path] }, status: 1,
            gone: ["no such file\n"]),
        Case(
            name: "recipe-errors-all-at-once", snapshot: "arch",
            arguments: { root in
                try root.write("/bad.yaml", """
                    name: bad
                    vars: {flag: "true"}
                    steps:
                      - {id: a, uses: file.content, with: {path: /etc/a, content: a, mode: "999"}}
                      - {id: b, uses: file.contnet, with: {path: /etc/b}}
                      - {id: c, uses: file.content, when: "${facts.os.id} = debian", with: {path: /etc/c, content: c}}
                      - {id: d, uses: file.content, with: {path: /etc/d, content: "${flg}", colour: red}}
                      - {id: e, uses: file.content, when: debian, with: {path: /etc/e, content: e}}
                    """)
                return ["plan", root.real("/bad.yaml"), "--root", root.path]
            }, status: 1),
        Case(
            name: "rollback-refused-hand-edit", snapshot: "arch",
            arguments: { root in
                let apply = try CLI.run(["apply", recipe, "--root", root.path])
                guard apply.status == 0 else { throw ProvisionError(.io, apply.stderr) }
                try root.write("/etc/modprobe.d/vfio.conf", "options vfio-pci ids=10de:1b80\n")
                return ["rollback", "--root", root.path]
            }, status: 3),
        Case(
            name: "var-file-not-a-value", snapshot: "arch",
            arguments: { root in
                try root.write("/vars.yaml", "gpu: auto\ninput_devices: [/dev/input/by-id/kbd]\n")
                return ["plan", recipe, "--root", root.path, "--var-file", root.real("/vars.yaml")]
            }, status: 1),
        Case(name: "step-unknown", snapshot: "arch", arguments: { ["plan", recipe, "--root", $0.path, "--step", "kernel"] }, status: 1),
        Case(
            name: "rollback-nothing-recorded", snapshot: "arch", arguments: { ["rollback", "--root", $0.path, "--dry-run"] }, status: 1),
    ]

    static func normalize(_ text: String, root: TempRoot) -> String {
        text.replacingOccurrences(of: root.path, with: "ROOT").replacingOccurrences(of: Package.root + "/", with: "")
    }

    @Test(arguments: cases) func refusal(_ refusal: Case) throws {
        let root = try TempRoot(copying: refusal.snapshot)
        let arguments = try refusal.arguments(root)
        let before = try root.fingerprint(excludingHistory: false)
        let result = try CLI.run(arguments)
        #expect(result.status == refusal.status, "\(result.stderr)")
        #expect(try root.fingerprint(excludingHistory: false) == before, "a refusal changes nothing")
        let stderr = Self.normalize(result.stderr, root: root)
        for old in refusal.gone { #expect(!stderr.contains(old), "the old message \"\(old)\" is gone") }
        let golden = Package.path("Tests/CLITests/Golden/messages/\(refusal.name).stderr")
        if ProcessInfo.processInfo.environment["PROVISION_UPDATE_GOLDEN"] == "1" {
            try FileManager.default.createDirectory(atPath: (golden as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try stderr.write(toFile: golden, atomically: true, encoding: .utf8)
            return
        }
        let expected = try String(contentsOfFile: golden, encoding: .utf8)
        #expect(stderr == expected, "\(golden) differs; PROVISION_UPDATE_GOLDEN=1 rewrites it")
        // The same refusal as JSON: the error, every error found with it, and the exit code.
        let json = try CLI.run(arguments + ["--json"])
        #expect(json.status == refusal.status)
        let document = try CLI.json(json.stdout)
        #expect(document["schema"] as? Int == 1)
        #expect(document["exit_code"] as? Int == Int(refusal.status))
        let errors = try #require(document["errors"] as? [[String: Any]])
        #expect(errors.count == stderr.split(separator: "\n").filter { $0.hasPrefix("provision: error:") }.count)
    }
}
