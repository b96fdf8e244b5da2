import Foundation
import ProvisionCore
import ProvisionROM
import ProvisionTestSupport
import Testing

/// A throwaway HTTP server on 127.0.0.1 (Python's http.server), serving a directory plus a few
/// misbehaving paths: a redirect, a redirect loop, a response larger than any ROM.
final class LoopbackServer: @unchecked Sendable {
    let process: BackgroundProcess
    let port: Int

    init(serving directory: String) throws {
        let script = """
            import http.server, socketserver, sys, os, threading, time
            os.chdir(sys.argv[1])
            parent = os.getppid()
            def watchdog():
                # Stops by itself: when the test process is gone, and after two minutes at most.
                deadline = time.time() + 120
                while os.getppid() == parent and time.time() < deadline:
                    time.sleep(0.2)
                os._exit(0)
            threading.Thread(target=watchdog, daemon=True).start()
            class Handler(http.server.SimpleHTTPRequestHandler):
                def log_message(self, *args): pass
                def do_GET(self):
                    if self.path == "/redirect":
                        self.send_response(302); self.send_header("Location", "/efi-virtio.rom"); self.end_headers()
                    elif self.path == "/loop":
                        self.send_response(302); self.send_header("Location", "/loop"); self.end_headers()
                    elif self.path == "/big":
                        self.send_response(200); self.send_header("Content-Length", str(64 << 20)); self.end_headers()
                        self.wfile.write(b"\\x55\\xaa" * 4096)
                    else:
                        super().do_GET()
            server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """
        process = try BackgroundProcess(["python3", "-c", script, directory])
        guard let port = Int(process.readLine()) else { throw ProvisionError(.io, "the test HTTP server did not start") }
        self.port = port
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }
}

@Suite(.serialized) struct ROMFetchTests {
    static let ipxe = OptionROMTests.ipxe
    static let registry = PluginRegistry(romSteps)

    let files: TempRoot
    let server: LoopbackServer
    let ipxeBytes: Data
    let ipxeHash: String

    init() throws {
        files = try TempRoot()
        ipxeBytes = try OptionROMTests.load(Self.ipxe)
        ipxeHash = SHA256.hex(ipxeBytes)
        try ipxeBytes.write(to: URL(fileURLWithPath: files.real("/efi-virtio.rom")))
        let zip = try ProcessRunner.run(["zip", "-jq", files.real("/vbios.zip"), files.real("/efi-virtio.rom")])
        try #require(zip.status == 0, "\(zip.output)")
        try FileManager.default.createDirectory(atPath: files.real("/pkg/roms"), withIntermediateDirectories: true)
        try ipxeBytes.write(to: URL(fileURLWithPath: files.real("/pkg/roms/gpu.rom")))
        let tar = try ProcessRunner.run(["tar", "-C", files.real("/pkg"), "-czf", files.real("/vbios.tar.gz"), "roms/gpu.rom"])
        try #require(tar.status == 0, "\(tar.output)")
        server = try LoopbackServer(serving: files.path)
    }

    /// A download is a declared input: handed over as data, no server, no socket; the core checks
    /// the pin and the plugin the ROM exactly as for a real download.
    @Test func aURLSourceGivenAsDataNeedsNoServer() throws {
        let temp = try TempRoot(copying: "arch")
        let engine = try Engine(root: HostRoot(temp.path), registry: Self.registry)
        let url = "https://vendor.example/roms/vbios.rom"
        engine.inputs = DataInputs([url: ipxeBytes])
        let text = String(decoding: try JSONEncoder.sorted.encode(
            Value.map(["name": .string("rom"), "steps": .list([.map(["id": .string("rom"), "uses": .string("rom.fetch"), "with": .map([
                "url": .string(url), "sha256": .string(ipxeHash), "ids": .list([.string("1af4:1041")]),
            ])])])])), as: UTF8.self)
        let report = try engine.apply(try Recipe.parse(text, file: "rom.json", registry: Self.registry))
        let installed = try #require(report.changes.first?.path)
        #expect(installed.hasPrefix("/var/lib/provision/roms/1af4-1041-"))
        #expect(FileManager.default.contents(atPath: temp.real(installed)) == ipxeBytes)
        engine.inputs = DataInputs([url: ipxeBytes + Data([0])])
        let error = try #require(throws: ProvisionError.self) { _ = try engine.plan(try Recipe.parse(text, file: "rom.json", registry: Self.registry)) }
        #expect(error.description.contains("not the pinned \(ipxeHash)"), "\(error)")
    }

    /// Applies one rom.fetch step with these options to a fresh root.
    func apply(_ options: [String: Value], root: TempRoot? = nil) throws -> (TempRoot, RunReport) {
        let temp = try root ?? TempRoot(copying: "arch")
        let engine = try Engine(root: HostRoot(temp.path), registry: Self.registry)
        let text = String(decoding: try JSONEncoder.sorted.encode(
            Value.map(["name": .string("rom"), "steps": .list([.map(["id": .string("rom"), "uses": .string("rom.fetch"), "with": .map(options)])])])),
            as: UTF8.self)
        return (temp, try engine.apply(try Recipe.parse(text, file: "rom.json", registry: Self.registry)))
    }

    var installed: String { "/var/lib/provision/roms/1af4-1041-\(ipxeHash.prefix(12)).rom" }

    @Test func urlWithPinInstallsReappliesAndRollsBack() throws {
        let options: [String: Value] = ["url": .string(server.url("/efi-virtio.rom")), "sha256": .string(ipxeHash), "insecure": .bool(true)]
        let (temp, report) = try apply(options)
        #expect(report.changes.map(\.path) == [installed])
        #expect(FileManager.default.contents(atPath: temp.real(installed)) == ipxeBytes)
        var info = stat()
        stat(temp.real(installed), &info)
        #expect(info.st_mode & 0o777 == 0o644)
        #expect(report.plan?.exports["rom"]?.lookup(["path"]) == .string(installed))
        let engine = try Engine(root: HostRoot(temp.path), registry: Self.registry)
        let again = try apply(options, root: temp).1
        #expect(again.changes.isEmpty, "a second apply changes nothing")
        _ = try engine.rollback()
        #expect(!temp.exists(installed))
        #expect(!temp.exists("/var/lib/provision/roms"), "the directory the run created is gone")
    }

    @Test func redirectsAreFollowedButBounded() throws {
        let (temp, _) = try apply(["url": .string(server.url("/redirect")), "sha256": .string(ipxeHash), "insecure": .bool(true)])
        #expect(temp.exists(installed))
        #expect { try apply(["url": .string(server.url("/loop")), "sha256": .string(ipxeHash), "insecure": .bool(true)]) } throws: {
            "\($0)".contains("more than 5 redirects")
        }
    }

    @Test func refusalsLeaveNothingBehind() throws {
        let cases: [([String: Value], String)] = [
            (["url": .string(server.url("/efi-virtio.rom")), "sha256": .string(String(repeating: "0", count: 64)), "insecure": .bool(true)],
             "not the pinned 0000"),
            (["url": .string(server.url("/efi-virtio.rom")), "sha256": .string(ipxeHash)], "is plain http: use https, or say insecure: true"),
            (["url": .string(server.url("/efi-virtio.rom")), "insecure": .bool(true)], "a url source needs a sha256 pin"),
            (["url": .string(server.url("/big")), "sha256": .string(ipxeHash), "insecure": .bool(true)], "more than the limit"),
            (["url": .string(server.url("/missing.rom")), "sha256": .string(ipxeHash), "insecure": .bool(true)], "HTTP status 404"),
            (["file": .string(Self.ipxe), "ids": .list([.string("10de:1b80")])], "not for the target GPU 10de:1b80"),
            (["file": .string(OptionROMTests.vgabios)], "has no EFI image"),
            (["file": .string(files.real("/vbios.zip")), "member": .string("nope.rom")], "has no member nope.rom (it has: efi-virtio.rom)"),
        ]
        for (options, message) in cases {
            let temp = try TempRoot(copying: "arch")
            let before = try temp.fingerprint(excludingHistory: false)
            #expect { try apply(options, root: temp) } throws: { "\($0)".contains(message) }
            #expect(try temp.fingerprint(excludingHistory: false) == before, "\(message): nothing changed")
        }
    }

    @Test func fileArchiveMembersAndWarnings() throws {
        for options: [String: Value] in [
            ["file": .string(Self.ipxe)],
            ["file": .string(files.real("/vbios.zip")), "member": .string("efi-virtio.rom")],
            ["url": .string(server.url("/vbios.tar.gz")), "member": .string("roms/gpu.rom"), "insecure": .bool(true),
             "sha256": .string(SHA256.hex(try #require(FileManager.default.contents(atPath: files.real("/vbios.tar.gz")))))],
        ] {
            let (temp, _) = try apply(options)
            #expect(FileManager.default.contents(atPath: temp.real(installed)) == ipxeBytes, "\(options)")
        }
        let (temp, report) = try apply(["file": .string(OptionROMTests.vgabios), "efi": .string("warn"), "dest": .string("/etc/vbios/std.rom")])
        #expect(temp.exists("/etc/vbios/std.rom"))
        #expect(report.plan?.notices.contains { $0.message.contains("has no EFI image: only a BIOS guest can use it") } == true)
    }

    @Test func vendorHeaderIsStripped() throws {
        let header = Data("NVGI".utf8) + Data(repeating: 0x11, count: 0x3FC)
        try (header + ipxeBytes).write(to: URL(fileURLWithPath: files.real("/dump.rom")))
        let (temp, report) = try apply(["file": .string(files.real("/dump.rom"))])
        #expect(FileManager.default.contents(atPath: temp.real(installed)) == ipxeBytes)
        #expect(report.plan?.notices.contains { $0.message.contains("stripped 1024 bytes of vendor header") } == true)
        #expect { try apply(["file": .string(files.real("/dump.rom")), "strip_header": .bool(false)]) } throws: {
            "\($0)".contains("1024 bytes of vendor header before the first image, and strip_header is false")
        }
    }

    @Test func sysfsDumpFromASnapshot() throws {
        let temp = try TempRoot(copying: "arch")
        let rom = temp.real("/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/rom")
        try ipxeBytes.write(to: URL(fileURLWithPath: rom))
        let (_, report) = try apply(["sysfs": .bool(true), "address": .string("0000:01:00.0"), "ids": .list([.string("1af4:1041")])], root: temp)
        #expect(report.changes.map(\.path) == [installed])
        #expect(FileManager.default.contents(atPath: temp.real(installed)) == ipxeBytes)
        #expect { try apply(["sysfs": .bool(true), "address": .string("0000:00:14.0")], root: temp) } throws: {
            "\($0)".contains("0000:00:14.0 exposes no ROM")
        }
    }
}
