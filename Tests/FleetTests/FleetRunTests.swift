import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `provision fleet` against real sshd hosts in network namespaces (TestFleet), each host's root a
/// copy of a snapshot: the whole recipe with per-host variables from an Ansible inventory, the
/// central fleet.git, rollback, and the faults (a host down, a host killed mid-run, a changed host
/// key, a failing batch).
@Suite(.serialized, .enabled(if: TestFleet.available, Comment(rawValue: TestFleet.missing)))
struct FleetRunTests {
    static let recipe = Package.path("recipes/vfio-passthrough.yaml")

    /// A fleet whose host i has a copy of `families[i]` as provision_root.
    final class Lab {
        let fleet: TestFleet
        let roots: [TempRoot]
        let originals: [[String: String]]
        let work: TempRoot
        var state: String { work.path + "/state" }

        init(_ families: [String]) throws {
            fleet = try TestFleet(count: families.count)
            roots = try families.map { try TempRoot(copying: $0) }
            originals = try roots.map { try $0.fingerprint() }
            work = try TempRoot()
        }

        /// `provision ARGS` on the controller (its network namespace).
        func provision(_ arguments: [String], timeout: Double = 600) throws -> Measured {
            try Spawn.run(fleet.controller([CLI.binary] + arguments), timeout: timeout)
        }

        func connection(_ index: Int) -> [(String, String)] {
            let host = fleet.hosts[index]
            return [
                ("ansible_host", host.address), ("ansible_user", "root"), ("ansible_ssh_private_key_file", fleet.clientKey),
                ("ansible_ssh_common_args", "-F /dev/null -o IdentitiesOnly=yes"), ("provision_root", roots[index].path),
            ]
        }
    }


    static func error(_ outcome: [String: Any]?) -> String { outcome?["error"] as? String ?? "" }

    static func json(_ text: String) throws -> [String: Any] { try CLI.json(text) }

    static func hosts(_ document: [String: Any]) -> [String: [String: Any]] {
        var result: [String: [String: Any]] = [:]
        for host in document["hosts"] as? [[String: Any]] ?? [] {
            let outcome = host["outcome"] as? [String: Any] ?? [:]
            if let name = outcome["host"] as? String { result[name] = outcome }
        }
        return result
    }

    /// Six hosts of five families: a YAML inventory with nested groups, group_vars/ and host_vars/
    /// (the second Debian names its card in host_vars), one host with provision_path.
    @Test func wholeRecipeAcrossSixHostsThenNoOpThenRollback() throws {
        let families = ["arch", "fedora", "debian", "ubuntu", "popos", "debian"]
        let lab = try Lab(families)
        let inventoryDirectory = lab.work.path + "/inventory"
        try FileManager.default.createDirectory(atPath: inventoryDirectory + "/group_vars", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: inventoryDirectory + "/host_vars", withIntermediateDirectories: true)
        func hostBlock(_ index: Int, indent: String) -> String {
            var text = "\(indent)h\(index):\n"
            for (key, value) in lab.connection(index) { text += "\(indent)  \(key): \"\(value)\"\n" }
            return text
        }
        // workstations > {rolling, debian_family > ubuntu_family}; popos ungrouped under all.
        var yaml = "all:\n  vars:\n    domain: win10\n  hosts:\n" + hostBlock(4, indent: "    ")
        yaml += "  children:\n    workstations:\n      vars:\n        qemu_user: virtual-machine\n      children:\n"
        yaml += "        rolling:\n          hosts:\n" + hostBlock(0, indent: "            ") + hostBlock(1, indent: "            ")
        yaml += "        debian_family:\n          hosts:\n" + hostBlock(2, indent: "            ") + hostBlock(5, indent: "            ")
        yaml += "          children:\n            ubuntu_family:\n              hosts:\n" + hostBlock(3, indent: "                ")
        try yaml.write(toFile: inventoryDirectory + "/hosts.yml", atomically: true, encoding: .utf8)
        // Debian's card shares its group with a USB controller (said on purpose); Ubuntu's twins
        // (a child group of debian_family: its value wins) are bound by address.
        try "allow_shared_group: \"true\"\nidentical_ids: refuse\n".write(
            toFile: inventoryDirectory + "/group_vars/debian_family.yml", atomically: true, encoding: .utf8)
        try "allow_shared_group: \"false\"\nidentical_ids: bind-by-address\n".write(
            toFile: inventoryDirectory + "/group_vars/ubuntu_family.yml", atomically: true, encoding: .utf8)
        try "gpu: \"0000:01:00.0\"\nprovision_path: \"\(CLI.binary)\"\n".write(
            toFile: inventoryDirectory + "/host_vars/h5.yml", atomically: true, encoding: .utf8)
        let inventory = inventoryDirectory + "/hosts.yml"

        let apply = try lab.provision(["fleet", "apply", Self.recipe, "-i", inventory, "--state", lab.state, "--forks", "6", "--json"])
        try #require(apply.status == 0, "\(apply)")
        let applied = Self.hosts(try Self.json(apply.stdout))
        #expect(applied.count == 6)
        for (index, family) in families.enumerated() {
            let outcome = try #require(applied["h\(index)"])
            #expect(outcome["status"] as? String == "changed", "h\(index): \(outcome)")
            #expect(outcome["run"] as? Int == 1, "h\(index): \(outcome)")
            for (path, content) in try Golden.files(family) {
                #expect(lab.roots[index].read(path) == content, "h\(index) (\(family)): \(path) differs from the single-host golden file")
            }
        }
        // Pushed where missing, by version and hash; not to the host with provision_path.
        for index in 0..<5 {
            let pushed = (try? FileManager.default.contentsOfDirectory(atPath: lab.fleet.hosts[index].varLibProvision + "/bin")) ?? []
            #expect(pushed.count == 1 && pushed[0].hasPrefix("provision-"), "h\(index) got \(pushed)")
        }
        #expect(!FileManager.default.fileExists(atPath: lab.fleet.hosts[5].varLibProvision + "/bin"), "h5 has provision_path: nothing pushed")

        // fleet blame: per host, the run and step that set the IOMMU parameters in GRUB's file.
        let blame = try lab.provision(["fleet", "blame", "/etc/default/grub", "-i", inventory, "--state", lab.state, "--json"])
        #expect(blame.status == 0, "\(blame)")
        let blamed = try #require(try Self.json(blame.stdout)["hosts"] as? [String: [String: Any]])
        #expect(blamed.count >= 2, "hosts booting with GRUB: \(blamed.keys.sorted())")
        for (host, report) in blamed {
            let lines = report["lines"] as? [[String: Any]] ?? []
            let parameters = lines.first { ($0["text"] as? String ?? "").contains("iommu=pt") }
            #expect(parameters?["origin"] as? String == "run" && parameters?["run"] as? Int == 1, "\(host): \(parameters ?? [:])")
            #expect(parameters?["step"] as? String == "kernel-cmdline", "\(host): \(parameters ?? [:])")
        }
        let blameText = try lab.provision(["fleet", "blame", "/etc/default/grub", "-i", inventory, "--state", lab.state])
        #expect(blameText.stdout.contains("run 1 kernel-cmdline"), "\(blameText.stdout)")

        // fleet status: a hand edit on one host shows it drifted (exit 3); undone, all clean.
        let grub = lab.roots[0].real("/etc/default/grub")
        let applied0 = try String(contentsOfFile: grub, encoding: .utf8)
        try (applied0 + "GRUB_TIMEOUT=1\n").write(toFile: grub, atomically: false, encoding: .utf8)
        let drifted = try lab.provision(["fleet", "status", "-i", inventory, "--state", lab.state, "--forks", "6", "--json"])
        #expect(drifted.status == 3, "\(drifted)")
        let statuses = Self.hosts(try Self.json(drifted.stdout))
        #expect(statuses["h0"]?["status"] as? String == "changed" && statuses["h0"]?["changed_files"] as? Int == 1, "\(statuses)")
        #expect((1..<6).allSatisfy { statuses["h\($0)"]?["status"] as? String == "ok" }, "\(statuses)")
        try applied0.write(toFile: grub, atomically: false, encoding: .utf8)
        let clean = try lab.provision(["fleet", "status", "-i", inventory, "--state", lab.state, "--forks", "6"])
        #expect(clean.status == 0, "\(clean)")

        let again = try lab.provision(["fleet", "apply", Self.recipe, "-i", inventory, "--state", lab.state, "--forks", "6"])
        #expect(again.status == 0, "\(again)")
        for index in 0..<6 { #expect(again.stdout.contains("h\(index) : ok="), "\(again.stdout)") }
        #expect(!again.stdout.contains("CHANGED"), "a second fleet apply changes nothing:\n\(again.stdout)")
        #expect(again.stdout.contains("FLEET RECAP"))

        let history = try lab.provision(["fleet", "history", "-i", inventory, "--state", lab.state, "--json"])
        #expect(history.status == 0, "\(history)")
        let runs = try #require(try Self.json(history.stdout)["fleet_runs"] as? [[String: Any]])
        #expect(runs.map { $0["number"] as? Int } == [2, 1])
        let log = try Spawn.run(["git", "--git-dir", lab.state + "/fleet.git", "log", "--all", "--format=%D %s"])
        let refs = try Spawn.run(["git", "--git-dir", lab.state + "/fleet.git", "for-each-ref", "--format=%(refname)", "refs/hosts/"]).stdout
        for index in 0..<6 {
            for name in ["heads/main", "tags/run/1", "tags/run/2"] {
                #expect(refs.contains("refs/hosts/h\(index)/\(name)\n"), "h\(index) \(name) in fleet.git:\n\(refs)")
            }
        }
        #expect(log.stdout.contains("fleet run 1: apply vfio-passthrough.yaml on 6 host(s)"))
        #expect(log.stdout.components(separatedBy: "apply vfio-passthrough: ").count - 1 >= 12, "every host's two runs:\n\(log.stdout)")
        let touched = try lab.provision(["fleet", "history", "/etc/modprobe.d/vfio.conf", "-i", inventory, "--state", lab.state])
        #expect(touched.status == 0, "\(touched)")

        // The INI form of the same inventory plans the same on every host (nothing to do now).
        var ini = ""
        for index in 0..<6 { ini += "h\(index) " + lab.connection(index).map { "\($0.0)='\($0.1)'" }.joined(separator: " ") + "\n" }
        ini += "\n[rolling]\nh0\nh1\n\n[debian_family]\nh2\nh5\n\n[ubuntu_family]\nh3\n\n[debian_family:children]\nubuntu_family\n"
        ini += "\n[workstations:children]\nrolling\ndebian_family\n\n[workstations:vars]\nqemu_user=virtual-machine\n\n[all:vars]\ndomain=win10\n"
        try ini.write(toFile: inventoryDirectory + "/hosts.ini", atomically: true, encoding: .utf8)
        let planYAML = try lab.provision(["fleet", "plan", Self.recipe, "-i", inventory, "--state", lab.state, "--json", "--forks", "6"])
        let planINI = try lab.provision(["fleet", "plan", Self.recipe, "-i", inventoryDirectory + "/hosts.ini", "--state", lab.state, "--json", "--forks", "6"])
        #expect(planYAML.status == 0 && planINI.status == 0, "\(planYAML)\n\(planINI)")
        let yamlStatus = Self.hosts(try Self.json(planYAML.stdout)).mapValues { $0["status"] as? String }
        let iniStatus = Self.hosts(try Self.json(planINI.stdout)).mapValues { $0["status"] as? String }
        #expect(yamlStatus == iniStatus && yamlStatus.count == 6 && Set(yamlStatus.values) == ["ok"], "\(yamlStatus) vs \(iniStatus)")

        let rollback = try lab.provision(["fleet", "rollback", "1", "-i", inventory, "--state", lab.state, "--forks", "6", "--json"])
        #expect(rollback.status == 0, "\(rollback)")
        for index in 0..<6 {
            #expect(try lab.roots[index].fingerprint() == lab.originals[index], "h\(index): rollback gives the snapshot back byte for byte")
        }
        let after = try lab.provision(["fleet", "history", "-i", inventory, "--state", lab.state, "-n", "1", "--json"])
        let newest = try #require((try Self.json(after.stdout)["fleet_runs"] as? [[String: Any]])?.first)
        #expect(newest["action"] as? String == "rollback" && newest["undid"] as? Int == 1)
    }

    /// A host whose sshd is down, a host killed in the middle of its run, a changed host key, and a
    /// failing batch that stops the later ones.
    @Test func faultsAreReportedAndTheNextRunRecovers() throws {
        let lab = try Lab(["arch", "fedora", "debian"])
        // h1 runs provision through a wrapper; while `crash` exists, its apply is killed (SIGKILL)
        // right after the third file it changes on the host.
        let wrapper = lab.work.path + "/provision-h1"
        let crash = lab.work.path + "/crash"
        try "#!/bin/sh\nif [ -e \(crash) ]; then PROVISION_TEST_CRASH_AFTER_WRITES=3; export PROVISION_TEST_CRASH_AFTER_WRITES; fi\nexec \(CLI.binary) \"$@\"\n"
            .write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        #expect(FileManager.default.createFile(atPath: crash, contents: Data()))
        var yaml = "all:\n  hosts:\n"
        for index in 0..<3 {
            yaml += "    h\(index):\n" + lab.connection(index).map { "      \($0.0): \"\($0.1)\"\n" }.joined()
        }
        yaml += "      allow_shared_group: \"true\"\n"
        try FileManager.default.createDirectory(atPath: lab.work.path + "/inventory/host_vars", withIntermediateDirectories: true)
        try yaml.write(toFile: lab.work.path + "/inventory/hosts.yml", atomically: true, encoding: .utf8)
        try "provision_path: \(wrapper)\n".write(toFile: lab.work.path + "/inventory/host_vars/h1.yml", atomically: true, encoding: .utf8)
        let inventory = lab.work.path + "/inventory/hosts.yml"
        let common = ["-i", inventory, "--state", lab.state, "--connect-timeout", "5"]

        lab.fleet.stopSSHD(0)
        let first = try lab.provision(["fleet", "apply", Self.recipe, "--json"] + common)
        #expect(first.status == 1, "\(first)")
        var hosts = Self.hosts(try Self.json(first.stdout))
        #expect(hosts["h0"]?["status"] as? String == "unreachable", "\(hosts)")
        #expect(Self.error(hosts["h0"]).contains("Connection refused"), "\(hosts)")
        #expect(hosts["h1"]?["status"] as? String == "failed", "\(hosts)")
        #expect(Self.error(hosts["h1"]).contains("killed by signal 9"), "\(hosts)")
        #expect(hosts["h1"]?["recovery_pending"] as? Bool == true, "\(hosts)")
        #expect(hosts["h1"]?["recorded"] as? Bool == false, "\(hosts)")
        #expect(hosts["h2"]?["status"] as? String == "changed", "\(hosts)")

        let status = try lab.provision(["fleet", "status", "--json"] + common)
        #expect(status.status == 1, "unreachable host: \(status)")
        hosts = Self.hosts(try Self.json(status.stdout))
        #expect(hosts["h0"]?["status"] as? String == "unreachable")
        #expect(hosts["h1"]?["recovery_pending"] as? Bool == true, "fleet status shows the pending recovery: \(hosts)")
        #expect(hosts["h2"]?["status"] as? String == "ok", "\(hosts)")

        // Back up, no more crash: h1 recovers then applies, h0 gets its first run.
        try lab.fleet.startSSHD(0)
        try FileManager.default.removeItem(atPath: crash)
        let second = try lab.provision(["fleet", "apply", Self.recipe, "--json"] + common)
        #expect(second.status == 0, "\(second)")
        hosts = Self.hosts(try Self.json(second.stdout))
        #expect(hosts["h0"]?["status"] as? String == "changed" && hosts["h1"]?["status"] as? String == "changed", "\(hosts)")
        #expect(hosts["h2"]?["status"] as? String == "ok", "\(hosts)")
        let documents = (try Self.json(second.stdout)["hosts"] as? [[String: Any]] ?? []).compactMap { $0["document"] as? [String: Any] }
        #expect(documents.contains { $0["recovered"] != nil }, "h1's apply recovered the killed run first")
        let clean = try lab.provision(["fleet", "status"] + common)
        #expect(clean.status == 0, "\(clean)")

        // A changed host key: refused, with the line that fixes it.
        try lab.fleet.regenerateHostKey(2)
        let changed = try lab.provision(["fleet", "status", "--json"] + common)
        #expect(changed.status == 1)
        let h2 = Self.hosts(try Self.json(changed.stdout))["h2"] ?? [:]
        #expect(h2["status"] as? String == "unreachable", "\(h2)")
        #expect(Self.error(h2).contains("ssh-keygen -f \(lab.state)/known_hosts -R \(lab.fleet.hosts[2].address)"), "\(h2)")

        // --serial 2 --max-fail-percent 0: the first batch (h0 down) fails, the second never runs.
        lab.fleet.stopSSHD(0)
        let batched = try lab.provision(["fleet", "apply", Self.recipe, "--serial", "2", "--max-fail-percent", "0"] + common)
        #expect(batched.status == 1)
        #expect(batched.stdout.contains("h2 : ok=0  changed=0  unreachable=0  failed=0  skipped=1"), "\(batched.stdout)")
        #expect(batched.stdout.contains("later batches were not run"), "\(batched.stdout)")
    }
}
