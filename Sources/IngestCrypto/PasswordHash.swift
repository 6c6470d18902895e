internal import COpenSSL
import IngestCore

/// Salted, slow password hashes: PBKDF2-HMAC-SHA256 through OpenSSL's `PKCS5_PBKDF2_HMAC`,
/// encoded `pbkdf2-sha256$<iterations>$<salt, base64>$<hash, base64>` (the iteration count
/// travels with the hash, so raising the default later keeps old entries valid).
public enum PasswordHash {
    /// OWASP's 2023 figure for PBKDF2-HMAC-SHA256.
    public static let defaultIterations = 600_000
    /// Refused when verifying: a stored count this large is an attack on the CPU.
    public static let maximumIterations = 10_000_000

    /// The derived key of `password` with `salt`; empty if OpenSSL fails.
    public static func derive(password: [UInt8], salt: [UInt8], iterations: Int, length: Int = 32) -> [UInt8] {
        guard iterations > 0, iterations <= maximumIterations, length > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: length)
        // OpenSSL reads `password` and `salt` and writes `length` bytes into `out`; it keeps
        // no reference to any of them.
        // An empty password or salt still needs a valid pointer (its length says 0).
        let passwordBytes = password.isEmpty ? [0] : password
        let saltBytes = salt.isEmpty ? [0] : salt
        let ok = passwordBytes.withUnsafeBufferPointer { p in
            saltBytes.withUnsafeBufferPointer { s in
                out.withUnsafeMutableBufferPointer { o in
                    p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { pc in
                        PKCS5_PBKDF2_HMAC(
                            pc,
                            Int32(password.count),
                            s.baseAddress,
                            Int32(salt.count),
                            Int32(iterations),
                            EVP_sha256(),
                            Int32(length),
                            o.baseAddress
                        )
                    }
                }
            }
        }
        return ok == 1 ? out : []
    }

    /// A new encoded hash of `password` with a random 16-byte salt.
    public static func make(password: String, iterations: Int = defaultIterations) -> String {
        let salt = SecureRandom.bytes(16)
        let hash = derive(password: Array(password.utf8), salt: salt, iterations: iterations)
        return "pbkdf2-sha256$\(iterations)$\(ByteEncoding.encodeBase64(salt))$\(ByteEncoding.encodeBase64(hash))"
    }

    /// Whether `password` matches `encoded` (constant-time comparison). A malformed entry or an
    /// absurd iteration count never matches.
    public static func verify(password: String, encoded: String) -> Bool {
        let parts = encoded.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "pbkdf2-sha256", let iterations = Int(parts[1]),
            iterations > 0, iterations <= maximumIterations,
            let salt = ByteEncoding.decodeBase64(parts[2]), let expected = ByteEncoding.decodeBase64(parts[3]),
            (16...64).contains(expected.count)
        else { return false }
        let derived = derive(
            password: Array(password.utf8),
            salt: salt,
            iterations: iterations,
            length: expected.count
        )
        return !derived.isEmpty && ByteEncoding.constantTimeEquals(derived, expected)
    }
}
