import Foundation

/// Ownership and permission bits of a regular file, by numeric id (names live in the root's own
/// passwd/group files and are looked up separately).
public struct FileMeta: Sendable, Hashable, Codable {
    /// Permission bits only (07777), never the file-type bits.
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32

    public init(mode: UInt32, uid: UInt32, gid: UInt32) {
        self.mode = mode & 0o7777
        self.uid = uid
        self.gid = gid
    }

    /// Mode as the four-digit octal string people write in recipes and read in history.
    public var modeString: String { mode.digits(radix: 8, width: 4) }

    public static func parseMode(_ text: String) -> UInt32? {
        let digits = text.hasPrefix("0o") ? String(text.dropFirst(2)) : text
        guard (3...4).contains(digits.count), let value = UInt32(digits, radix: 8) else { return nil }
        return value
    }
}

/// What a path holds: nothing, or a regular file with its bytes and metadata.
public enum FileState: Sendable, Hashable {
    case absent
    case file(Data, FileMeta)

    public var content: Data? {
        if case .file(let data, _) = self { return data }
        return nil
    }

    public var meta: FileMeta? {
        if case .file(_, let meta) = self { return meta }
        return nil
    }

    public var exists: Bool { self != .absent }
}
