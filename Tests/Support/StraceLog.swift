import Foundation

/// One system call from an `strace -f [-y] -o LOG` log, in the order the calls completed.
public struct TraceEvent: Sendable, CustomStringConvertible {
    public var index: Int
    public var pid: Int
    public var name: String
    /// The arguments as strace printed them (strings still quoted, `-y` annotations kept).
    public var arguments: [String]
    /// What follows " = ": "0", "4</path>", "-1 ENOENT (No such file or directory)", "?" when killed.
    public var result: String
    /// The call was entered but never returned (the tracee was killed in it).
    public var interrupted: Bool

    public var description: String { "#\(index) \(pid) \(name)(\(arguments.joined(separator: ", "))) = \(result)" }

    /// The return value, nil for "?".
    public var returnValue: Int? { Int(result.prefix { $0 == "-" || $0.isNumber }) }
    public var succeeded: Bool { (returnValue ?? -1) >= 0 }

    /// For calls that take a descriptor first (fsync, write, fchmod…): the path `-y` printed for it.
    public var descriptorPath: String? { arguments.first.flatMap(StraceLog.annotation) }

    /// The path a descriptor returned by this call (openat) refers to, from `-y`.
    public var resultPath: String? { StraceLog.annotation(result) }

    public var flags: String { name == "openat" && arguments.count > 2 ? arguments[2] : "" }
    public var creates: Bool { flags.contains("O_CREAT") }

    /// The file-system paths this call names, made absolute (dirfd annotations joined with
    /// relative names): the opened path of openat, source and target of rename/link, the path of
    /// unlink/mkdir/chmod…, the descriptor's path for fsync and the other descriptor calls.
    public var paths: [String] {
        func string(_ i: Int) -> String? { i < arguments.count ? StraceLog.unquote(arguments[i]) : nil }
        func at(_ dirfd: Int, _ i: Int) -> String? {
            guard let name = string(i) else { return nil }
            if name.hasPrefix("/") { return name }
            guard dirfd < arguments.count, let base = StraceLog.annotation(arguments[dirfd]) else { return name }
            return name.isEmpty ? base : base + "/" + name
        }
        switch name {
        case "open", "creat", "unlink", "rmdir", "mkdir", "chmod", "chown", "lchown", "truncate", "setxattr", "lsetxattr":
            return [string(0)].compactMap { $0 }
        case "rename", "link", "symlink":
            return [string(0), string(1)].compactMap { $0 }
        case "openat", "unlinkat", "mkdirat", "fchmodat", "fchownat", "newfstatat", "faccessat", "faccessat2", "readlinkat", "statx":
            return [at(0, 1)].compactMap { $0 }
        case "renameat", "renameat2", "linkat":
            return [at(0, 1), at(2, 3)].compactMap { $0 }
        case "symlinkat":
            return [string(0), at(1, 2)].compactMap { $0 }
        default:
            return [descriptorPath].compactMap { $0 }
        }
    }

    /// Source and destination of a rename or link.
    public var move: (from: String, to: String)? {
        guard ["rename", "renameat", "renameat2", "link", "linkat"].contains(name), paths.count == 2 else { return nil }
        return (paths[0], paths[1])
    }

    /// Every path the line mentions, arguments and `-y` annotations alike (for "never touched" checks).
    public var mentionedPaths: [String] {
        paths + arguments.compactMap(StraceLog.annotation) + [resultPath].compactMap { $0 }
    }
}

/// Parses an `strace -f -o LOG` log (with or without -y) into an ordered event list: lines of
/// several tracees are merged (`<unfinished ...>` joined with its `<... resumed>`), signals and
/// exits skipped.
public enum StraceLog {
    public static func parse(_ text: String) -> [TraceEvent] {
        var events: [TraceEvent] = []
        var pending: [Int: String] = [:]
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: true) {
            var line = Substring(rawLine)
            // "PID  call(...)" with -f; a single tracee may print no pid.
            var pid = 0
            let digits = line.prefix { $0.isNumber }
            if !digits.isEmpty, line.dropFirst(digits.count).first == " " {
                pid = Int(digits) ?? 0
                line = line.dropFirst(digits.count).drop { $0 == " " }
            }
            if line.hasPrefix("+++") || line.hasPrefix("---") { continue }
            if line.hasPrefix("<... ") {
                guard let head = pending.removeValue(forKey: pid), let close = line.range(of: " resumed>") else { continue }
                line = Substring(head + line[close.upperBound...])
            } else if line.hasSuffix("<unfinished ...>") {
                pending[pid] = String(line.dropLast("<unfinished ...>".count)).trimmingCharacters(in: .whitespaces)
                continue
            }
            if let event = parseCall(line, pid: pid, index: events.count) { events.append(event) }
        }
        // Calls a killed tracee never returned from.
        for (pid, head) in pending.sorted(by: { $0.key < $1.key }) {
            if var event = parseCall(Substring(head + ") = ?"), pid: pid, index: events.count) {
                event.interrupted = true
                events.append(event)
            }
        }
        return events
    }

    static func parseCall(_ line: Substring, pid: Int, index: Int) -> TraceEvent? {
        guard let open = line.firstIndex(of: "(") else { return nil }
        let name = String(line[..<open])
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
        var arguments: [String] = []
        var current = ""
        var depth = 0
        var quoted = false
        var escaped = false
        var position = line.index(after: open)
        var closed = false
        while position < line.endIndex {
            let char = line[position]
            position = line.index(after: position)
            if quoted {
                current.append(char)
                if escaped { escaped = false } else if char == "\\" { escaped = true } else if char == "\"" { quoted = false }
                continue
            }
            switch char {
            case "\"":
                quoted = true
                current.append(char)
            case "(", "[", "{", "<":
                depth += 1
                current.append(char)
            case ")" where depth == 0:
                closed = true
            case ")", "]", "}", ">":
                depth -= 1
                current.append(char)
            case "," where depth == 0:
                arguments.append(current.trimmingCharacters(in: .whitespaces))
                current = ""
            default:
                current.append(char)
            }
            if closed { break }
        }
        let last = current.trimmingCharacters(in: .whitespaces)
        if !last.isEmpty || !arguments.isEmpty { arguments.append(last) }
        let rest = line[position...]
        var interrupted = false
        var result = ""
        if let equals = rest.range(of: "= ") {
            result = String(rest[equals.upperBound...]).trimmingCharacters(in: .whitespaces)
        } else {
            interrupted = true
        }
        if result == "?" { interrupted = true }
        return TraceEvent(index: index, pid: pid, name: name, arguments: arguments, result: result, interrupted: interrupted)
    }

    /// The path inside a `-y` annotation: `4</etc/passwd>` or `AT_FDCWD</tmp>` -> the path.
    public static func annotation(_ text: String) -> String? {
        guard let open = text.firstIndex(of: "<"), text.hasSuffix(">") else { return nil }
        let prefix = text[..<open]
        guard !prefix.isEmpty, prefix.allSatisfy({ $0.isNumber || $0.isLetter || $0 == "_" }) else { return nil }
        var inner = String(text[text.index(after: open)..<text.index(before: text.endIndex)])
        // A socket or pipe ("socket:[123]") has no path; a deleted file says so.
        if !inner.hasPrefix("/") { return nil }
        if inner.hasSuffix(" (deleted)") { inner = String(inner.dropLast(" (deleted)".count)) }
        return inner
    }

    /// A C string as strace quotes it, decoded; nil when the argument is not a quoted string.
    public static func unquote(_ text: String) -> String? {
        guard text.hasPrefix("\""), text.count >= 2 else { return nil }
        var body = Substring(text.dropFirst())
        if body.hasSuffix("\"...") { body = body.dropLast(4) } else if body.hasSuffix("\"") { body = body.dropLast() }
        var bytes: [UInt8] = []
        var iterator = Array(body.utf8)[...]
        while let byte = iterator.popFirst() {
            guard byte == UInt8(ascii: "\\"), let next = iterator.popFirst() else {
                bytes.append(byte)
                continue
            }
            switch next {
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "v"): bytes.append(0x0B)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "x"):
                let hex = iterator.prefix(2)
                iterator = iterator.dropFirst(hex.count)
                bytes.append(UInt8(String(decoding: hex, as: UTF8.self), radix: 16) ?? 0)
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var octal = [next]
                while octal.count < 3, let digit = iterator.first, (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(digit) {
                    octal.append(digit)
                    iterator = iterator.dropFirst()
                }
                bytes.append(UInt8(String(decoding: octal, as: UTF8.self), radix: 8) ?? 0)
            default: bytes.append(next)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
