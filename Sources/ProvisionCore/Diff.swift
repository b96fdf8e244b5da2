import CGit2
import Foundation
import ProvisionPluginAPI

/// Unified diffs (as `diff -u` and git print them) for plan output, drift refusals and `show`.
/// The diff itself is libgit2's (git's xdiff): linear in memory, and the same hunks `git log -p`
/// shows for the history.
public enum Diff {
    /// Describes a change of one file: content diff, and owner/mode changes on their own lines.
    /// Password hashes in shadow files never leave the process (`Secrets`).
    public static func describe(path: String, before: FileState, after: FileState) -> String {
        var out = ""
        if let old = before.meta, let new = after.meta {
            if old.mode != new.mode { out += "mode \(old.modeString) -> \(new.modeString) \(path)\n" }
            if old.uid != new.uid || old.gid != new.gid {
                out += "owner \(old.uid):\(old.gid) -> \(new.uid):\(new.gid) \(path)\n"
            }
        }
        let oldData = before.content, newData = after.content
        if oldData != newData {
            out += unified(
                old: oldData ?? Data(), new: newData ?? Data(),
                oldLabel: oldData == nil ? "/dev/null" : "a\(path)", newLabel: newData == nil ? "/dev/null" : "b\(path)",
                redact: Secrets.redactor(for: path))
        }
        return out
    }

    /// A NUL byte anywhere (memchr: Data's own iterator goes byte by byte through a generic path).
    private static func hasNUL(_ data: Data) -> Bool {
        data.withUnsafeBytes { bytes in bytes.count > 0 && memchr(bytes.baseAddress!, 0, bytes.count) != nil }
    }

    /// `redact` rewrites each printed line (and a hunk header's context text) before it is output.
    /// `requireUTF8` false diffs any text without NUL bytes (as git does), not only UTF-8.
    public static func unified(
        old: Data, new: Data, oldLabel: String, newLabel: String, context: Int = 3, redact: ((Substring) -> String)? = nil,
        requireUTF8: Bool = true
    ) -> String {
        guard !requireUTF8 || (String(data: old, encoding: .utf8) != nil && String(data: new, encoding: .utf8) != nil), !hasNUL(old),
            !hasNUL(new)
        else {
            return "Binary files \(oldLabel) and \(newLabel) differ (\(old.count) -> \(new.count) bytes)\n"
        }
        // libgit2 keeps pointers into both buffers for the patch's life: read it inside the closures.
        return old.withUnsafeBytes { oldBytes in
            new.withUnsafeBytes { newBytes in
                patchText(oldBytes, newBytes, oldLabel: oldLabel, newLabel: newLabel, context: context, redact: redact)
            }
        }
    }

    private static func patchText(
        _ oldBytes: UnsafeRawBufferPointer, _ newBytes: UnsafeRawBufferPointer, oldLabel: String, newLabel: String, context: Int,
        redact: ((Substring) -> String)?
    ) -> String {
        GitRepository.initialize()
        var options = git_diff_options()
        git_diff_options_init(&options, UInt32(GIT_DIFF_OPTIONS_VERSION))
        options.context_lines = UInt32(context)
        options.flags = GIT_DIFF_FORCE_TEXT.rawValue
        var patch: OpaquePointer?
        let status = git_patch_from_buffers(
            &patch, oldBytes.baseAddress, oldBytes.count, oldLabel, newBytes.baseAddress, newBytes.count, newLabel, &options)
        var out = "--- \(oldLabel)\n+++ \(newLabel)\n"
        guard status == 0, let patch else {
            return out + "(no diff: \(GitRepository.lastError("libgit2").message))\n"
        }
        defer { git_patch_free(patch) }
        for hunkIndex in 0..<git_patch_num_hunks(patch) {
            var hunk: UnsafePointer<git_diff_hunk>?
            var lineCount = 0
            guard git_patch_get_hunk(&hunk, &lineCount, patch, hunkIndex) == 0, let hunk else { continue }
            let h = hunk.pointee
            out += "@@ -\(range(Int(h.old_start), Int(h.old_lines))) +\(range(Int(h.new_start), Int(h.new_lines))) @@"
            let header = withUnsafeBytes(of: h.header) { raw in
                String(decoding: raw.prefix(Int(h.header_len)), as: UTF8.self)
            }
            // git's function context after the second "@@", as `git log -p` shows it.
            if let close = header.range(of: "@@", options: [], range: header.index(header.startIndex, offsetBy: 2)..<header.endIndex) {
                let context = header[close.upperBound...].trimmingCharacters(in: .newlines)
                if !context.isEmpty {
                    let text = context.drop { $0 == " " }
                    out += " " + (redact?(text) ?? String(text))
                }
            }
            out += "\n"
            for lineIndex in 0..<lineCount {
                var line: UnsafePointer<git_diff_line>?
                guard git_patch_get_line_in_hunk(&line, patch, hunkIndex, lineIndex) == 0, let line else { continue }
                let origin = UInt8(bitPattern: line.pointee.origin)
                switch origin {
                case UInt8(ascii: " "), UInt8(ascii: "+"), UInt8(ascii: "-"):
                    let bytes = UnsafeRawBufferPointer(start: line.pointee.content, count: line.pointee.content_len)
                    var text = Substring(String(decoding: bytes, as: UTF8.self))
                    if text.hasSuffix("\n") { text = text.dropLast() }
                    out += String(UnicodeScalar(origin)) + (redact?(text) ?? String(text)) + "\n"
                case UInt8(ascii: "="), UInt8(ascii: ">"), UInt8(ascii: "<"):
                    out += "\\ No newline at end of file\n"
                default:
                    continue
                }
            }
        }
        return out
    }

    /// Lines as git counts them: split at newlines, a last line without one counts too.
    public static func lines(_ data: Data) -> [Substring] {
        let text = String(decoding: data, as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if text.hasSuffix("\n") || text.isEmpty { lines.removeLast() }
        return lines
    }

    /// For each line of `new`, the index of the line of `old` it still is, or nil for a line that
    /// was added or changed (git's hunks, no context).
    public static func lineMapping(old: Data, new: Data) -> [Int?] {
        let count = lines(new).count
        var mapping = [Int?](repeating: nil, count: count)
        var hunks: [(oldStart: Int, oldLines: Int, newStart: Int, newLines: Int)] = []
        GitRepository.initialize()
        old.withUnsafeBytes { oldBytes in
            new.withUnsafeBytes { newBytes in
                var options = git_diff_options()
                git_diff_options_init(&options, UInt32(GIT_DIFF_OPTIONS_VERSION))
                options.context_lines = 0
                options.flags = GIT_DIFF_FORCE_TEXT.rawValue
                var patch: OpaquePointer?
                guard git_patch_from_buffers(&patch, oldBytes.baseAddress, oldBytes.count, nil, newBytes.baseAddress, newBytes.count, nil, &options) == 0,
                    let patch
                else { return }
                defer { git_patch_free(patch) }
                for index in 0..<git_patch_num_hunks(patch) {
                    var hunk: UnsafePointer<git_diff_hunk>?
                    var lineCount = 0
                    guard git_patch_get_hunk(&hunk, &lineCount, patch, index) == 0, let h = hunk?.pointee else { continue }
                    hunks.append((Int(h.old_start), Int(h.old_lines), Int(h.new_start), Int(h.new_lines)))
                }
            }
        }
        var oldIndex = 0, newIndex = 0
        for hunk in hunks {
            // An empty side's start names the line before it.
            let newStart = hunk.newLines == 0 ? hunk.newStart : hunk.newStart - 1
            while newIndex < newStart && newIndex < count {
                mapping[newIndex] = oldIndex
                newIndex += 1
                oldIndex += 1
            }
            newIndex += hunk.newLines
            oldIndex += hunk.oldLines
        }
        while newIndex < count {
            mapping[newIndex] = oldIndex
            newIndex += 1
            oldIndex += 1
        }
        return mapping
    }

    /// diff -u ranges: "start,count", "start" when one line, and the line before for an empty range.
    private static func range(_ start: Int, _ count: Int) -> String {
        count == 1 ? "\(start)" : "\(start),\(count)"
    }
}

/// Password hashes in /etc/shadow and /etc/gshadow belong to their users: history keeps the real
/// bytes (it is 0700), but every diff, JSON document and message shows the field redacted.
public enum Secrets {
    public static let files: Set<String> = ["/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-"]

    public static func redactor(for path: String) -> ((Substring) -> String)? {
        guard files.contains(path) else { return nil }
        return { line in redact(line) }
    }

    /// A whole shadow or gshadow file with every hash field redacted (line ends kept).
    public static func redactText(_ data: Data) -> Data {
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return Data(lines.map { redact($0) }.joined(separator: "\n").utf8)
    }

    /// `name:HASH:rest` -> `name:<redacted>:rest`, keeping a lock prefix (`!`) and the markers that
    /// are not secrets (empty, `*`, `!`, `!!`, `x`).
    public static func redact(_ line: Substring) -> String {
        let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count >= 2 else { return String(line) }
        let lock = fields[1].prefix { $0 == "!" }
        let rest = fields[1].dropFirst(lock.count)
        guard !rest.isEmpty, rest != "*", rest != "x" else { return String(line) }
        var out = String(fields[0]) + ":" + String(lock) + "<redacted>"
        if fields.count == 3 { out += ":" + String(fields[2]) }
        return out
    }
}

extension FileChange {
    /// Unified diff plus a line for owner/mode changes.
    public var diff: String { Diff.describe(path: path, before: before, after: after) }
}
