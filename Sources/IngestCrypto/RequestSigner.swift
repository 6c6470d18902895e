import IngestCore

/// Signs requests for each authentication scheme the gateway accepts — the one place that
/// produces signatures (the simulator's traffic generator, `ingestctl send`, tests).
public enum RequestSigner {
    /// HMAC-SHA256 of the concatenated parts.
    public static func hmac(secret: String, _ parts: [UInt8]...) -> [UInt8] {
        OpenSSLHMACSHA256.mac(key: Array(secret.utf8), message: parts.flatMap { $0 })
    }

    /// Headers that authenticate `body` for `scheme` with `secret`.
    public static func headers(
        scheme: AuthScheme,
        secret: String,
        body: [UInt8],
        apiKeyHeader: String = "X-API-Key",
        base64: Bool = false,
        now: Int64 = 0,
        webhookID: String = "msg_" + ByteEncoding.encodeHex(SecureRandom.bytes(12))
    ) -> [(String, String)] {
        switch scheme {
        case .genesysHMAC:
            let mac = hmac(secret: secret, body)
            return [
                (
                    "X-Genesys-Signature",
                    "sha256=" + (base64 ? ByteEncoding.encodeBase64(mac) : ByteEncoding.encodeHex(mac))
                )
            ]
        case .openMessaging:
            return [("X-Hub-Signature-256", "sha256=" + ByteEncoding.encodeBase64(hmac(secret: secret, body)))]
        case .apiKey:
            return [(apiKeyHeader, secret)]
        case .basic:
            return [("Authorization", "Basic " + ByteEncoding.encodeBase64(Array(secret.utf8)))]
        case .standardWebhooks:
            var key = Array(secret.utf8)
            if secret.hasPrefix("whsec_"), let k = ByteEncoding.decodeBase64(secret.dropFirst(6)) { key = k }
            let ts = String(now)
            let mac = OpenSSLHMACSHA256.mac(key: key, message: Array("\(webhookID).\(ts).".utf8) + body)
            return [
                ("webhook-id", webhookID), ("webhook-timestamp", ts),
                ("webhook-signature", "v1," + ByteEncoding.encodeBase64(mac)),
            ]
        }
    }
}
