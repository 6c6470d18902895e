internal import COpenSSL
import IngestCore

/// Errors from OpenSSL setup.
public struct CryptoError: Error, CustomStringConvertible {
    public var description: String
}

/// HMAC-SHA256 over OpenSSL 3's `EVP_MAC`, keyed once and reused per message (re-keying and
/// re-fetching the algorithm on every call costs about twice as much).
///
/// Not thread-safe: an `EVP_MAC_CTX` must not be used concurrently. Keep one instance per
/// event loop and use it only on that loop's queue.
public final class OpenSSLHMACSHA256: HMACSHA256 {
    /// The keyed template; `EVP_MAC_init(ctx, NULL, 0, NULL)` resets it for each message keeping the key.
    private let ctx: OpaquePointer

    /// - Throws: `CryptoError` when OpenSSL cannot provide HMAC-SHA256.
    public init(key: [UInt8]) throws {
        // EVP_MAC_fetch returns an owned reference; EVP_MAC_CTX_new takes its own, so we free ours.
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else { throw CryptoError(description: "OpenSSL has no HMAC") }
        defer { EVP_MAC_free(mac) }
        guard let ctx = EVP_MAC_CTX_new(mac) else { throw CryptoError(description: "EVP_MAC_CTX_new failed") }
        let ok = "SHA256".withCString { digest -> Int32 in
            "digest".withCString { name in
                var params = [
                    copenssl_param_utf8(name, UnsafeMutablePointer(mutating: digest)), copenssl_param_end(),
                ]
                // An empty key is legal HMAC but EVP_MAC_init rejects a NULL key with length 0.
                let keyBytes = key.isEmpty ? [UInt8(0)] : key
                return keyBytes.withUnsafeBufferPointer { k in
                    EVP_MAC_init(ctx, k.baseAddress, key.count, &params)
                }
            }
        }
        guard ok == 1 else {
            EVP_MAC_CTX_free(ctx)
            throw CryptoError(description: "EVP_MAC_init(HMAC-SHA256) failed")
        }
        self.ctx = ctx
    }

    deinit { EVP_MAC_CTX_free(ctx) }

    public func authenticationCode(_ parts: [UnsafeRawBufferPointer]) -> [UInt8] {
        // Re-initialise with the stored key (NULL key keeps it).
        guard EVP_MAC_init(ctx, nil, 0, nil) == 1 else { return [] }
        for part in parts where part.count > 0 {
            _ = EVP_MAC_update(ctx, part.baseAddress!.assumingMemoryBound(to: UInt8.self), part.count)
        }
        var out = [UInt8](repeating: 0, count: 32)
        var length = 0
        let ok = out.withUnsafeMutableBufferPointer { EVP_MAC_final(ctx, $0.baseAddress, &length, 32) }
        guard ok == 1, length == 32 else { return [] }
        return out
    }

    /// One-shot convenience: HMAC-SHA256(key, message).
    public static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        guard let h = try? OpenSSLHMACSHA256(key: key) else { return [] }
        return message.withUnsafeBytes { h.authenticationCode([$0]) }
    }
}

/// Cryptographically secure random bytes from OpenSSL.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        _ = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        return out
    }
}

/// SHA-256 from OpenSSL (one-shot `EVP_Digest`; no state is kept between calls).
public enum SHA256Digest {
    public static func bytes(_ message: [UInt8]) -> [UInt8] { OpenSSLDigest.digest(message, EVP_sha256(), 32) }

    /// Lower-case hex of the digest.
    public static func hex(_ message: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(64)
        for b in bytes(message) {
            text.append(digits[Int(b >> 4)])
            text.append(digits[Int(b & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// SHA-1 from OpenSSL, for protocols that fix it (the WebSocket handshake's
/// `Sec-WebSocket-Accept`, RFC 6455 §4.2.2). Never for anything that needs collision resistance.
public enum SHA1Digest {
    public static func bytes(_ message: [UInt8]) -> [UInt8] { OpenSSLDigest.digest(message, EVP_sha1(), 20) }
}

/// One-shot `EVP_Digest` (no state is kept between calls).
enum OpenSSLDigest {
    static func digest(_ message: [UInt8], _ md: OpaquePointer?, _ size: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: size)
        var length: UInt32 = 0
        let ok = message.withUnsafeBytes { m in
            out.withUnsafeMutableBufferPointer { o in
                EVP_Digest(m.baseAddress, m.count, o.baseAddress, &length, md, nil)
            }
        }
        precondition(ok == 1 && Int(length) == size, "EVP_Digest failed: OpenSSL is unusable")
        return out
    }
}
