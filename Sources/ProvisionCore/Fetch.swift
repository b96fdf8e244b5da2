import Foundation
import ProvisionPluginAPI

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

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
        let task = DownloadTask(url: url, maxBytes: maxBytes, allowHTTP: allowHTTP, maxRedirects: maxRedirects)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout * 4
        let session = URLSession(configuration: configuration, delegate: task, delegateQueue: nil)
        defer { session.invalidateAndCancel() }
        session.dataTask(with: url).resume()
        task.done.wait()
        return try task.result()
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

private final class DownloadTask: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let url: URL
    let maxBytes: Int
    let allowHTTP: Bool
    let maxRedirects: Int
    let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var data = Data()
    private var failure: ProvisionError?
    private var redirects = 0

    init(url: URL, maxBytes: Int, allowHTTP: Bool, maxRedirects: Int) {
        self.url = url
        self.maxBytes = maxBytes
        self.allowHTTP = allowHTTP
        self.maxRedirects = maxRedirects
    }

    private func fail(_ message: String) {
        lock.withLock { if failure == nil { failure = ProvisionError(.io, "download of \(url) failed: \(message)") } }
    }

    func result() throws -> Data {
        try lock.withLock {
            if let failure { throw failure }
            return data
        }
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse, newRequest request: URLRequest,
        completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        let count = lock.withLock { () -> Int in
            redirects += 1
            return redirects
        }
        if count > maxRedirects {
            fail("more than \(maxRedirects) redirects")
            completionHandler(nil)
            task.cancel()
        } else if request.url?.scheme != "https" && !(request.url?.scheme == "http" && allowHTTP) {
            fail("redirected to \(request.url?.absoluteString ?? "?"), which is not https")
            completionHandler(nil)
            task.cancel()
        } else {
            completionHandler(request)
        }
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void
    ) {
        if let http = response as? HTTPURLResponse, http.statusCode != 200 {
            fail("HTTP status \(http.statusCode)")
            completionHandler(.cancel)
        } else if response.expectedContentLength > Int64(maxBytes) {
            fail("\(response.expectedContentLength) bytes announced, more than the limit of \(maxBytes)")
            completionHandler(.cancel)
        } else {
            completionHandler(.allow)
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive chunk: Data) {
        let tooBig = lock.withLock { () -> Bool in
            data.append(chunk)
            return data.count > maxBytes
        }
        if tooBig {
            fail("more than the limit of \(maxBytes) bytes")
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error { fail(error.localizedDescription) }
        done.signal()
    }
}
