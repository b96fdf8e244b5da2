import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

/// The fleet benchmark (scripts/bench-fleet.sh sets PROVISION_FLEET_BENCH=1; never part of the
/// test run): wall time of `fleet apply` of the whole recipe on 1, 6 and 20 hosts with forks =
/// hosts, then the same 20 hosts through ansible-playbook with the provision_apply module and with
/// plain Ansible file tasks writing the same files. Every host's root is a fresh copy of the Arch
/// snapshot; hosts are network namespaces with their own sshd (TestFleet).
@Suite(
    .serialized,
    .enabled(if: ProcessInfo.processInfo.environment["PROVISION_FLEET_BENCH"] == "1"),
    .enabled(if: TestFleet.available, Comment(rawValue: TestFleet.missing)))
struct FleetBenchmark {
    @Test func wallTimes() throws {
        let recipe = Package.path("recipes/vfio-passthrough.yaml")
        // The release build the fleet really pushes (scripts/bench-fleet.sh builds it), as the
        // controller and on the hosts; the test build otherwise.
        let binary = ProcessInfo.processInfo.environment["PROVISION_FLEET_BENCH_BINARY"] ?? CLI.binary
        let fleet = try TestFleet(count: 20)
        var report = ["fleet benchmark: the whole VFIO recipe on copies of snapshots/arch, \(ProcessInfo.processInfo.activeProcessorCount) cores, \(ISO8601DateFormatter().string(from: Date())); every host shares this machine's cores"]
        func roots(_ count: Int) throws -> [TempRoot] { try (0..<count).map { _ in try TempRoot(copying: "arch") } }
        /// An inventory of exactly the first `roots.count` hosts (no host is ever left with the
        /// default provision_root, this machine's /).
        func inventory(_ roots: [TempRoot], extra: [String: String] = [:]) throws -> String {
            var text = "all:\n  hosts:\n"
            for (host, root) in zip(fleet.hosts, roots) {
                text += "    \(host.name):\n"
                let vars = [
                    "ansible_host": host.address, "ansible_user": "root", "ansible_ssh_private_key_file": fleet.clientKey,
                    "ansible_ssh_common_args": "-F /dev/null -o IdentitiesOnly=yes -o UserKnownHostsFile=\(fleet.knownHosts) -o GlobalKnownHostsFile=/dev/null",
                    "provision_root": root.path,
                ].merging(extra) { $1 }
                for (key, value) in vars.sorted(by: { $0.key < $1.key }) { text += "      \(key): \"\(value)\"\n" }
            }
            let path = fleet.state.path + "/inventory-\(roots.count)-\(UUID().uuidString.prefix(6)).yml"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        func timed(_ argv: [String], environment: [String: String] = [:]) throws -> (Double, Measured) {
            let start = Date()
            let result = try Spawn.run(fleet.controller(argv), timeout: 1800, environment: environment)
            return (Date().timeIntervalSince(start), result)
        }
        var oneHost = 0.0
        let sizes = (ProcessInfo.processInfo.environment["PROVISION_FLEET_BENCH_SIZES"] ?? "1,6,20").split(separator: ",").compactMap { Int($0) }
        for count in sizes {
            let hosts = try roots(count)
            let path = try inventory(hosts)
            let state = fleet.state.path + "/state-\(count)"
            let common = ["-i", path, "--state", state, "--forks", String(count)]
            let (first, result) = try timed([binary, "fleet", "apply", recipe] + common, environment: ["PROVISION_FLEET_TRACE": "1"])
            if count == 1 { report.append(result.stderr) }
            #expect(result.status == 0, "\(result)")
            let (again, noop) = try timed([binary, "fleet", "apply", recipe] + common)
            #expect(noop.status == 0, "\(noop)")
            if count == 1 { oneHost = first }
            report.append(String(format: "provision fleet apply, %2d host(s), forks %2d: %6.2f s (binary pushed first); again, nothing to do: %6.2f s%@",
                count, count, first, again, count == 1 ? "" : String(format: "  (%.2fx one host)", first / oneHost)))
        }
        if Ansible.available && sizes.contains(20) {
            // The module, on 20 fresh roots.
            let hosts = try roots(20)
            let path = try inventory(hosts, extra: ["provision_path": binary, "ansible_python_interpreter": "/usr/bin/python3"])
            let module = fleet.state.path + "/module.yml"
            try """
                - hosts: all
                  gather_facts: false
                  tasks:
                    - provision.vfio.provision_apply:
                        recipe: \(recipe)
                        root: "{{ provision_root }}"
                        provision_path: "{{ provision_path }}"
                """.write(toFile: module, atomically: true, encoding: .utf8)
            let environment = ["ANSIBLE_COLLECTIONS_PATH": Package.path("contrib/ansible"), "ANSIBLE_HOME": fleet.state.path + "/ansible-home",
                "ANSIBLE_LOCAL_TEMP": fleet.state.path + "/ansible-tmp", "ANSIBLE_REMOTE_TMP": "/tmp/.ansible-bench"]
            let bin = Ansible.binDirectory!
            let (withModule, moduleRun) = try timed([bin + "/ansible-playbook", "-i", path, "--forks", "20", module], environment: environment)
            #expect(moduleRun.status == 0, "\(moduleRun)")
            report.append(String(format: "ansible-playbook with provision_apply, 20 hosts, forks 20: %6.2f s", withModule))
            // Plain file tasks writing the files the recipe writes on Arch (its golden files).
            let plain = try roots(20)
            let plainInventory = try inventory(plain, extra: ["ansible_python_interpreter": "/usr/bin/python3"])
            let golden = Package.path("Tests/CLITests/Golden/arch")
            var tasks = ""
            let enumerator = FileManager.default.enumerator(atPath: golden)
            while let relative = enumerator?.nextObject() as? String {
                var directory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: golden + "/" + relative, isDirectory: &directory), !directory.boolValue else { continue }
                tasks += "    - ansible.builtin.copy: {src: \"\(golden)/\(relative)\", dest: \"{{ provision_root }}/\(relative)\", mode: \"0644\"}\n"
            }
            let files = fleet.state.path + "/files.yml"
            try "- hosts: all\n  gather_facts: false\n  tasks:\n\(tasks)".write(toFile: files, atomically: true, encoding: .utf8)
            let (withFiles, filesRun) = try timed([bin + "/ansible-playbook", "-i", plainInventory, "--forks", "20", files], environment: environment)
            #expect(filesRun.status == 0, "\(filesRun)")
            report.append(String(format: "ansible-playbook with plain copy tasks (the same %d files), 20 hosts, forks 20: %6.2f s", tasks.split(separator: "\n").count, withFiles))
        } else {
            report.append("ansible-playbook: not measured (\(Ansible.missing))")
        }
        let text = report.joined(separator: "\n") + "\n"
        print(text)
        try text.write(toFile: ProcessInfo.processInfo.environment["PROVISION_FLEET_BENCH_OUT"] ?? "/tmp/provision-fleet-bench.txt", atomically: true, encoding: .utf8)
    }
}
