import Foundation
import ProvisionPluginAPI

import CSystem

#if canImport(Glibc)
import Glibc
#endif

/// Reading from outside the root: downloads and files on the machine provision runs on. The core
/// owns these, like every other I/O, so plugins stay functions of what they are given; each has a
/// size cap, downloads also time-outs and bounded redirects.
public enum Fetch {
    /// Downloads `url` into memory. https only unless `allowHTTP`; at most `maxRedirects` redirects,
    /// never from https down to http; fails past `maxBytes`.
    public static func download(_ url: URL, maxBytes: Int, allowHTTP: Bool, timeout: TimeInterval = 30, maxRedirects: Int = 5)
        throws -> Data
    {
        guard url.scheme == "https" || (url.scheme == "http" && allowHTTP) else {
            throw ProvisionError(
                .invalidInput, url.scheme == "http" ? "\(url) is plain http: use https, or say insecure: true" : "\(url) is not an http(s) URL")
        }
        var current = url
        var redirects = 0
        while true {
            let response = try get(current, maxBytes: maxBytes, timeout: timeout)
            if let location = response.location, (300..<400).contains(response.status) {
                redirects += 1
                guard redirects <= maxRedirects else { throw failure(url, "more than \(maxRedirects) redirects") }
                guard let next = URL(string: location), next.scheme == "https" || (next.scheme == "http" && allowHTTP) else {
                    throw failure(url, "redirected to \(location), which is not https")
                }
                current = next
                continue
            }
            guard response.status == 200 else { throw failure(url, "HTTP status \(response.status)") }
            return response.body
        }
    }

    private static func failure(_ url: URL, _ message: String) -> ProvisionError {
        ProvisionError(.io, "download of \(url) failed: \(message)")
    }

    /// One request through libcurl (loaded on first use by CSystem), redirects not followed.
    private static func get(_ url: URL, maxBytes: Int, timeout: TimeInterval) throws -> (status: Int, body: Data, location: String?) {
        var status = 0
        var body: UnsafeMutablePointer<UInt8>?
        var length = 0
        var location: UnsafeMutablePointer<CChar>?
        var error = [CChar](repeating: 0, count: 512)
        let result = provision_http_get(
            url.absoluteString, max(1, Int(timeout.rounded(.up))), Int64(maxBytes), &status, &body, &length, &location, &error, error.count)
        defer {
            free(body)
            free(location)
        }
        switch result {
        case 0:
            let data = body.map { Data(bytes: $0, count: length) } ?? Data()
            return (status, data, location.map { String(cString: $0) })
        case 1: throw failure(url, "more than the limit of \(maxBytes) bytes")
        default: throw failure(url, String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
    }

    /// A file on this machine (not in the root), e.g. next to the recipe; at most `maxBytes`.
    /// Opened without blocking and checked before reading, so a FIFO or a device is refused
    /// instead of hanging the run.
    public static func localFile(_ path: String, maxBytes: Int) throws -> Data {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { throw ProvisionError.io("cannot read", path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ProvisionError.io("cannot stat", path) }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ProvisionError(.invalidInput, "\(path) is \(HostRoot.describeType(info.st_mode)), not a regular file")
        }
        guard Int(info.st_size) <= maxBytes else {
            throw ProvisionError(.invalidInput, "\(path) is \(info.st_size) bytes, more than the limit of \(maxBytes)")
        }
        return try HostRoot.readAll(fd, size: Int(info.st_size), what: path, limit: maxBytes)
    }
}

/// The core's fetcher of declared inputs, each with its cap.
public struct FetchInputs: InputProvider {
    public init() {}

    public func fetch(_ input: DeclaredInput, root: HostRoot) throws -> Data {
        switch input.source {
        case .download(let url, let allowHTTP): return try Fetch.download(url, maxBytes: input.maxBytes, allowHTTP: allowHTTP)
        case .localFile(let path): return try Fetch.localFile(path, maxBytes: input.maxBytes)
        case .pciROM(let address): return try Fetch.pciROM(address, root: root, maxBytes: input.maxBytes)
        }
    }
}

extension Fetch {
    /// A PCI function's option ROM from ROOT/sys. On the live host the kernel hides it until asked:
    /// write 1 to `rom`, read it, write 0 again (the only sysfs write provision makes, and undone at
    /// once). In other roots (snapshots) `rom` is read as the file it is there.
    public static func pciROM(_ address: String, root: HostRoot, maxBytes: Int) throws -> Data {
        let path = "/sys/bus/pci/devices/\(address)/rom"
        guard let resolved = try? root.resolve(HostRoot.normalize(path)), root.status(resolved) != nil else {
            throw ProvisionError(.notFound, "\(address) exposes no ROM (no \(path))")
        }
        let writer = try RootWriter(root)
        /// sysfs attributes take one write(2); no temp files, no renames.
        func poke(_ value: String) -> Bool {
            let fd = writer.openBeneath(resolved, O_WRONLY)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            return value.withCString { write(fd, $0, strlen($0)) } > 0
        }
        if root.isLiveHost && !poke("1") { throw ProvisionError.io("cannot enable the ROM of", address) }
        defer { if root.isLiveHost { _ = poke("0") } }
        let fd = writer.openBeneath(resolved, O_RDONLY | O_NONBLOCK)
        guard fd >= 0 else { throw ProvisionError.io("cannot read the ROM of", address) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw ProvisionError(.invalidInput, "\(path) is not a regular file")
        }
        return try HostRoot.readAll(fd, size: Int(info.st_size), what: path, limit: maxBytes)
    }
}
