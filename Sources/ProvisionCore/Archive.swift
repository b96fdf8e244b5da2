import CArchive
import Foundation
import ProvisionPluginAPI

#if canImport(Glibc)
import Glibc
#endif

/// The compression of an archive, chosen by its file name.
public enum ArchiveCompression: String, Sendable, Codable {
    case plain = "tar"
    case gzip = "tar.gz"
    case zstd = "tar.zst"

    public static func forFile(_ path: String) -> ArchiveCompression? {
        let name = (path as NSString).lastPathComponent.lowercased()
        if name.hasSuffix(".tar.gz") || name.hasSuffix(".tgz") { return .gzip }
        if name.hasSuffix(".tar.zst") || name.hasSuffix(".tzst") { return .zstd }
        if name.hasSuffix(".tar") { return .plain }
        return nil
    }
}

private let localeReady: Bool = {
    // libarchive converts path names through the C locale: without a UTF-8 one, a non-ASCII name fails.
    setlocale(LC_CTYPE, "C.UTF-8")
    return true
}()

private func archiveError(_ archive: OpaquePointer?, _ what: String) -> ProvisionError {
    let detail = archive.flatMap { archive_error_string($0) }.map { String(cString: $0) } ?? "unknown libarchive error"
    return ProvisionError(.io, "\(what): \(detail)")
}

/// Writes a tar archive (POSIX pax, restricted to ustar headers where they suffice), optionally
/// compressed, member by member, through libarchive. Entries are regular files, mode 0600, owned
/// by 0:0, with a fixed modification time, so the same content gives the same tar stream.
final class TarWriter {
    private var archive: OpaquePointer?
    private let mtime: Int

    /// `fd` is owned by the caller and must stay open until `finish`.
    init(fd: Int32, compression: ArchiveCompression, mtime: Date) throws {
        _ = localeReady
        guard let archive = archive_write_new() else { throw ProvisionError(.io, "libarchive: cannot start an archive") }
        self.archive = archive
        self.mtime = Int(mtime.timeIntervalSince1970)
        var status = archive_write_set_format_pax_restricted(archive)
        switch compression {
        case .plain:
            status = max(status, archive_write_add_filter_none(archive))
        case .gzip:
            status = max(status, archive_write_add_filter_gzip(archive))
            // No time stamp in the gzip header: the same content gives the same bytes.
            _ = archive_write_set_filter_option(archive, "gzip", "timestamp", nil)
        case .zstd:
            status = max(status, archive_write_add_filter_zstd(archive))
        }
        guard status == ARCHIVE_OK, archive_write_set_bytes_in_last_block(archive, 1) == ARCHIVE_OK,
            archive_write_open_fd(archive, fd) == ARCHIVE_OK
        else {
            defer { archive_write_free(archive); self.archive = nil }
            throw archiveError(archive, "cannot write a \(compression.rawValue) archive")
        }
    }

    deinit { if let archive { archive_write_free(archive) } }

    func add(_ name: String, _ data: Data) throws {
        guard let archive else { throw ProvisionError(.io, "archive already closed") }
        guard let entry = archive_entry_new() else { throw ProvisionError(.io, "libarchive: cannot make an entry") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, name)
        archive_entry_set_filetype(entry, 0o100000)
        archive_entry_set_perm(entry, 0o600)
        archive_entry_set_uid(entry, 0)
        archive_entry_set_gid(entry, 0)
        archive_entry_set_mtime(entry, time_t(mtime), 0)
        archive_entry_set_size(entry, la_int64_t(data.count))
        guard archive_write_header(archive, entry) == ARCHIVE_OK else { throw archiveError(archive, "cannot add \(name)") }
        var offset = 0
        while offset < data.count {
            let chunk = min(1 << 20, data.count - offset)
            let written = data.withUnsafeBytes { raw in
                archive_write_data(archive, raw.baseAddress!.advanced(by: offset), chunk)
            }
            guard written > 0 else { throw archiveError(archive, "cannot write \(name)") }
            offset += Int(written)
        }
    }

    func finish() throws {
        guard let archive else { return }
        defer {
            archive_write_free(archive)
            self.archive = nil
        }
        guard archive_write_close(archive) == ARCHIVE_OK else { throw archiveError(archive, "cannot finish the archive") }
    }
}

extension TarWriter {
    /// libarchive and the compression libraries it was built with ("libarchive 3.6.2 zlib/1.2.13 …
    /// libzstd/1.5.4"): an export records it, so a verifier with the same ones can re-compress.
    static var libraries: String {
        _ = localeReady
        return String(cString: archive_version_details())
    }

    /// `data` compressed as an export's stream is (libarchive's filter, defaults, no padding).
    static func compress(_ data: Data, _ compression: ArchiveCompression) throws -> Data {
        var template = Array("/tmp/provision-recompress-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw ProvisionError.io("cannot make a temporary file in", "/tmp") }
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        defer {
            close(fd)
            unlink(path)
        }
        guard let archive = archive_write_new() else { throw ProvisionError(.io, "libarchive: cannot start an archive") }
        defer { archive_write_free(archive) }
        var status = archive_write_set_format_raw(archive)
        switch compression {
        case .plain: status = max(status, archive_write_add_filter_none(archive))
        case .gzip:
            status = max(status, archive_write_add_filter_gzip(archive))
            _ = archive_write_set_filter_option(archive, "gzip", "timestamp", nil)
        case .zstd: status = max(status, archive_write_add_filter_zstd(archive))
        }
        guard status == ARCHIVE_OK, archive_write_set_bytes_in_last_block(archive, 1) == ARCHIVE_OK,
            archive_write_open_fd(archive, fd) == ARCHIVE_OK, let entry = archive_entry_new()
        else { throw archiveError(archive, "cannot compress") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, "stream")
        archive_entry_set_filetype(entry, 0o100000)
        archive_entry_set_size(entry, la_int64_t(data.count))
        guard archive_write_header(archive, entry) == ARCHIVE_OK else { throw archiveError(archive, "cannot compress") }
        var offset = 0
        while offset < data.count {
            let chunk = min(1 << 20, data.count - offset)
            let written = data.withUnsafeBytes { archive_write_data(archive, $0.baseAddress!.advanced(by: offset), chunk) }
            guard written > 0 else { throw archiveError(archive, "cannot compress") }
            offset += Int(written)
        }
        guard archive_write_close(archive) == ARCHIVE_OK else { throw archiveError(archive, "cannot compress") }
        return FileManager.default.contents(atPath: path) ?? Data()
    }
}

/// Reads a tar archive (plain, gzip or zstd; nothing else is accepted) member by member.
final class TarReader {
    struct Entry {
        var name: String
        var isRegularFile: Bool
        var size: Int
    }

    private let archive: OpaquePointer

    init(path: String) throws {
        _ = localeReady
        guard let archive = archive_read_new() else { throw ProvisionError(.io, "libarchive: cannot start reading") }
        self.archive = archive
        archive_read_support_format_tar(archive)
        archive_read_support_filter_gzip(archive)
        archive_read_support_filter_zstd(archive)
        guard archive_read_open_filename(archive, path, 64 << 10) == ARCHIVE_OK else {
            throw ProvisionError(.invalidInput, "\(path) is not a tar archive (plain, gzip or zstd): \(archiveError(archive, "").message.dropFirst(2))")
        }
    }

    deinit { archive_read_free(archive) }

    func next() throws -> Entry? {
        var entry: OpaquePointer?
        let status = archive_read_next_header(archive, &entry)
        if status == ARCHIVE_EOF { return nil }
        guard status == ARCHIVE_OK, let entry else { throw archiveError(archive, "the archive is damaged") }
        let name = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
        return Entry(name: name, isRegularFile: archive_entry_filetype(entry) == 0o100000, size: Int(archive_entry_size(entry)))
    }

    /// The current member's bytes; more than `limit` is refused.
    func read(limit: Int) throws -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
            if count == 0 { return data }
            guard count > 0 else { throw archiveError(archive, "the archive is damaged") }
            data.append(contentsOf: buffer[0..<Int(count)])
            guard data.count <= limit else { throw ProvisionError(.invalidInput, "an archive member is larger than \(limit >> 20) MiB") }
        }
    }

    /// The whole tar stream after decompression (for the structure check), bounded.
    static func decompressed(path: String, limit: Int) throws -> Data {
        _ = localeReady
        guard let archive = archive_read_new() else { throw ProvisionError(.io, "libarchive: cannot start reading") }
        defer { archive_read_free(archive) }
        archive_read_support_format_raw(archive)
        archive_read_support_filter_gzip(archive)
        archive_read_support_filter_zstd(archive)
        var entry: OpaquePointer?
        guard archive_read_open_filename(archive, path, 64 << 10) == ARCHIVE_OK, archive_read_next_header(archive, &entry) == ARCHIVE_OK else {
            throw archiveError(archive, "cannot read \(path)")
        }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
            if count == 0 { return data }
            guard count > 0 else { throw archiveError(archive, "\(path) is damaged") }
            data.append(contentsOf: buffer[0..<Int(count)])
            guard data.count <= limit else { throw ProvisionError(.invalidInput, "\(path) holds more than \(limit >> 20) MiB") }
        }
    }
}

/// The checks libarchive's reader does not do, so that no byte of an archive is ignored: every
/// tar header's checksum, the zero padding after each member and after the end marker, and a gzip
/// stream's CRC-32 and length against its trailer.
enum ArchiveLayout {
    /// The problem with a tar stream's layout, nil when every byte is accounted for.
    static func tarProblem(_ tar: Data) -> String? {
        let bytes = [UInt8](tar)
        var offset = 0
        func octal(_ range: Range<Int>) -> Int? {
            let field = bytes[range]
            if let first = field.first, first & 0x80 != 0 {
                // Base-256 (GNU) for big sizes.
                return field.dropFirst().reduce(Int(first & 0x7f)) { $0 << 8 | Int($1) }
            }
            let text = String(decoding: field.prefix { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            return text.isEmpty ? 0 : Int(text, radix: 8)
        }
        while offset + 512 <= bytes.count {
            let header = offset..<(offset + 512)
            if bytes[header].allSatisfy({ $0 == 0 }) {
                guard bytes.count - offset >= 1024 else { return "the end-of-archive marker is cut short" }
                guard bytes[offset...].allSatisfy({ $0 == 0 }) else { return "bytes follow the end of the archive at offset \(offset)" }
                return nil
            }
            guard let recorded = octal((offset + 148)..<(offset + 156)) else { return "the header at offset \(offset) has no checksum" }
            var sum = 0
            for index in header { sum += (148..<156).contains(index - offset) ? 0x20 : Int(bytes[index]) }
            guard sum == recorded else { return "the header at offset \(offset) fails its checksum" }
            guard let size = octal((offset + 124)..<(offset + 136)), size >= 0 else { return "the header at offset \(offset) has no size" }
            let type = bytes[offset + 156]
            // Links, directories and devices carry no data whatever the size field says.
            let carries = !"12345".utf8.contains(type)
            let length = carries ? size : 0
            let padded = (length + 511) / 512 * 512
            let dataStart = offset + 512
            guard dataStart + padded <= bytes.count else { return "the member at offset \(offset) is cut short" }
            guard bytes[(dataStart + length)..<(dataStart + padded)].allSatisfy({ $0 == 0 }) else {
                return "the padding after the member at offset \(offset) is not zero"
            }
            offset = dataStart + padded
        }
        return "the archive has no end-of-archive marker"
    }

    /// The problem with a gzip file, nil when it is one member with the header provision export
    /// writes (no flags, no time stamp, no extra flags, Unix) and a CRC-32 and length that agree
    /// with the decompressed stream.
    static func gzipProblem(file: Data, decompressed: Data) -> String? {
        let bytes = [UInt8](file.prefix(10))
        guard bytes.count == 10, bytes[0] == 0x1f, bytes[1] == 0x8b, bytes[2] == 8 else { return "the gzip header is damaged" }
        guard bytes[3...] == [0, 0, 0, 0, 0, 0, 3] else { return "the gzip header is not the one provision export writes (flags, time stamp, OS)" }
        let trailer = [UInt8](file.suffix(8))
        guard trailer.count == 8 else { return "the gzip trailer is missing" }
        let crc = UInt32(trailer[0]) | UInt32(trailer[1]) << 8 | UInt32(trailer[2]) << 16 | UInt32(trailer[3]) << 24
        let size = UInt32(trailer[4]) | UInt32(trailer[5]) << 8 | UInt32(trailer[6]) << 16 | UInt32(trailer[7]) << 24
        guard size == UInt32(truncatingIfNeeded: decompressed.count) else { return "the gzip trailer's length does not match" }
        guard crc == CRC32.checksum(decompressed) else { return "the gzip trailer's CRC-32 does not match" }
        return nil
    }
}

extension ArchiveLayout {
    /// The problem with a zstd frame header, nil when it is the one provision export writes
    /// through libarchive (content size unknown, no dictionary; window 2 MiB, level 3's): a damaged
    /// descriptor can otherwise still decode. The frame's blocks are checked by decoding them.
    static func zstdProblem(file: Data) -> String? {
        let bytes = [UInt8](file.prefix(6))
        guard bytes.count == 6, bytes[0...3] == [0x28, 0xb5, 0x2f, 0xfd] else { return "the zstd frame header is damaged" }
        guard bytes[4] & ~0x04 == 0, bytes[5] == 0x58 else { return "the zstd frame header is not the one provision export writes" }
        return nil
    }
}

/// CRC-32 (IEEE 802.3, as gzip uses it).
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    static func checksum(_ data: Data) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        data.withUnsafeBytes { raw in
            for byte in raw.bindMemory(to: UInt8.self) { crc = table[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
