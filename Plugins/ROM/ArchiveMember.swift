import CArchive
import Foundation
import ProvisionPluginAPI

/// One member of a zip or tar archive (any format and filter libarchive reads), from memory.
enum ArchiveMember {
    private static let localeSet: Bool = {
        // libarchive converts path names with the C locale's charset; non-ASCII names crash without this.
        setlocale(LC_CTYPE, "C.UTF-8")
        return true
    }()

    static func extract(_ member: String, from archive: Data, name: String, maxBytes: Int) throws -> Data {
        _ = localeSet
        guard let reader = archive_read_new() else { throw ProvisionError(.io, "cannot create an archive reader") }
        defer { archive_read_free(reader) }
        archive_read_support_format_all(reader)
        archive_read_support_filter_all(reader)
        func failure(_ what: String) -> ProvisionError {
            let detail = archive_error_string(reader).map { String(cString: $0) } ?? "unknown error"
            return ProvisionError(.invalidInput, "\(name): \(what): \(detail)")
        }
        return try archive.withUnsafeBytes { buffer -> Data in
            guard archive_read_open_memory(reader, buffer.baseAddress, buffer.count) == ARCHIVE_OK else {
                throw failure("not a readable archive")
            }
            var entry: OpaquePointer?
            var names: [String] = []
            while true {
                let status = archive_read_next_header(reader, &entry)
                if status == ARCHIVE_EOF { break }
                guard status == ARCHIVE_OK || status == ARCHIVE_WARN, let entry else { throw failure("cannot read the next entry") }
                let path = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
                names.append(path)
                let normalized = path.hasPrefix("./") ? String(path.dropFirst(2)) : path
                guard normalized == member else { continue }
                let size = archive_entry_size(entry)
                guard size <= Int64(maxBytes) else {
                    throw ProvisionError(.invalidInput, "\(name): \(member) is \(size) bytes, more than the limit of \(maxBytes)")
                }
                var data = Data()
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let read = archive_read_data(reader, &chunk, chunk.count)
                    if read < 0 { throw failure("cannot read \(member)") }
                    if read == 0 { break }
                    data.append(contentsOf: chunk[0..<read])
                    guard data.count <= maxBytes else {
                        throw ProvisionError(.invalidInput, "\(name): \(member) is larger than the limit of \(maxBytes) bytes")
                    }
                }
                return data
            }
            let listing = names.prefix(20).joined(separator: ", ")
            throw ProvisionError(.invalidInput, "\(name) has no member \(member) (it has: \(listing.isEmpty ? "nothing" : listing))")
        }
    }
}
