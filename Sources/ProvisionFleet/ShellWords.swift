/// Splits a line into words as Python's `shlex.split(text, comments:, posix: True)` does, which is
/// how Ansible reads INI host lines and `ansible_ssh_common_args`: blanks separate words, single
/// quotes keep everything, double quotes keep everything but `\"` and `\\`, a backslash outside
/// quotes takes the next character as it is, and adjacent pieces join (`a"b c"` is one word).
public enum ShellWords {
    public struct Unbalanced: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// - Parameter comments: `#` at the start of a word ends the line (INI host lines).
    public static func split(_ text: String, comments: Bool = false) throws -> [String] {
        var words: [String] = []
        var word = String.UnicodeScalarView()
        var inWord = false
        var quote: Unicode.Scalar? = nil
        var scalars = text.unicodeScalars.makeIterator()
        let blanks: Set<Unicode.Scalar> = [" ", "\t", "\r", "\n"]

        func finish() {
            if inWord { words.append(String(word)) }
            word = String.UnicodeScalarView()
            inWord = false
        }

        while let c = scalars.next() {
            if let open = quote {
                if c == open {
                    quote = nil
                } else if c == "\\" && open == "\"" {
                    guard let next = scalars.next() else { throw Unbalanced(description: "No escaped character") }
                    if next != "\"" && next != "\\" { word.append("\\") }
                    word.append(next)
                } else {
                    word.append(c)
                }
                continue
            }
            if blanks.contains(c) {
                finish()
            } else if comments && c == "#" {
                // The rest of the line is a comment; the next line (if any) goes on.
                finish()
                while let skipped = scalars.next(), skipped != "\n" {}
            } else if c == "\\" {
                guard let next = scalars.next() else { throw Unbalanced(description: "No escaped character") }
                word.append(next)
                inWord = true
            } else if c == "'" || c == "\"" {
                quote = c
                inWord = true
            } else {
                word.append(c)
                inWord = true
            }
        }
        guard quote == nil else { throw Unbalanced(description: "No closing quotation") }
        finish()
        return words
    }
}
