import Foundation
import ProvisionPluginAPI

/// A step kind in another language: an executable `provision-step-KIND` speaking protocol 1 (JSON
/// on stdin and stdout, docs/plugins.md). `describe` says its options; `plan` gets the options,
/// the facts and the files it asked for, and answers with more files it needs (`need`, at most 8
/// rounds), with what the host should look like, or with an error. It runs in the `Sandbox`, so
/// it is as pure as a built-in: the core reads and writes, the plugin only decides.
public struct ExternalPlugin: StepPlugin {
    public static let protocolVersion = 1
    static let maxRounds = 8
    static let maxPaths = 1000
    static let defaultTimeout = 30
    static let describeTimeout: TimeInterval = 10

    public let kind: String
    public let summary: String
    public let options: [OptionSpec]
    /// The executable.
    public let path: String
    /// Option name -> its protocol type (string, int, bool, list, map).
    let types: [String: String]

    static let optionTypes: [String: OptionType] = ["string": .string, "int": .int, "bool": .bool, "list": .stringList, "map": .map]

    /// Runs `describe` and checks the document against the protocol.
    public static func describe(path: String, kind: String) throws -> ExternalPlugin {
        let result = try Sandbox.run([path, "describe"], input: Data(), limits: .init(timeout: describeTimeout, outputBytes: 1 << 20))
        let document = try answer(result, action: "describe", path: path, timeout: Int(describeTimeout))
        func fail(_ message: String) -> ProvisionError { ProvisionError(.invalidInput, "\(path) describe: \(message)") }
        guard let version = document["protocol"] as? Int else { throw fail("no \"protocol\" number") }
        guard version == protocolVersion else {
            throw fail("speaks protocol \(version); this provision speaks protocol \(protocolVersion)")
        }
        guard let described = document["kind"] as? String, described == kind else {
            throw fail("says kind \"\(document["kind"] ?? "nothing")\", but its file name says \"\(kind)\"")
        }
        guard let summary = document["summary"] as? String, !summary.isEmpty else { throw fail("no \"summary\"") }
        var options: [OptionSpec] = []
        var types: [String: String] = [:]
        for case let entry as [String: Any] in document["options"] as? [Any] ?? [] {
            guard let name = entry["name"] as? String, !name.isEmpty,
                name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
            else { throw fail("an option without a plain \"name\": \(entry)") }
            guard let typeName = entry["type"] as? String, let type = optionTypes[typeName] else {
                throw fail("option \"\(name)\" has type \(entry["type"] ?? "none"); the types are string, int, bool, list and map")
            }
            guard types[name] == nil else { throw fail("option \"\(name)\" is described twice") }
            types[name] = typeName
            options.append(
                OptionSpec(
                    name, type, required: entry["required"] as? Bool ?? false, default: (entry["default"]).map { "\($0)" },
                    help: entry["help"] as? String ?? ""))
        }
        guard (document["options"] == nil || document["options"] is [Any]) else { throw fail("\"options\" must be a list") }
        return ExternalPlugin(kind: kind, summary: summary, options: options, path: path, types: types)
    }

    public func plan(_ step: StepContext) throws -> StepPlan {
        let timeout = step.timeout ?? Self.defaultTimeout
        var files: [String: Any] = [:]
        let base: [String: Any] = [
            "protocol": Self.protocolVersion, "options": try optionsDocument(step.options),
            "facts": try JSONSerialization.jsonObject(with: JSONEncoder().encode(step.host.facts)),
        ]
        for round in 1...Self.maxRounds {
            var input = base
            input["files"] = files
            let data = try JSONSerialization.data(withJSONObject: input, options: [.sortedKeys, .withoutEscapingSlashes])
            let result = try Sandbox.run([path, "plan"], input: data, limits: .init(timeout: TimeInterval(timeout)))
            let document = try Self.answer(result, action: "plan", path: path, timeout: timeout)
            if let error = document["error"] {
                let message = (error as? [String: Any])?["message"] as? String ?? "\(error)"
                throw failure("refused: \(message)", result)
            }
            if let need = document["need"] {
                guard let paths = need as? [String] else { throw failure("\"need\" must be a list of absolute paths", result) }
                let new = paths.filter { files[$0] == nil }
                guard !new.isEmpty else { throw failure("asked again for \(paths.joined(separator: ", ")), which it was given", result) }
                guard files.count + new.count <= Self.maxPaths else { throw failure("asked for more than \(Self.maxPaths) paths", result) }
                for path in new { files[path] = try read(path, host: step.host, result: result) }
                guard round < Self.maxRounds else { break }
                continue
            }
            return try stepPlan(document, result)
        }
        throw ProvisionError(.invalidInput, "plugin \(path) still asked for files after \(Self.maxRounds) rounds")
    }

    /// The step's options as JSON, typed as the plugin described them.
    func optionsDocument(_ options: StepOptions) throws -> [String: Any] {
        var document: [String: Any] = [:]
        for name in options.names {
            switch types[name] {
            case "int": document[name] = try options.int(name)
            case "bool": document[name] = try options.bool(name, default: false)
            case "list": document[name] = try options.stringList(name)
            case "map": document[name] = try JSONSerialization.jsonObject(with: JSONEncoder().encode(options.value(name)))
            default: document[name] = try options.string(name)
            }
        }
        return document
    }

    /// A path the plugin asked for, read through the overlay view: a file, a directory listing
    /// (trailing `/`), or null when absent.
    func read(_ asked: String, host: HostView, result: Sandbox.Result) throws -> Any {
        let isDirectory = asked.hasSuffix("/") && asked.count > 1
        let path: String
        do {
            path = try HostRoot.normalize(isDirectory ? String(asked.dropLast()) : asked)
        } catch let error as ProvisionError {
            throw failure("asked for \"\(asked)\": \(error.message)", result)
        }
        if isDirectory { return host.isDirectory(path) ? ["entries": host.list(path)] : NSNull() }
        guard case .file(let data, let meta) = try host.file(path) else { return NSNull() }
        var entry: [String: Any] = ["mode": meta.modeString, "uid": Int(meta.uid), "gid": Int(meta.gid)]
        if let text = String(data: data, encoding: .utf8) { entry["content"] = text } else { entry["content_base64"] = data.base64EncodedString() }
        return entry
    }

    /// The plugin's answer as a plan, every field checked.
    func stepPlan(_ document: [String: Any], _ result: Sandbox.Result) throws -> StepPlan {
        let known: Set<String> = ["protocol", "files", "handlers", "notices", "exports"]
        if let unknown = document.keys.sorted().first(where: { !known.contains($0) }) {
            throw failure("answered with unknown key \"\(unknown)\" (an answer has files, handlers, notices, exports; or need; or error)", result)
        }
        var plan = StepPlan()
        for case let entry in document["files"] as? [Any] ?? [] {
            guard let file = entry as? [String: Any], let path = file["path"] as? String else {
                throw failure("a file without a \"path\": \(entry)", result)
            }
            if file["absent"] as? Bool == true {
                plan.files.append(DesiredFile(path: path, state: .absent))
                continue
            }
            let content: Data
            if let text = file["content"] as? String {
                content = Data(text.utf8)
            } else if let encoded = file["content_base64"] as? String, let decoded = Data(base64Encoded: encoded) {
                content = decoded
            } else {
                throw failure("file \(path) has neither \"content\", \"content_base64\" nor \"absent\": true", result)
            }
            var mode: UInt32?
            if let text = file["mode"] {
                guard let parsed = (text as? String).flatMap(FileMeta.parseMode) else {
                    throw failure("file \(path) has mode \(text); write it as a string like \"0644\"", result)
                }
                mode = parsed
            }
            plan.files.append(
                DesiredFile(
                    path: path,
                    state: .present(content, mode: mode, uid: (file["uid"] as? Int).map(UInt32.init), gid: (file["gid"] as? Int).map(UInt32.init))))
        }
        for case let entry in document["handlers"] as? [Any] ?? [] {
            guard let handler = entry as? [String: Any], let argv = handler["argv"] as? [String], !argv.isEmpty,
                let notifiedBy = handler["notified_by"] as? [String]
            else { throw failure("a handler needs \"argv\" and \"notified_by\" lists: \(entry)", result) }
            plan.handlers.append(HandlerAction(argv: argv, notifiedBy: notifiedBy))
        }
        for case let entry in document["notices"] as? [Any] ?? [] {
            guard let notice = entry as? [String: Any], let message = notice["message"] as? String,
                let level = Notice.Level(rawValue: notice["level"] as? String ?? "info")
            else { throw failure("a notice needs a \"message\" and a level of info or warning: \(entry)", result) }
            plan.notices.append(Notice(level, message))
        }
        if let exports = document["exports"] {
            do {
                let value = try JSONDecoder().decode(Value.self, from: JSONSerialization.data(withJSONObject: exports, options: [.fragmentsAllowed]))
                guard case .map(let entries) = value else { throw failure("\"exports\" must be a mapping", result) }
                plan.exports = entries
            } catch let error as ProvisionError {
                throw error
            } catch {
                throw failure("\"exports\" holds something facts cannot (null or a fraction)", result)
            }
        }
        return plan
    }

    func failure(_ message: String, _ result: Sandbox.Result) -> ProvisionError {
        ProvisionError(.invalidInput, "plugin \(path) \(message)" + Self.stderrNote(result))
    }

    static func stderrNote(_ result: Sandbox.Result) -> String {
        let tail = result.stderrTail.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !tail.isEmpty else { return "" }
        let lines = tail.split(separator: "\n", omittingEmptySubsequences: false).suffix(10)
        return "; its stderr ends:\n" + lines.map { "  " + $0 }.joined(separator: "\n")
    }

    /// The JSON object the plugin printed, or an error saying how it failed: killed at its time
    /// limit, too much output, a crash, a non-zero exit, or no JSON.
    static func answer(_ result: Sandbox.Result, action: String, path: String, timeout: Int) throws -> [String: Any] {
        func fail(_ message: String) -> ProvisionError { ProvisionError(.invalidInput, "plugin \(path) \(message)" + stderrNote(result)) }
        if result.timedOut { throw fail("did not answer \(action) within \(timeout) s and was killed (a step can allow more with timeout:)") }
        if result.overflowed { throw fail("printed more than \(Sandbox.Limits().outputBytes >> 20) MiB for \(action) and was killed") }
        if let signal = result.signal { throw fail("was killed by signal \(signal) during \(action)") }
        // bwrap reports a child killed by a signal as 128 + the signal.
        if result.status > 128 && result.status < 160 {
            let signal = result.status - 128
            let name = [6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"][signal].map { ", \($0)" } ?? ""
            throw fail("crashed during \(action) (signal \(signal)\(name))")
        }
        if result.status != 0 { throw fail("exited with status \(result.status) during \(action)") }
        guard let object = try? JSONSerialization.jsonObject(with: result.stdout), let document = object as? [String: Any] else {
            let start = String(decoding: result.stdout.prefix(80), as: UTF8.self)
            throw fail("printed no JSON object for \(action)" + (start.isEmpty ? " (nothing at all)" : " (it began: \(start.debugDescription))"))
        }
        return document
    }
}
