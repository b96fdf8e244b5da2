import CGit2
import Foundation

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

    /// `redact` rewrites each printed line (and a hunk header's context text) before it is output.
    public static func unified(
        old: Data, new: Data, oldLabel: String, newLabel: String, context: Int = 3, redact: ((Substring) -> String)? = nil
    ) -> String {
        guard String(data: old, encoding: .utf8) != nil, String(data: new, encoding: .utf8) != nil, !old.contains(0), !new.contains(0)
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
