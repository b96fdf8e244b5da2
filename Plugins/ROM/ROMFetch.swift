import Foundation
import ProvisionPluginAPI
import ProvisionDevices
import ProvisionEdit

/// `rom.fetch`: gets a clean VBIOS (https URL with a sha256 pin, a local file, a member of a zip or
/// tar archive, or a dump of the card's ROM from sysfs), verifies it before anything is installed
/// (structure, last-image bit, legacy checksums, ids of the target GPU, an EFI image for UEFI
/// guests, a flash tool's header stripped), installs it for QEMU and exports its path.
public struct ROMFetch: StepPlugin {
    public init() {}
    public let kind = "rom.fetch"
    public let summary = "Fetch and verify a GPU option ROM (url with sha256, file, archive member, sysfs dump) and install it."
    public let options: [OptionSpec] = [
        OptionSpec("url", .string, help: "https URL of the ROM or of an archive holding it (needs sha256)"),
        OptionSpec("file", .string, help: "a ROM or archive on this machine (relative paths: next to the recipe)"),
        OptionSpec("sysfs", .bool, default: "false", help: "dump the target card's ROM from ROOT/sys (write 1 to rom, read, write 0)"),
        OptionSpec("member", .string, help: "path of the ROM inside the zip or tar archive that url or file names"),
        OptionSpec("sha256", .string, help: "expected SHA-256 of what url or file gives (required for url)"),
        OptionSpec("insecure", .bool, default: "false", help: "allow a plain http URL"),
        OptionSpec("ids", .stringList, default: "facts.gpu: the GPU's vendor:device", help: "ids the ROM must support"),
        OptionSpec("address", .string, default: "facts.gpu.address", help: "sysfs only: the card's PCI address"),
        OptionSpec("efi", .choice(["require", "warn", "ignore"]), default: "require", help: "an EFI image is needed for UEFI guests"),
        OptionSpec("strip_header", .bool, default: "true", help: "cut a flash tool's header before the first image"),
        OptionSpec("dest", .path, default: "/var/lib/provision/roms/VVVV-DDDD-HASH.rom", help: "where to install the ROM"),
        OptionSpec("max_size", .int, default: "4194304", help: "largest ROM (or archive) accepted, in bytes"),
    ]

    public func plan(_ step: StepContext) throws -> StepPlan {
        let options = step.options
        let host = step.host
        let maxSize = try options.int("max_size") ?? 4 << 20
        let (data, source) = try fetch(step, maxSize: maxSize)

        var rom = try OptionROM.parse(data, name: source)
        var bytes = data
        var notices: [Notice] = []
        if rom.headerLength > 0 {
            guard try options.bool("strip_header", default: true) else {
                throw ProvisionError(
                    .invalidInput, "\(source): \(rom.headerLength) bytes of vendor header before the first image, and strip_header is false",
                    at: options.stepLocation)
            }
            notices.append(Notice(.info, "stripped \(rom.headerLength) bytes of vendor header (a flash tool's dump) before the first image"))
            bytes = data.subdata(in: rom.headerLength..<data.count)
            rom = try OptionROM.parse(bytes, name: source)
        }
        if let fault = rom.faults.first { throw ProvisionError(.invalidInput, "\(source): \(fault)", at: options.stepLocation) }

        let target = try targetIDs(options, gpu: GPUFacts.read(host))
        for id in target where !rom.supports(id) {
            let romIDs = Set(rom.images.flatMap(\.ids)).sorted().joined(separator: ", ")
            throw ProvisionError(.invalidInput, "\(source) is a ROM for \(romIDs), not for the target GPU \(id)", at: options.location(of: "ids"))
        }
        switch try options.string("efi", default: "require") {
        case "require" where !rom.hasEFI:
            throw ProvisionError(
                .invalidInput, "\(source) has no EFI image: a UEFI guest could not initialise the card with it (efi: warn to go on)",
                at: options.stepLocation)
        case "warn" where !rom.hasEFI:
            notices.append(Notice(.warning, "\(source) has no EFI image: only a BIOS guest can use it"))
        default:
            break
        }
        let digest = SHA256.hex(bytes)
        let first = rom.images[0]
        let dest = try options.path("dest") ?? "/var/lib/provision/roms/\(first.vendor)-\(first.device)-\(digest.prefix(12)).rom"
        notices.append(Notice(.info, "ROM \(source): " + rom.report.split(separator: "\n").joined(separator: "; ")))
        return StepPlan(
            files: [DesiredFile(path: dest, state: .present(bytes, mode: 0o644))], notices: notices,
            exports: try ROMFacts(path: dest, sha256: digest, efi: rom.hasEFI).export)
    }

    /// The one source the options name: a download, a file beside the recipe, or the card's ROM in
    /// sysfs. The core fetches it (with the cap) before `plan`.
    public func inputs(_ step: StepContext) throws -> [DeclaredInput] {
        [try source(step.options, host: step.host)]
    }

    func source(_ options: StepOptions, host: HostView) throws -> DeclaredInput {
        let url = try options.string("url"), file = try options.string("file")
        let sysfs = try options.bool("sysfs", default: false)
        guard [url != nil, file != nil, sysfs].filter({ $0 }).count == 1 else {
            throw ProvisionError(.invalidInput, "rom.fetch needs exactly one of url, file and sysfs", at: options.stepLocation)
        }
        let maxSize = try options.int("max_size") ?? 4 << 20
        let archiveLimit = try options.string("member") == nil ? maxSize : max(maxSize, 64 << 20)
        if let url {
            guard let parsed = URL(string: url), parsed.host != nil else { throw options.error("url", "\"\(url)\" is not a URL") }
            guard try options.string("sha256") != nil else {
                throw ProvisionError(.invalidInput, "a url source needs a sha256 pin: provision installs nothing it cannot check", at: options.location(of: "url"))
            }
            return DeclaredInput(.download(parsed, allowHTTP: try options.bool("insecure", default: false)), maxBytes: archiveLimit, option: "url")
        }
        if let file {
            let directory = (options.stepLocation.file as NSString).deletingLastPathComponent
            let path = file.hasPrefix("/") ? file : (directory.isEmpty ? file : directory + "/" + file)
            return DeclaredInput(.localFile(path), maxBytes: archiveLimit, option: "file")
        }
        guard let address = try options.string("address") ?? GPUFacts.read(host)?.address else {
            throw ProvisionError(.invalidInput, "sysfs needs the card: a gpu.select step before, or address", at: options.stepLocation)
        }
        return DeclaredInput(.pciROM(address: address), maxBytes: maxSize, option: options.has("address") ? "address" : "sysfs")
    }

    /// The bytes (checked against the pin, the member taken out of its archive) and a name for them
    /// in messages.
    func fetch(_ step: StepContext, maxSize: Int) throws -> (Data, String) {
        let options = step.options
        let declared = try source(options, host: step.host)
        var data = try step.input(declared)
        var name = declared.source.description
        if let expected = try options.string("sha256") {
            let actual = SHA256.hex(data)
            guard actual == expected.lowercased() else {
                throw ProvisionError(
                    .invalidInput, "\(name) has SHA-256 \(actual), not the pinned \(expected.lowercased()); nothing was installed",
                    at: options.location(of: "sha256"))
            }
        }
        if let member = try options.string("member") {
            data = try ArchiveMember.extract(member, from: data, name: name, maxBytes: maxSize)
            name += " (\(member))"
        }
        return (data, name)
    }

    func targetIDs(_ options: StepOptions, gpu: GPUFacts?) throws -> [String] {
        if let given = try options.stringList("ids") { return try PCIIDs.parse(given, options: options, option: "ids") }
        return gpu?.ids.first.map { [$0] } ?? []
    }
}

/// The ROM steps.
public let romSteps: [any StepPlugin] = [ROMFetch()]
