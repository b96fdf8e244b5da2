import CSystem
import Foundation
import ProvisionCore
import ProvisionTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A QEMU guest booted from a qcow2 overlay of the cached Debian 12 image (scripts/make-vm-image.sh,
/// machine in scripts/vm/boot.sh), with a read-only payload disk carrying the provision binary under
/// test, its Swift libraries, the recipes and the stage script (scripts/vm/stage.sh). Each boot runs
/// one stage in the guest, which prints its results on ttyS1 and powers off; the base image is never
/// written.
final class VirtualMachine {
    static let qemu: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/qemu-system-x86_64" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    static var cache: String {
        let environment = ProcessInfo.processInfo.environment
        return environment["PROVISION_TEST_VM"] ?? (environment["PROVISION_TEST_ROOTS"] ?? "/var/cache/provision-tests") + "/vm"
    }

    /// initramfs-tools' MODULES= for the run (dep: the lean image CI uses; most: Debian's default,
    /// for dracut hostonly=no), from PROVISION_VM_MODULES.
    static var modules: String { ProcessInfo.processInfo.environment["PROVISION_VM_MODULES"] ?? "dep" }

    /// The images a run boots (PROVISION_VM_GENERATORS, comma-separated): initramfs-tools, dracut.
    static var generators: [String] {
        (ProcessInfo.processInfo.environment["PROVISION_VM_GENERATORS"] ?? "initramfs-tools").split(separator: ",").map(String.init)
    }

    /// The provision executable the guest runs: the one this test build made, or PROVISION_VM_BINARY.
    static var binary: String { ProcessInfo.processInfo.environment["PROVISION_VM_BINARY"] ?? CLI.binary }

    let directory: TempRoot
    let overlay: String
    let payload: String
    /// Where each boot's logs are kept after the test (the temporary directory goes).
    let logs: String
    private(set) var boots: [(name: String, seconds: Double)] = []

    /// Builds the image if needed (cached), the payload disk and the overlay.
    init(generator: String, vars: [String]) throws {
        let make = try ProcessRunner.run([Package.path("scripts/make-vm-image.sh"), generator])
        guard make.status == 0 else {
            throw ProvisionError(.io, "scripts/make-vm-image.sh \(generator) failed:\n\(make.output.suffix(3000))")
        }
        directory = try TempRoot()
        let base = "\(Self.cache)/\(generator)/base.raw"
        overlay = directory.real("/overlay.qcow2")
        try Self.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", overlay])

        // The payload: bin/provision (a wrapper), libexec/provision, lib/ (the Swift runtime libraries
        // ldd resolves outside the system's directories; the C libraries are in the image), recipes/,
        // the snapshot's libvirt files, stage.sh and config.
        let tree = directory.real("/payload")
        for folder in ["bin", "libexec", "lib", "dress/etc"] {
            try FileManager.default.createDirectory(atPath: "\(tree)/\(folder)", withIntermediateDirectories: true)
        }
        let binary = Self.binary
        try Self.run(["cp", binary, "\(tree)/libexec/provision"])
        let ldd = try ProcessRunner.run(["ldd", binary])
        guard ldd.status == 0 else { throw ProvisionError(.io, "ldd \(binary): \(ldd.output)") }
        var libraries: [String] = []
        for line in ldd.output.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let arrow = fields.firstIndex(of: "=>"), arrow + 1 < fields.count else { continue }
            let path = String(fields[arrow + 1])
            if path == "not" { throw ProvisionError(.io, "ldd \(binary): \(line)") }
            if !["/lib/", "/lib64/", "/usr/lib/"].contains(where: path.hasPrefix) { libraries.append(path) }
        }
        if !libraries.isEmpty { try Self.run(["cp", "-L"] + libraries + ["\(tree)/lib/"]) }
        try directory.write(
            "/payload/bin/provision", "#!/bin/sh\nLD_LIBRARY_PATH=/payload/lib exec /payload/libexec/provision \"$@\"\n", mode: 0o755)
        try Self.run(["cp", "-a", Package.path("recipes"), "\(tree)/recipes"])
        try Self.run(["cp", "-a", Package.path("snapshots/debian/etc/libvirt"), "\(tree)/dress/etc/libvirt"])
        try Self.run(["cp", Package.path("scripts/vm/stage.sh"), "\(tree)/stage.sh"])
        let quoted = vars.map { "--var \($0)" }.joined(separator: " ")
        try directory.write("/payload/config", "VARS=\"\(quoted)\"\nMODULES=\(Self.modules)\n")
        let size = try Self.run(["du", "-sm", tree]).split(separator: "\t").first.flatMap { Int($0) } ?? 200
        payload = directory.real("/payload.img")
        try Self.run(["mkfs.ext4", "-q", "-F", "-L", "payload", "-d", tree, payload, "\(size + 32)M"])

        logs = "\(Self.cache)/runs/last-\(generator)-\(Self.modules)"
        _ = try? ProcessRunner.run(["rm", "-rf", logs])
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
    }

    @discardableResult
    static func run(_ argv: [String]) throws -> String {
        let result = try ProcessRunner.run(argv)
        guard result.status == 0 else { throw ProvisionError(.io, "\(argv.joined(separator: " ")) failed: \(result.output)") }
        return result.output
    }

    /// What one boot printed on ttyS1, and how it ended.
    struct Boot {
        var name: String
        var lines: [Substring]
        var console: String
        var seconds: Double
        /// QEMU killed by the test (the power cut), not exited on the guest's poweroff.
        var cut: Bool
        var status: Int32

        func has(_ line: String) -> Bool { lines.contains { $0 == line } }

        func value(_ prefix: String) -> String? {
            lines.first { $0.hasPrefix(prefix + " ") }.map { String($0.dropFirst(prefix.count + 1)) }
        }

        func json(_ name: String) -> [String: Any]? {
            guard let text = value("PROVISION-JSON \(name):") else { return nil }
            return try? CLI.json(text)
        }

        func jsonArray(_ name: String) -> [[String: Any]]? {
            guard let text = value("PROVISION-JSON \(name):") else { return nil }
            return ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any])?["entries"] as? [[String: Any]]
        }

        func exit(_ name: String) -> Int? { value("PROVISION-EXIT \(name)").flatMap { Int($0) } }

        var cmdline: [Substring] { (value("PROVISION-CMDLINE") ?? "").split(separator: " ") }

        var drivers: [String: String] {
            var result: [String: String] = [:]
            for line in lines where line.hasPrefix("PROVISION-DRIVER ") {
                let fields = line.split(separator: " ")
                if fields.count == 3 { result[String(fields[1])] = String(fields[2]) }
            }
            return result
        }

        /// The lines a report shows: markers, drivers, exits and JSON, without command chatter.
        var excerpt: String {
            lines.filter { !$0.hasPrefix("PROVISION-OUT ") || $0.hasPrefix("PROVISION-OUT fsck") }.joined(separator: "\n")
        }

        /// For failure messages: the stage lines and the end of the console.
        var evidence: String {
            "--- ttyS1 (\(name)) ---\n\(lines.joined(separator: "\n"))\n--- console, last lines ---\n"
                + console.split(separator: "\n").suffix(40).joined(separator: "\n")
        }
    }

    /// How long one boot may take before QEMU is killed: a stage rebuilds the initramfs up to twice
    /// (recovery, then the apply), about 4.5 minutes for the lean images on 2 busy cores; Debian's
    /// full images (MODULES=most, hostonly=no) take several times that. PROVISION_VM_BOOT_TIMEOUT
    /// (seconds) overrides.
    static var bootTimeout: Double {
        if let given = ProcessInfo.processInfo.environment["PROVISION_VM_BOOT_TIMEOUT"].flatMap(Double.init) { return given }
        return modules == "dep" ? 900 : 2700
    }

    /// Boots the overlay once and waits for the guest to power off, at most `timeout` seconds (then
    /// QEMU is killed and the boot fails). With `cutPowerAfter`, QEMU is killed (SIGKILL: a power
    /// cut) `delay` seconds after the guest printed that line.
    func boot(_ name: String, timeout: Double = VirtualMachine.bootTimeout, cutPowerAfter marker: String? = nil, delay: Double = 5) throws -> Boot {
        let console = "\(logs)/\(name)-console.log", stage = "\(logs)/\(name)-ttyS1.log", output = "\(logs)/\(name)-qemu.log"
        let argv = ["/bin/bash", Package.path("scripts/vm/boot.sh"), overlay, payload, console, stage]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        provision_spawn_close_from(&actions, 3)
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        let started = Date()
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, &cArgs, environ)
        guard spawned == 0 else { throw ProvisionError(.io, "cannot start QEMU: \(String(cString: strerror(spawned)))") }
        var reaped = false
        var waitStatus: Int32 = 0
        // Whatever happens, no QEMU outlives the test.
        defer {
            if !reaped {
                kill(pid, SIGKILL)
                waitpid(pid, &waitStatus, 0)
            }
        }
        var cut = false
        var markerSeen: Date?
        var timedOut = false
        while true {
            let done = waitpid(pid, &waitStatus, WNOHANG)
            if done == pid {
                reaped = true
                break
            }
            let elapsed = Date().timeIntervalSince(started)
            if elapsed > timeout {
                timedOut = true
                kill(pid, SIGKILL)
                waitpid(pid, &waitStatus, 0)
                reaped = true
                break
            }
            if let marker {
                if markerSeen == nil, Self.lines(stage).contains(where: { $0 == marker }) { markerSeen = Date() }
                if let seen = markerSeen, Date().timeIntervalSince(seen) >= delay {
                    kill(pid, SIGKILL)
                    waitpid(pid, &waitStatus, 0)
                    reaped = true
                    cut = true
                    break
                }
            }
            usleep(markerSeen == nil ? 500_000 : 100_000)
        }
        let seconds = Date().timeIntervalSince(started)
        boots.append((name, seconds))
        print("boot-cycle: \(name): \(String(format: "%.0f", seconds)) s\(cut ? " (power cut)" : "")\(timedOut ? " (timed out)" : "")")
        let status: Int32 = (waitStatus & 0x7f) == 0 ? (waitStatus >> 8) & 0xff : 128 + (waitStatus & 0x7f)
        let boot = Boot(
            name: name, lines: Self.lines(stage), console: (try? String(contentsOfFile: console, encoding: .utf8)) ?? "",
            seconds: seconds, cut: cut, status: status)
        if timedOut {
            throw ProvisionError(.io, "boot \(name) did not power off within \(Int(timeout)) s\n\(boot.evidence)")
        }
        return boot
    }

    static func lines(_ path: String) -> [Substring] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
    }
}
