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
        var scalars = Substring(self).unicodeScalars[...]
        while let f = scalars.first, f == " " || f == "\t" { scalars.removeFirst() }
        while let l = scalars.last, l == " " || l == "\t" { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
