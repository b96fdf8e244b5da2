import Foundation
import ProvisionCore
import ProvisionFleet
import ProvisionTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The fake fleet itself: six hosts reached over real ssh at once, each landing in its own
/// /var/lib/provision; the faults the fleet tests need (a stopped sshd, a changed host key); and
/// nothing left behind.
@Suite(.serialized, .enabled(if: TestFleet.available, Comment(rawValue: TestFleet.missing)))
struct TestFleetTests {
    @Test func sixHostsInParallelEachInItsOwnVarLibProvision() throws {
        let fleet = try TestFleet(count: 6)
        let namespaces = [fleet.controllerNamespace] + fleet.hosts.map(\.namespace)
        let results = Parallel.map(fleet.hosts, workers: 6) { host in
            Result {
                try fleet.ssh(host.index, "mkdir -p /var/lib/provision/bin && echo \(host.name) > /var/lib/provision/bin/landed && ls /var/lib/provision/bin && ip -4 -o addr show dev eth0")
            }
        }
        for (host, result) in zip(fleet.hosts, results) {
            let measured = try result.get()
            #expect(measured.status == 0, "\(host.name): \(measured)")
            #expect(measured.stdout.contains(host.address + "/30"), "\(host.name) answered from \(measured.stdout)")
            let landed = try String(contentsOfFile: host.varLibProvision + "/bin/landed", encoding: .utf8)
            #expect(landed == host.name + "\n")
            // Only its own file: no host saw another's directory.
            #expect(try FileManager.default.contentsOfDirectory(atPath: host.varLibProvision + "/bin") == ["landed"])
        }
        // The machine's own /var/lib/provision was never written.
        #expect(!FileManager.default.fileExists(atPath: "/var/lib/provision/bin/landed"))
        // The machine's main namespace has no route to the test addresses.
        let route = try ProcessRunner.run(["ip", "-4", "route", "show"])
        #expect(!route.output.contains("198.18.0."))

        let pids = fleet.hosts.map { (try? String(contentsOfFile: $0.directory + "/sshd.pid", encoding: .utf8)) ?? "" }
        fleet.shutdown()
        for pid in pids.compactMap({ Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
            #expect(kill(pid, 0) != 0, "sshd \(pid) still runs")
        }
        let left = try ProcessRunner.run(["ip", "netns", "list"]).output
        for name in namespaces { #expect(!left.contains(name)) }
    }

    @Test func stoppedSSHDIsUnreachableAndAChangedKeyIsRefused() throws {
        let fleet = try TestFleet(count: 2)
        fleet.stopSSHD(0)
        let down = try fleet.ssh(0, "true", timeout: 30)
        #expect(down.status == 255)
        #expect(down.stderr.contains("Connection refused"), "\(down)")
        #expect(try fleet.ssh(1, "true").status == 0)
        try fleet.startSSHD(0)
        #expect(try fleet.ssh(0, "true").status == 0)

        try fleet.regenerateHostKey(1)
        let changed = try fleet.ssh(1, "true")
        #expect(changed.status == 255)
        #expect(changed.stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"), "\(changed)")
        try fleet.regenerateHostKey(1, updateKnownHosts: true)
        #expect(try fleet.ssh(1, "true").status == 0)
    }

    @Test func inventoriesItWritesReadBack() throws {
        let fleet = try TestFleet(count: 3)
        for format in [TestFleet.InventoryFormat.yaml, .ini] {
            let path = fleet.state.path + (format == .yaml ? "/inventory.yml" : "/inventory.ini")
            try fleet.writeInventory(
                to: path, format: format, hostVars: ["h1": ["provision_root": "/tmp/root one", "gpu": "0000:0b:00.0"]],
                groups: ["debian": ["h1", "h2"]], groupVars: ["debian": ["identical_ids": "bind-by-address"]])
            let inventory = try Inventory.load(path: path)
            let hosts = try inventory.fleetHosts()
            #expect(hosts.map(\.name) == ["h0", "h1", "h2"])
            #expect(hosts[1].address == fleet.hosts[1].address)
            #expect(hosts[1].root == "/tmp/root one")
            #expect(hosts[1].user == "root")
            #expect(hosts[1].privateKeyFile == fleet.clientKey)
            #expect(hosts[1].sshArguments == ["-F", "/dev/null", "-o", "IdentitiesOnly=yes"])
            #expect(try hosts[1].recipeArguments() == ["gpu": "0000:0b:00.0", "identical_ids": "bind-by-address"])
            #expect(try hosts[0].recipeArguments().isEmpty)
            // The host reached with exactly what the inventory says.
            let host = hosts[2]
            let result = try Spawn.run(
                fleet.controller(
                    ["ssh"] + host.sshArguments + ["-o", "UserKnownHostsFile=\(fleet.knownHosts)", "-o", "BatchMode=yes", "-i", host.privateKeyFile!, "\(host.user!)@\(host.address)", "echo ok"]))
            #expect(result.stdout == "ok\n", "\(result)")
        }
    }
}
