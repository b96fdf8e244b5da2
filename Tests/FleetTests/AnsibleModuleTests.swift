import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// The collection in contrib/ansible driven by a real ansible-playbook over real ssh into the test
/// fleet's hosts, whose provision_root is a copy of a snapshot and whose provision is this build.
@Suite(
    .serialized,
    .enabled(if: TestFleet.available, Comment(rawValue: TestFleet.missing)),
    .enabled(if: Ansible.available, Comment(rawValue: Ansible.missing)))
struct AnsibleModuleTests {
    static let families = ["arch", "fedora"]

    @Test func checkApplyAgainAndRollBackWithAnsiblePlaybook() throws {
        let fleet = try TestFleet(count: Self.families.count)
        let roots = try Self.families.map { try TempRoot(copying: $0) }
        let originals = try roots.map { try $0.fingerprint() }
        // What the CLI itself makes of each snapshot: the module must give the same bytes.
        let expected = try Self.families.map { family -> [String: String] in
            let root = try TempRoot(copying: family)
            let result = try CLI.run(["apply", Package.path("recipes/vfio-passthrough.yaml"), "--root", root.path])
            #expect(result.status == 0, "\(result.stderr)")
            return try root.fingerprint()
        }
        var hostVars: [String: [String: String]] = [:]
        for (host, root) in zip(fleet.hosts, roots) {
            hostVars[host.name] = [
                "provision_root": root.path, "provision_path": CLI.binary, "ansible_python_interpreter": "/usr/bin/python3",
                "ansible_remote_tmp": host.directory + "/ansible-tmp",
            ]
        }
        let inventory = try fleet.writeInventory(to: fleet.state.path + "/inventory.yml", hostVars: hostVars, withKnownHosts: true)
        let playbook = fleet.state.path + "/vfio.yml"
        try """
            - hosts: all
              gather_facts: false
              tasks:
                - name: VFIO passthrough
                  provision.vfio.provision_apply:
                    recipe: \(Package.path("recipes/vfio-passthrough.yaml"))
                    root: "{{ provision_root }}"
                    provision_path: "{{ provision_path }}"
                    state: "{{ provision_state | default('applied') }}"

            """.write(toFile: playbook, atomically: true, encoding: .utf8)

        func play(_ extra: [String]) throws -> (recap: [String: [String: Int]], output: String) {
            let result = try Ansible.run(
                "ansible-playbook", ["-i", inventory, playbook] + extra,
                environment: ["ANSIBLE_COLLECTIONS_PATH": Package.path("contrib/ansible"), "ANSIBLE_STDOUT_CALLBACK": "default"],
                prefix: fleet.controller([]), timeout: 600)
            #expect(result.status == 0, "ansible-playbook \(extra): \(result.output)")
            return (Ansible.recap(result.stdout), result.stdout)
        }
        func expectRecap(_ recap: [String: [String: Int]], changed: Int, _ what: String) {
            for host in fleet.hosts {
                #expect(recap[host.name]?["ok"] == 1, "\(what): \(host.name) \(recap)")
                #expect(recap[host.name]?["changed"] == changed, "\(what): \(host.name) \(recap)")
                #expect(recap[host.name]?["failed"] == 0 && recap[host.name]?["unreachable"] == 0, "\(what): \(recap)")
            }
        }

        // Check mode: changes reported with their diff, nothing written, no history made.
        let check = try play(["--check", "--diff"])
        expectRecap(check.recap, changed: 1, "check")
        #expect(check.output.contains("+++ b/etc/modprobe.d/vfio.conf"), "\(check.output)")
        #expect(check.output.contains("+++ b/etc/mkinitcpio.conf"), "\(check.output)")
        for (root, original) in zip(roots, originals) {
            #expect(try root.fingerprint() == original)
            #expect(!root.exists("/var/lib/provision/history.git"))
        }

        let first = try play([])
        expectRecap(first.recap, changed: 1, "first apply")
        for (index, root) in roots.enumerated() {
            #expect(try root.fingerprint() == expected[index], "\(Self.families[index]) differs from the CLI's apply")
            #expect(try root.git("log", "--format=%s").contains("apply vfio-passthrough"))
            // The recipe the host's history names is the copy the module left on the host.
            let copy = fleet.hosts[index].varLibProvision + "/recipes/vfio-passthrough.yaml"
            #expect(FileManager.default.contents(atPath: copy) == FileManager.default.contents(atPath: Package.path("recipes/vfio-passthrough.yaml")))
        }

        expectRecap(try play([]).recap, changed: 0, "second apply")
        expectRecap(try play(["--check", "--diff"]).recap, changed: 0, "check after apply")

        let rollback = try play(["-e", "provision_state=rolled_back"])
        expectRecap(rollback.recap, changed: 1, "rollback")
        for (root, original) in zip(roots, originals) { #expect(try root.fingerprint() == original) }
        expectRecap(try play(["-e", "provision_state=rolled_back"]).recap, changed: 0, "rollback again")
    }
}
