import IngestCore

/// A stand-in MAC (the fuzz build has no OpenSSL): deterministic, 32 bytes.
final class FakeHMAC: HMACSHA256 {
    let key: [UInt8]
    init(_ key: [UInt8]) { self.key = key }
    func authenticationCode(_ parts: [UnsafeRawBufferPointer]) -> [UInt8] {
        var h: UInt64 = 1_469_598_103_934_665_603
        for b in key { h = (h ^ UInt64(b)) &* 1_099_511_628_211 }
        for part in parts { for b in part { h = (h ^ UInt64(b)) &* 1_099_511_628_211 } }
        return (0..<32).map { UInt8(truncatingIfNeeded: h >> UInt64(($0 % 8) * 8)) }
    }
}

/// Every authentication scheme's header parsing (hex/base64 signatures, Basic, Standard
/// Webhooks signature lists and timestamps, API keys) with fuzzed header values, body and
/// clock: never a trap. Input: scheme byte, then `name: value` lines, a blank line, the body.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 9 else { return 0 }
    let all = bytes(data, size)
    let scheme = AuthScheme.allCases[Int(all[0]) % AuthScheme.allCases.count]
    var now: Int64 = 0
    for b in all[1..<9] { now = (now << 8) | Int64(b) }
    let text = Array(all.dropFirst(9))
    let split = text.firstIndex(of: 0) ?? text.count
    var headers = HTTPHeaders()
    for line in text[..<split].split(separator: 10) {
        let s = String(decoding: line, as: UTF8.self)
        guard let colon = s.firstIndex(of: ":") else { continue }
        headers.add(name: String(s[..<colon]).lowercased(), value: String(s[s.index(after: colon)...]))
    }
    let body = split < text.count ? Array(text[(split + 1)...]) : []
    let secrets = [
        SourceSecret(id: "primary", bytes: Array("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".utf8)),
        SourceSecret(id: "secondary", bytes: Array("user:pass".utf8)),
    ]
    let auth = RequestAuthenticator(scheme: scheme, secrets: secrets, makeHMAC: { FakeHMAC($0) })
    _ = auth.verify(headers: headers, body: body, nowSeconds: now)
    // The encoders' decoders directly too.
    let value = String(decoding: text[..<split], as: UTF8.self)
    if let decoded = ByteEncoding.decodeBase64(value) {
        _ = ByteEncoding.encodeBase64(decoded)
    }
    if let decoded = ByteEncoding.decodeHex(value) {
        check(ByteEncoding.decodeHex(ByteEncoding.encodeHex(decoded)) == decoded, "hex round trip")
    }
    return 0
}
