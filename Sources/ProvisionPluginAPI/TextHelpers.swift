extension StringProtocol {
    /// Splits at an ASCII byte, as the kernel splits paths and line-oriented tools split lines:
    /// the byte is never merged into a grapheme cluster ("\r\n" is split after "\r", a "/"
    /// followed by a combining mark still separates path components), and it costs a byte
    /// comparison per byte instead of grapheme breaking (Character-based `split` was most of the
    /// time a plan spent reading config files).
    public func split(byte separator: Unicode.Scalar, omittingEmptySubsequences: Bool = true) -> [String] {
        precondition(separator.isASCII, "split(byte:) takes an ASCII separator")
        return utf8.split(separator: UInt8(separator.value), omittingEmptySubsequences: omittingEmptySubsequences)
            .map { String(decoding: $0, as: UTF8.self) }
    }
}

extension BinaryInteger {
    /// The number in `radix`, left-padded with zeros to `width` digits: `String(format: "%08x")`
    /// without Foundation's formatter (a va_list and a CFString per call).
    public func digits(radix: Int, width: Int) -> String {
        let text = String(self, radix: radix)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}
