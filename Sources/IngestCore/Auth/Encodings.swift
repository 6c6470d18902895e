/// Hex and base64 codecs and a constant-time comparison, for signatures and credentials.
public enum ByteEncoding {
    /// Decodes lowercase or uppercase hex; nil on odd length or a non-hex character.
    public static func decodeHex<S: StringProtocol>(_ text: S) -> [UInt8]? {
        decodeHex(utf8: text.utf8)
    }

    /// Hex digits (either case) given as bytes → the bytes they spell; nil when malformed.
    public static func decodeHex(utf8: some Collection<UInt8>) -> [UInt8]? {
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var digits = utf8.makeIterator()
        while let high = digits.next(), let low = digits.next() {
            guard let hi = ASCII.hexValue(high), let lo = ASCII.hexValue(low) else { return nil }
            out.append(UInt8(hi << 4 | lo))
        }
        return out
    }

    public static func encodeHex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let base64Alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    private static let base64Reverse: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in base64Alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        // URL-safe alphabet too.
        table[Int(UInt8(ascii: "-"))] = 62
        table[Int(UInt8(ascii: "_"))] = 63
        return table
    }()

    public static func encodeBase64(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        var out = [UInt8]()
        out.reserveCapacity((input.count + 2) / 3 * 4)
        var i = 0
        while i + 2 < input.count {
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
            out.append(base64Alphabet[Int(n >> 18 & 63)])
            out.append(base64Alphabet[Int(n >> 12 & 63)])
            out.append(base64Alphabet[Int(n >> 6 & 63)])
            out.append(base64Alphabet[Int(n & 63)])
            i += 3
        }
        let rest = input.count - i
        if rest == 1 {
            let n = UInt32(input[i]) << 16
            out.append(base64Alphabet[Int(n >> 18 & 63)])
            out.append(base64Alphabet[Int(n >> 12 & 63)])
            out.append(contentsOf: "==".utf8)
        } else if rest == 2 {
            let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8
            out.append(base64Alphabet[Int(n >> 18 & 63)])
            out.append(base64Alphabet[Int(n >> 12 & 63)])
            out.append(base64Alphabet[Int(n >> 6 & 63)])
            out.append(UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes standard or URL-safe base64, with or without padding; nil when malformed.
    public static func decodeBase64<S: StringProtocol>(_ text: S) -> [UInt8]? {
        decodeBase64(utf8: text.utf8)
    }

    /// Base64 (standard or URL-safe, padding optional) given as bytes; nil when malformed.
    public static func decodeBase64(utf8: some Collection<UInt8>) -> [UInt8]? {
        var chars = Array(utf8)
        while chars.last == UInt8(ascii: "=") { chars.removeLast() }
        guard chars.count % 4 != 1 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        for c in chars {
            let v = base64Reverse[Int(c)]
            if v == 0xFF { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(acc >> UInt32(bits) & 0xFF))
            }
        }
        return out
    }

    /// Compares two byte strings in time that depends only on their lengths, not their contents.
    public static func constantTimeEquals(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        var diff: UInt8 = a.count == b.count ? 0 : 1
        // Always walk the expected length so timing does not reveal where a mismatch is.
        var ia = a.makeIterator()
        var ib = b.makeIterator()
        for _ in 0..<max(a.count, b.count) {
            let x = ia.next() ?? 0
            let y = ib.next() ?? 0
            diff |= x ^ y
        }
        return diff == 0
    }
}
