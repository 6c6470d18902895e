import Foundation
import IngestCore
import Testing

@testable import IngestCrypto

private func hex(_ s: String) -> [UInt8] { ByteEncoding.decodeHex(s)! }

private func authenticator(
    _ scheme: AuthScheme,
    _ secrets: [(String, String)],
    apiKeyHeader: String = "x-api-key"
) -> RequestAuthenticator {
    RequestAuthenticator(
        scheme: scheme,
        secrets: secrets.map { SourceSecret(id: $0.0, bytes: Array($0.1.utf8)) },
        apiKeyHeader: apiKeyHeader
    ) { try! OpenSSLHMACSHA256(key: $0) }
}

/// The verbatim customer.end payload from Tests/Fixtures/genesys.
private let fixtureBody: [UInt8] = Array(
    try! Data(
        contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/genesys/eventbridge.v2.detail.events.conversation.ID.customer.end.json")
    )
)

// Computed independently with Python's hmac module:
//   hmac.new(b"genesys-test-secret", body, hashlib.sha256)
private let fixtureHex = "0a85485d727cd3bc20ee30b53ad64ad375fe61e5409e52bbb08b7470e4543f38"
private let fixtureBase64 = "CoVIXXJ807wg7jC1OtZK03X+YeVAnlK7sIt0cORUPzg="

@Suite("HMAC-SHA256 and signature schemes")
struct SignatureTests {
    /// RFC 4231 test cases 1–4, 6 and 7 (case 5 tests truncation, which we do not use).
    @Test(
        arguments: [
            (
                "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
            ),
            (
                "4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
            ),
            (
                String(repeating: "aa", count: 20), String(repeating: "dd", count: 50),
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
            ),
            (
                "0102030405060708090a0b0c0d0e0f10111213141516171819",
                String(repeating: "cd", count: 50),
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"
            ),
            (
                String(repeating: "aa", count: 131),
                "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
            ),
            (
                String(repeating: "aa", count: 131),
                "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565647320746f20626520686173686564206265666f7265206265696e6720757365642062792074686520484d414320616c676f726974686d2e",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
            ),
        ]
    )
    func rfc4231(key: String, data: String, expected: String) throws {
        let mac = try OpenSSLHMACSHA256(key: hex(key))
        // Twice: the reused context must give the same answer after re-initialisation.
        for _ in 0..<2 {
            let out = hex(data).withUnsafeBytes { mac.authenticationCode([$0]) }
            #expect(ByteEncoding.encodeHex(out) == expected)
        }
        // Split input gives the same MAC as one piece.
        let d = hex(data)
        let split = d[..<(d.count / 2)].withUnsafeBytes { a in
            d[(d.count / 2)...].withUnsafeBytes { b in mac.authenticationCode([a, b]) }
        }
        #expect(ByteEncoding.encodeHex(split) == expected)
    }

    @Test func genesysHMACAcceptsHexAndBase64() {
        let auth = authenticator(.genesysHMAC, [("primary", "genesys-test-secret")])
        for value in [
            "sha256=" + fixtureHex, "sha256=" + fixtureHex.uppercased(), "sha256=" + fixtureBase64,
            " \tsha256=" + fixtureHex + "\t ", "\tsha256=" + fixtureBase64 + " ",
        ] {
            let headers = HTTPHeaders([("X-Genesys-Signature", value)])
            #expect(auth.verify(headers: headers, body: fixtureBody, nowSeconds: 0) == .success("primary"), "\(value)")
        }
    }

    @Test func genesysHMACRejections() {
        let auth = authenticator(.genesysHMAC, [("primary", "genesys-test-secret")])
        var tampered = fixtureBody
        tampered[tampered.count / 2] ^= 1
        let ok = HTTPHeaders([("X-Genesys-Signature", "sha256=" + fixtureHex)])
        #expect(auth.verify(headers: ok, body: tampered, nowSeconds: 0) == .failure(.mismatch))
        #expect(
            auth.verify(headers: HTTPHeaders(), body: fixtureBody, nowSeconds: 0).failureReason == "missing_credentials"
        )
        for bad in [fixtureHex, "sha1=" + fixtureHex, "sha256=zz", "sha256=" + fixtureHex.dropLast(2)] {
            let r = auth.verify(
                headers: HTTPHeaders([("X-Genesys-Signature", String(bad))]),
                body: fixtureBody,
                nowSeconds: 0
            )
            #expect(r.failureReason == "malformed_credentials", "\(bad)")
        }
        let wrongSecret = authenticator(.genesysHMAC, [("primary", "other")])
        #expect(wrongSecret.verify(headers: ok, body: fixtureBody, nowSeconds: 0) == .failure(.mismatch))
    }

    @Test func rotationReportsTheMatchingKeyID() {
        let auth = authenticator(.genesysHMAC, [("old", "other"), ("new", "genesys-test-secret")])
        let headers = HTTPHeaders([("X-Genesys-Signature", "sha256=" + fixtureHex)])
        #expect(auth.verify(headers: headers, body: fixtureBody, nowSeconds: 0) == .success("new"))
    }

    @Test func openMessagingUsesBase64Only() {
        let auth = authenticator(.openMessaging, [("primary", "genesys-test-secret")])
        let good = HTTPHeaders([("X-Hub-Signature-256", "sha256=" + fixtureBase64)])
        #expect(auth.verify(headers: good, body: fixtureBody, nowSeconds: 0) == .success("primary"))
        let hexForm = HTTPHeaders([("X-Hub-Signature-256", "sha256=" + fixtureHex)])
        #expect(
            auth.verify(headers: hexForm, body: fixtureBody, nowSeconds: 0).failureReason == "malformed_credentials"
        )
    }

    @Test func apiKeyAndBasic() {
        let apiKey = authenticator(.apiKey, [("primary", "k-1"), ("secondary", "k-2")], apiKeyHeader: "X-EB-Key")
        #expect(
            apiKey.verify(headers: HTTPHeaders([("x-eb-key", "k-2")]), body: [], nowSeconds: 0) == .success("secondary")
        )
        #expect(
            apiKey.verify(headers: HTTPHeaders([("x-eb-key", "k-3")]), body: [], nowSeconds: 0) == .failure(.mismatch)
        )
        #expect(
            apiKey.verify(headers: HTTPHeaders([("x-eb-key", "k-")]), body: [], nowSeconds: 0) == .failure(.mismatch)
        )
        let basic = authenticator(.basic, [("primary", "eventbridge:pa:ss")])
        let creds = "Basic " + ByteEncoding.encodeBase64(Array("eventbridge:pa:ss".utf8))
        #expect(
            basic.verify(headers: HTTPHeaders([("Authorization", creds)]), body: [], nowSeconds: 0)
                == .success("primary")
        )
        let wrong = "Basic " + ByteEncoding.encodeBase64(Array("eventbridge:nope".utf8))
        #expect(
            basic.verify(headers: HTTPHeaders([("Authorization", wrong)]), body: [], nowSeconds: 0)
                == .failure(.mismatch)
        )
        #expect(
            basic.verify(headers: HTTPHeaders([("Authorization", "Bearer x")]), body: [], nowSeconds: 0).failureReason
                == "malformed_credentials"
        )
    }

    /// The example from the Standard Webhooks specification.
    @Test func standardWebhooksSpecExample() {
        let auth = RequestAuthenticator(
            scheme: .standardWebhooks,
            secrets: [SourceSecret(id: "primary", bytes: Array("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".utf8))]
        ) { try! OpenSSLHMACSHA256(key: $0) }
        let body = Array(#"{"test": 2432232314}"#.utf8)
        func headers(_ signature: String) -> HTTPHeaders {
            HTTPHeaders([
                ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"), ("webhook-timestamp", "1614265330"),
                ("webhook-signature", signature),
            ])
        }
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        #expect(auth.verify(headers: headers(good), body: body, nowSeconds: 1_614_265_330) == .success("primary"))
        // Several signatures: one valid is enough.
        let several = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + good
        #expect(
            auth.verify(headers: headers(several), body: body, nowSeconds: 1_614_265_330 + 299) == .success("primary")
        )
        // Outside the ±5 minute window, either side.
        #expect(
            auth.verify(headers: headers(good), body: body, nowSeconds: 1_614_265_330 + 301)
                == .failure(.timestampOutOfTolerance)
        )
        #expect(
            auth.verify(headers: headers(good), body: body, nowSeconds: 1_614_265_330 - 301)
                == .failure(.timestampOutOfTolerance)
        )
        #expect(
            auth.verify(
                headers: headers("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="),
                body: body,
                nowSeconds: 1_614_265_330
            ) == .failure(.mismatch)
        )
        #expect(
            auth.verify(headers: headers("v2,abc"), body: body, nowSeconds: 1_614_265_330).failureReason
                == "malformed_credentials"
        )
    }

    /// Regression (issue 10): `webhook-timestamp: -9223372036854775808` trapped on overflow in
    /// `abs(now - timestamp)` before the signature was even checked (remote, unauthenticated).
    @Test(arguments: [
        "-9223372036854775808", "9223372036854775807", "-1", "+1614265330", "1614265330.5", "", " 1", "99999999999999",
    ])
    func hostileWebhookTimestampsAreRefusedNotATrap(timestamp: String) {
        let auth = RequestAuthenticator(
            scheme: .standardWebhooks,
            secrets: [SourceSecret(id: "primary", bytes: Array("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".utf8))]
        ) { try! OpenSSLHMACSHA256(key: $0) }
        let headers = HTTPHeaders([
            ("webhook-id", "msg_1"), ("webhook-timestamp", timestamp),
            ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        ])
        for now in [Int64.min, -1, 0, 1_614_265_330, Int64.max] {
            let result = auth.verify(headers: headers, body: [], nowSeconds: now)
            #expect(
                result == .failure(.malformedCredentials("webhook-timestamp"))
                    || result == .failure(.timestampOutOfTolerance),
                "\(timestamp) at \(now)"
            )
        }
    }

    @Test func encodings() {
        #expect(ByteEncoding.decodeBase64("aGVsbG8=") == Array("hello".utf8))
        #expect(ByteEncoding.decodeBase64("aGVsbG8") == Array("hello".utf8))
        #expect(ByteEncoding.decodeBase64("a") == nil)
        #expect(ByteEncoding.decodeBase64("a$==") == nil)
        #expect(ByteEncoding.encodeBase64(Array("hello".utf8)) == "aGVsbG8=")
        #expect(ByteEncoding.decodeHex("0aFf") == [0x0A, 0xFF])
        #expect(ByteEncoding.decodeHex("0g") == nil)
        #expect(ByteEncoding.decodeHex("0a1") == nil)
        #expect(ByteEncoding.decodeHex("") == [])
        #expect(" \t a b \t".trimmingASCIIWhitespace() == "a b")
        #expect(" \t ".trimmingASCIIWhitespace() == "")
        #expect("".trimmingASCIIWhitespace() == "")
        #expect(" é ".trimmingASCIIWhitespace() == "é")
        #expect("x y"[...].trimmingASCIIWhitespace() == "x y")
        #expect(ByteEncoding.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!ByteEncoding.constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(!ByteEncoding.constantTimeEquals([1, 2, 3], [1, 2, 4]))
    }
}

extension Result where Failure == AuthFailure {
    var failureReason: String? {
        if case .failure(let f) = self { return f.reason }
        return nil
    }
}
