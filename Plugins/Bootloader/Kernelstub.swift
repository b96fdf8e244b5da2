import Foundation
import ProvisionPluginAPI
import ProvisionEdit

/// kernelstub (Pop!_OS): `user.kernel_options` in /etc/kernelstub/configuration. kernelstub writes
/// the loader entry from it, so it is the only place to edit; running `kernelstub` applies it.
/// Only that array is rewritten, in the file's own layout.
struct Kernelstub: BootLoaderAdapter {
    static let configuration = "/etc/kernelstub/configuration"

    let name = "kernelstub"
    let title = "kernelstub"

    func detect(_ host: HostView) -> String? {
        host.exists(Self.configuration) ? "kernelstub (found \(Self.configuration); it rewrites the loader entries itself)" : nil
    }

    func plan(_ change: CommandLineChange, step: StepContext) throws -> CommandLinePlan {
        let host = step.host
        guard let text = try host.text(Self.configuration) else {
            throw ProvisionError.missing(Self.configuration)
        }
        // The bounded walk first: it names the line of what is wrong, and refuses nesting that
        // would crash the recursive JSONSerialization below.
        _ = try JSONLocator.span(of: [], in: text, file: Self.configuration)
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw ProvisionError(.invalidInput, "malformed JSON", at: SourceLocation(file: Self.configuration, line: 1, column: 1))
        }
        guard let user = object["user"] as? [String: Any], let options = user["kernel_options"] as? [String],
            let span = try JSONLocator.span(of: ["user", "kernel_options"], in: text, file: Self.configuration)
        else {
            throw ProvisionError(.invalidInput, "\(Self.configuration) has no user.kernel_options list of strings")
        }
        let current = KernelCommandLine(tokens: options)
        let edited = CommandLineEdit.apply(add: change.add, remove: change.remove, to: [current])[0]
        var plan = CommandLinePlan()
        guard edited != current else { return plan }
        let newText = JSONLocator.replace(span, in: text, with: Self.render(edited.tokens, like: text, at: span))
        plan.files = [DesiredFile(path: Self.configuration, state: .present(Data(newText.utf8)))]
        plan.handlers = [HandlerAction(argv: ["kernelstub"], notifiedBy: [Self.configuration])]
        return plan
    }

    /// The array in the layout the file already uses (kernelstub writes one item per line).
    static func render(_ items: [String], like text: String, at span: JSONLocator.Span) -> String {
        let bytes = Array(text.utf8)
        var lineStart = span.start
        while lineStart > 0 && bytes[lineStart - 1] != 0x0A { lineStart -= 1 }
        let keyIndent = String(decoding: bytes[lineStart..<span.start].prefix { $0 == 0x20 || $0 == 0x09 }, as: UTF8.self)
        let original = String(decoding: bytes[span.start..<span.end], as: UTF8.self)
        let encoded = items.map { item -> String in
            String(decoding: (try? JSONEncoder().encode(item)) ?? Data("\"\"".utf8), as: UTF8.self).replacingOccurrences(of: "\\/", with: "/")
        }
        guard original.contains("\n") || original == "[]" else { return "[" + encoded.joined(separator: ", ") + "]" }
        var itemIndent = keyIndent + "  "
        if let firstItemLine = original.split(separator: "\n").dropFirst().first {
            itemIndent = String(firstItemLine.prefix { $0 == " " || $0 == "\t" })
        }
        if items.isEmpty { return "[]" }
        return "[\n" + encoded.map { itemIndent + $0 }.joined(separator: ",\n") + "\n" + keyIndent + "]"
    }
}
