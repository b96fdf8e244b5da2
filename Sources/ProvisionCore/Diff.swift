import Foundation

/// Unified diffs (as `diff -u` and git print them) for plan output, drift refusals and `show`.
public enum Diff {
    enum Edit: Equatable {
        case same(Int, Int)
        case delete(Int)
        case insert(Int)
    }

    /// Describes a change of one file: content diff, and owner/mode changes on their own lines.
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
                oldLabel: oldData == nil ? "/dev/null" : "a\(path)", newLabel: newData == nil ? "/dev/null" : "b\(path)")
        }
        return out
    }

    public static func unified(old: Data, new: Data, oldLabel: String, newLabel: String, context: Int = 3) -> String {
        guard let oldText = String(data: old, encoding: .utf8), let newText = String(data: new, encoding: .utf8),
            !old.contains(0), !new.contains(0)
        else {
            return "Binary files \(oldLabel) and \(newLabel) differ (\(old.count) -> \(new.count) bytes)\n"
        }
        let a = lines(oldText), b = lines(newText)
        // A missing final newline makes a line differ, as in diff -u.
        let edits = script(a.map { $0.text + ($0.terminated ? "\n" : "") }, b.map { $0.text + ($0.terminated ? "\n" : "") })
        var out = "--- \(oldLabel)\n+++ \(newLabel)\n"
        for hunk in hunks(edits, context: context) {
            var oldCount = 0, newCount = 0
            var body = ""
            for edit in hunk.edits {
                switch edit {
                case .same(let i, _):
                    oldCount += 1; newCount += 1
                    body += " " + a[i].text + "\n" + (a[i].terminated ? "" : "\\ No newline at end of file\n")
                case .delete(let i):
                    oldCount += 1
                    body += "-" + a[i].text + "\n" + (a[i].terminated ? "" : "\\ No newline at end of file\n")
                case .insert(let j):
                    newCount += 1
                    body += "+" + b[j].text + "\n" + (b[j].terminated ? "" : "\\ No newline at end of file\n")
                }
            }
            out += "@@ -\(range(hunk.oldStart, oldCount)) +\(range(hunk.newStart, newCount)) @@\n" + body
        }
        return out
    }

    private static func range(_ start: Int, _ count: Int) -> String {
        // diff -u numbers from 1; an empty range names the line before it.
        let first = count == 0 ? start : start + 1
        return count == 1 ? "\(first)" : "\(first),\(count)"
    }

    struct Line {
        var text: String
        var terminated: Bool
    }

    static func lines(_ text: String) -> [Line] {
        var parts = text.split(separator: "\n", omittingEmptySubsequences: false).map { Line(text: String($0), terminated: true) }
        if parts.last?.text == "" {
            parts.removeLast()
        } else if !parts.isEmpty {
            parts[parts.count - 1].terminated = false
        }
        return parts
    }

    /// Myers' O((N+M)D) shortest edit script.
    static func script(_ a: [String], _ b: [String]) -> [Edit] {
        let n = a.count, m = b.count
        let maxD = n + m
        if maxD == 0 { return [] }
        let offset = maxD
        var v = [Int](repeating: 0, count: 2 * maxD + 2)
        var trace: [[Int]] = []
        outer: for d in 0...maxD {
            trace.append(v)
            for k in stride(from: -d, through: d, by: 2) {
                var x: Int
                if k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1]) {
                    x = v[offset + k + 1]
                } else {
                    x = v[offset + k - 1] + 1
                }
                var y = x - k
                while x < n && y < m && a[x] == b[y] {
                    x += 1
                    y += 1
                }
                v[offset + k] = x
                if x >= n && y >= m { break outer }
            }
        }
        var edits: [Edit] = []
        var x = n, y = m
        for d in stride(from: trace.count - 1, through: 0, by: -1) {
            let v = trace[d]
            let k = x - y
            let prevK: Int
            if k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1]) {
                prevK = k + 1
            } else {
                prevK = k - 1
            }
            let prevX = d == 0 ? 0 : v[offset + prevK]
            let prevY = prevX - prevK
            while x > prevX && y > prevY {
                x -= 1
                y -= 1
                edits.append(.same(x, y))
            }
            if d > 0 {
                if x == prevX {
                    y -= 1
                    edits.append(.insert(y))
                } else {
                    x -= 1
                    edits.append(.delete(x))
                }
            }
        }
        return edits.reversed()
    }

    struct Hunk {
        var oldStart: Int
        var newStart: Int
        var edits: [Edit]
    }

    static func hunks(_ edits: [Edit], context: Int) -> [Hunk] {
        // Where each edit starts in the old and new file.
        var positions: [(old: Int, new: Int)] = []
        var oldPos = 0, newPos = 0
        for edit in edits {
            positions.append((oldPos, newPos))
            switch edit {
            case .same: oldPos += 1; newPos += 1
            case .delete: oldPos += 1
            case .insert: newPos += 1
            }
        }
        let changed = edits.indices.filter { if case .same = edits[$0] { return false } else { return true } }
        guard !changed.isEmpty else { return [] }
        var groups: [Hunk] = []
        func close(_ start: Int, _ end: Int) {
            groups.append(Hunk(oldStart: positions[start].old, newStart: positions[start].new, edits: Array(edits[start...end])))
        }
        var start = max(0, changed[0] - context)
        var end = min(edits.count - 1, changed[0] + context)
        for index in changed.dropFirst() {
            if index - context <= end + 1 {
                end = min(edits.count - 1, index + context)
            } else {
                close(start, end)
                start = max(0, index - context)
                end = min(edits.count - 1, index + context)
            }
        }
        close(start, end)
        return groups
    }
}
