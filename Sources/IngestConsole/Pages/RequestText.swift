import Foundation

/// The console's parsers of request text, pure (Foundation only) and fuzzed
/// (`Tests/Fuzz/Targets/console-inputs.swift`): form and query strings, the `Cookie` header.
enum RequestText {
    /// `a=1&b=two+words` → ["a": "1", "b": "two words"] (the first of repeated names wins; a
    /// malformed percent escape is kept as written).
    static func decodeForm(_ text: Substring) -> [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: "&") where out.count < 256 {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                let plus = s.replacingOccurrences(of: "+", with: " ")
                return plus.removingPercentEncoding ?? plus
            }
            let key = decode(kv[0])
            if out[key] == nil { out[key] = kv.count == 2 ? decode(kv[1]) : "" }
        }
        return out
    }

    /// The value of cookie `name` in a `Cookie` header, split at its last `.` into the signed
    /// payload (base64url-decoded) and the MAC text; nil when absent or malformed.
    static func signedCookie(_ header: String, name: String) -> (payload: [UInt8], mac: Substring)? {
        for part in header.split(separator: ";") {
            let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            guard kv.count == 2, kv[0] == name else { continue }
            let pieces = kv[1].split(separator: ".", omittingEmptySubsequences: false)
            guard pieces.count == 2, let bytes = decodeBase64url(pieces[0]) else { return nil }
            return (bytes, pieces[1])
        }
        return nil
    }

    /// `user|role|expires|nonce` → its fields; nil unless exactly four with a numeric expiry.
    static func sessionFields(_ payload: String) -> (user: String, role: String, expires: Int64, nonce: String)? {
        let f = payload.split(separator: "|", omittingEmptySubsequences: false)
        guard f.count == 4, let expires = Int64(f[2]) else { return nil }
        return (String(f[0]), String(f[1]), expires, String(f[3]))
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func decodeBase64url(_ text: Substring) -> [UInt8]? {
        guard text.utf8.count <= 4096 else { return nil }
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map(Array.init)
    }
}
