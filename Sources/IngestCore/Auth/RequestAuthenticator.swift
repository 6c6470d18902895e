/// How a source proves that a request is genuine.
public enum AuthScheme: String, Sendable, CaseIterable {
    /// `X-Genesys-Signature: sha256=<HMAC-SHA256(secret, body)>`, hex or base64. The product's own header.
    case genesysHMAC = "genesys-hmac"
    /// `X-Hub-Signature-256: sha256=<base64 HMAC-SHA256(secret, body)>` (Genesys Open Messaging).
    case openMessaging = "open-messaging"
    /// A static key in a header (EventBridge API destination "API key" authorization).
    case apiKey = "api-key"
    /// `Authorization: Basic` (EventBridge API destination "Basic" authorization).
    case basic
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`.
    case standardWebhooks = "standard-webhooks"

    /// Whether the scheme signs the body with HMAC (as opposed to presenting a static credential).
    public var usesHMAC: Bool {
        switch self {
        case .genesysHMAC, .openMessaging, .standardWebhooks: true
        case .apiKey, .basic: false
        }
    }
}

/// One live secret of a source. Two may be live at once during rotation.
public struct SourceSecret: Sendable {
    /// Names the secret in the `ingest-key-id` Kafka header (never the secret itself).
    public var id: String
    public var bytes: [UInt8]

    public init(id: String, bytes: [UInt8]) {
        self.id = id
        self.bytes = bytes
    }
}

extension SourceSecret: CustomStringConvertible, CustomDebugStringConvertible {
    public var debugDescription: String { description }
    /// Never prints the secret.
    public var description: String { "SourceSecret(id: \(id), <redacted>)" }
}

/// Why a request failed authentication. `reason` is the stable label used in metrics and the
/// 401 body; it never contains secret material.
public enum AuthFailure: Error, Equatable, Sendable {
    case missingCredentials(String)
    case malformedCredentials(String)
    case mismatch
    case timestampOutOfTolerance

    public var reason: String {
        switch self {
        case .missingCredentials: "missing_credentials"
        case .malformedCredentials: "malformed_credentials"
        case .mismatch: "signature_mismatch"
        case .timestampOutOfTolerance: "timestamp_out_of_tolerance"
        }
    }

    public var message: String {
        switch self {
        case .missingCredentials(let header): "missing \(header)"
        case .malformedCredentials(let header): "malformed \(header)"
        case .mismatch: "signature or credentials do not match"
        case .timestampOutOfTolerance: "webhook-timestamp outside the allowed window"
        }
    }

    public static let allReasons = [
        "missing_credentials", "malformed_credentials", "signature_mismatch",
        "timestamp_out_of_tolerance",
    ]
}

/// HMAC-SHA256 keyed with one secret. Implementations are not thread-safe; keep one per event loop.
public protocol HMACSHA256: AnyObject {
    /// The MAC of the concatenation of `parts`.
    func authenticationCode(_ parts: [UnsafeRawBufferPointer]) -> [UInt8]
}

/// Verifies requests for one source. Holds keyed HMAC state, so it is **not** thread-safe:
/// create one per event loop.
public final class RequestAuthenticator {
    public let scheme: AuthScheme
    private let secrets: [SourceSecret]
    private let macs: [any HMACSHA256]
    private let apiKeyHeader: String
    private let webhookToleranceSeconds: Int64

    /// - Parameters:
    ///   - makeHMAC: builds a keyed HMAC for a secret's bytes (from `IngestCrypto`).
    public init(
        scheme: AuthScheme,
        secrets: [SourceSecret],
        apiKeyHeader: String = "x-api-key",
        webhookToleranceSeconds: Int64 = 300,
        makeHMAC: ([UInt8]) -> any HMACSHA256
    ) {
        self.scheme = scheme
        self.secrets = secrets
        self.apiKeyHeader = apiKeyHeader.lowercased()
        self.webhookToleranceSeconds = webhookToleranceSeconds
        self.macs = scheme.usesHMAC ? secrets.map { makeHMAC(Self.hmacKey(for: scheme, secret: $0.bytes)) } : []
    }

    /// Standard Webhooks secrets are `whsec_<base64 key>`; other schemes use the bytes as given.
    static func hmacKey(for scheme: AuthScheme, secret: [UInt8]) -> [UInt8] {
        let prefix = Array("whsec_".utf8)
        if scheme == .standardWebhooks, secret.starts(with: prefix),
            let key = ByteEncoding.decodeBase64(String(decoding: secret.dropFirst(prefix.count), as: UTF8.self))
        {
            return key
        }
        return secret
    }

    /// Checks a request; returns the id of the secret that matched.
    /// - Parameter nowSeconds: the current Unix time, for replay windows.
    public func verify(headers: HTTPHeaders, body: [UInt8], nowSeconds: Int64) -> Result<String, AuthFailure> {
        switch scheme {
        case .genesysHMAC:
            guard let header = headers["x-genesys-signature"] else {
                return .failure(.missingCredentials("X-Genesys-Signature"))
            }
            guard let given = Self.decodeSHA256Signature(header, allowHex: true) else {
                return .failure(.malformedCredentials("X-Genesys-Signature"))
            }
            return matchHMAC(given: [given], parts: [body])
        case .openMessaging:
            guard let header = headers["x-hub-signature-256"] else {
                return .failure(.missingCredentials("X-Hub-Signature-256"))
            }
            guard let given = Self.decodeSHA256Signature(header, allowHex: false) else {
                return .failure(.malformedCredentials("X-Hub-Signature-256"))
            }
            return matchHMAC(given: [given], parts: [body])
        case .apiKey:
            guard let value = headers[apiKeyHeader] else { return .failure(.missingCredentials(apiKeyHeader)) }
            return matchStatic(Array(value.utf8))
        case .basic:
            guard let value = headers["authorization"] else { return .failure(.missingCredentials("Authorization")) }
            let parts = value.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "basic",
                let decoded = ByteEncoding.decodeBase64(parts[1].trimmingASCIIWhitespace())
            else { return .failure(.malformedCredentials("Authorization")) }
            return matchStatic(decoded)
        case .standardWebhooks:
            guard let id = headers["webhook-id"] else { return .failure(.missingCredentials("webhook-id")) }
            guard let ts = headers["webhook-timestamp"] else {
                return .failure(.missingCredentials("webhook-timestamp"))
            }
            guard let signatures = headers["webhook-signature"] else {
                return .failure(.missingCredentials("webhook-signature"))
            }
            // Unix seconds: digits only, at most 12 (year 33658), so nothing below can overflow
            // (`Int64.min` here used to trap in `abs(now - timestamp)`).
            guard !ts.isEmpty, ts.utf8.count <= 12, ts.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                let timestamp = Int64(ts)
            else { return .failure(.malformedCredentials("webhook-timestamp")) }
            let (skew, overflow) = nowSeconds.subtractingReportingOverflow(timestamp)
            if overflow || skew.magnitude > webhookToleranceSeconds.magnitude {
                return .failure(.timestampOutOfTolerance)
            }
            var given: [[UInt8]] = []
            for entry in signatures.split(separator: " ") {
                let pieces = entry.split(separator: ",", maxSplits: 1)
                guard pieces.count == 2, pieces[0] == "v1" else { continue }
                if let sig = ByteEncoding.decodeBase64(pieces[1]), sig.count == 32 { given.append(sig) }
            }
            if given.isEmpty { return .failure(.malformedCredentials("webhook-signature")) }
            return matchHMAC(
                given: given,
                parts: [Array(id.utf8), [UInt8(ascii: ".")], Array(ts.utf8), [UInt8(ascii: ".")], body]
            )
        }
    }

    /// `sha256=<hex|base64>` → 32 bytes.
    static func decodeSHA256Signature(_ header: String, allowHex: Bool) -> [UInt8]? {
        // On the gateway's hot path: bytes only (no intermediate strings).
        let trimmed = header.trimmingASCIIWhitespace().utf8
        guard trimmed.starts(with: "sha256=".utf8) else { return nil }
        let value = trimmed.dropFirst("sha256=".utf8.count)
        if allowHex, value.count == 64, let bytes = ByteEncoding.decodeHex(utf8: value) { return bytes }
        if let bytes = ByteEncoding.decodeBase64(utf8: value), bytes.count == 32 { return bytes }
        return nil
    }

    private func matchHMAC(given: [[UInt8]], parts: [[UInt8]]) -> Result<String, AuthFailure> {
        var matched: String?
        for (index, mac) in macs.enumerated() {
            let expected = Self.withRawBuffers(parts) { mac.authenticationCode($0) }
            // Check every candidate so timing does not depend on which one matches.
            for signature in given where ByteEncoding.constantTimeEquals(expected, signature) {
                if matched == nil { matched = secrets[index].id }
            }
        }
        return matched.map { .success($0) } ?? .failure(.mismatch)
    }

    private func matchStatic(_ presented: [UInt8]) -> Result<String, AuthFailure> {
        var matched: String?
        for secret in secrets where ByteEncoding.constantTimeEquals(secret.bytes, presented) {
            if matched == nil { matched = secret.id }
        }
        return matched.map { .success($0) } ?? .failure(.mismatch)
    }

    private static func withRawBuffers<R>(_ parts: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) -> R) -> R {
        func go(_ i: Int, _ acc: [UnsafeRawBufferPointer]) -> R {
            if i == parts.count { return body(acc) }
            return parts[i].withUnsafeBytes { go(i + 1, acc + [$0]) }
        }
        return go(0, [])
    }
}
