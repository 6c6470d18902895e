/// Byte classes of HTTP and JSON text (RFC 9110, RFC 8259), shared by the parsers.
public enum ASCII {
    @inline(__always) public static func isDigit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }

    @inline(__always) public static func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case 48...57: Int(b - 48)
        case 65...70: Int(b - 55)
        case 97...102: Int(b - 87)
        default: nil
        }
    }

    /// RFC 9110 tchar.
    @inline(__always) public static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case 48...57, 65...90, 97...122: true
        case 33, 35, 36, 37, 38, 39, 42, 43, 45, 46, 94, 95, 96, 124, 126: true
        default: false
        }
    }
}

extension StringProtocol {
    /// The string without leading and trailing spaces and tabs.
    public func trimmingASCIIWhitespace() -> String {
        let text = Substring(self)
        let utf8 = text.utf8
        func isBlank(_ b: UInt8) -> Bool { b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") }
        var start = utf8.startIndex
        var end = utf8.endIndex
        while start < end, isBlank(utf8[start]) { utf8.formIndex(after: &start) }
        while start < end {
            let last = utf8.index(before: end)
            guard isBlank(utf8[last]) else { break }
            end = last
        }
        // Spaces and tabs are single scalars, so both ends are scalar boundaries.
        return String(text[start..<end])
    }
}
