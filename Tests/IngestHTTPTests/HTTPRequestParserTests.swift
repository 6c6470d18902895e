import IngestCore
import Testing

@testable import IngestHTTP

/// Parses everything in `chunks` (fed in that order) and returns the requests or the first error.
private func parseAll(
    _ chunks: [[UInt8]],
    limits: HTTPRequestParser.Limits = .init()
) -> (requests: [HTTPRequest], error: HTTPParseError?, continues: Int) {
    var parser = HTTPRequestParser(limits: limits)
    var requests: [HTTPRequest] = []
    var continues = 0
    for chunk in chunks {
        parser.append(chunk)
        drain: while true {
            do {
                switch try parser.next() {
                case .request(let r): requests.append(r)
                case .continueExpected: continues += 1
                case .needMoreData: break drain
                }
            } catch {
                return (requests, error, continues)
            }
        }
    }
    return (requests, nil, continues)
}

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

private let postBody = #"{"id":"1","detail":{"topicName":"v2.users.u1.presence"}}"#
private let sampleStream = bytes(
    "POST /events/genesys HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: \(postBody.utf8.count)\r\n\r\n\(postBody)"
        + "POST /events/genesys HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
        + "GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
)

@Suite("HTTP/1.1 request parser")
struct HTTPRequestParserTests {
    @Test func parsesPipelinedRequestsInOrder() throws {
        let result = parseAll([sampleStream])
        #expect(result.error == nil)
        #expect(result.requests.count == 3)
        #expect(result.requests[0].method == "POST")
        #expect(result.requests[0].path == "/events/genesys")
        #expect(result.requests[0].headers["content-type"] == "application/json")
        #expect(result.requests[0].body == bytes(postBody))
        #expect(result.requests[0].keepAlive)
        #expect(result.requests[1].body == bytes("hello, world"))
        #expect(result.requests[2].method == "GET")
        #expect(!result.requests[2].keepAlive)
    }

    @Test func byteByByteGivesTheSameRequests() {
        let whole = parseAll([sampleStream])
        let split = parseAll(sampleStream.map { [$0] })
        #expect(split.error == nil)
        #expect(split.requests.map(\.body) == whole.requests.map(\.body))
        #expect(split.requests.map(\.target) == whole.requests.map(\.target))
        #expect(split.requests.map(\.headers) == whole.requests.map(\.headers))
    }

    @Test(arguments: 1...40)
    func randomSplitsGiveTheSameRequests(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var chunks: [[UInt8]] = []
        var i = 0
        while i < sampleStream.count {
            let n = Int(rng.next() % 23) + 1
            chunks.append(Array(sampleStream[i..<min(sampleStream.count, i + n)]))
            i += n
        }
        let split = parseAll(chunks)
        let whole = parseAll([sampleStream])
        #expect(split.error == nil)
        #expect(split.requests.map(\.body) == whole.requests.map(\.body))
        #expect(split.requests.map(\.headers) == whole.requests.map(\.headers))
    }

    @Test func headerBlockOver16KiBIs431() {
        let big = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 16 * 1024) + "\r\n\r\n"
        #expect(parseAll([bytes(big)]).error == .headerFieldsTooLarge)
        // Also when the terminator has not arrived yet: no unbounded buffering.
        let partial = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 17 * 1024)
        #expect(parseAll([bytes(partial)]).error == .headerFieldsTooLarge)
        // Just under the limit is fine.
        let fits = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 16 * 1024 - 60) + "\r\n\r\n"
        #expect(parseAll([bytes(fits)]).requests.count == 1)
    }

    /// Regression (issue 10): a 20-hex-digit chunk size trapped on integer overflow and killed
    /// the gateway. Any length of hex digits must give 413, never a trap.
    @Test(arguments: [
        "ffffffffffffffffffff", "8000000000000000", "7fffffffffffffff", "10000000000000000000000000000000",
        String(repeating: "f", count: 4000), "80001",
    ])
    func hugeChunkSizeIs413NotATrap(size: String) {
        let request = "POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\(size)\r\nabc\r\n0\r\n\r\n"
        #expect(parseAll([bytes(request)]).error == .payloadTooLarge(limit: 512_000))
        #expect(parseAll(bytes(request).map { [$0] }).error == .payloadTooLarge(limit: 512_000))
    }

    /// Found by fuzzing (whole vs split): a trailer line near the limit was accepted whole
    /// and refused byte by byte. The verdict must not depend on packet boundaries.
    @Test func trailerLimitIsTheSameWholeAndSplit() {
        let small = HTTPRequestParser.Limits(maxHeaderBytes: 256, maxBodyBytes: 300)
        var accepted = 0
        for length in 240...260 {
            let trailer = "X-T: " + String(repeating: "v", count: length - 5)
            let request =
                "POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\(trailer)\r\n\r\n"
            let whole = parseAll([bytes(request)], limits: small)
            let split = parseAll(bytes(request).map { [$0] }, limits: small)
            #expect(whole.requests.count == split.requests.count && whole.error == split.error, "trailer of \(length)")
            // The section is the line, its CRLF and the final CRLF.
            #expect((whole.error == nil) == (length + 4 <= 256), "trailer of \(length)")
            if whole.error == nil { accepted += 1 }
        }
        #expect(accepted == 13)
    }

    @Test func leadingZerosInAChunkSizeAreStillItsValue() {
        let request =
            "POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + String(repeating: "0", count: 40) + "3\r\nabc\r\n0\r\n\r\n"
        #expect(parseAll([bytes(request)]).requests.first?.body == bytes("abc"))
    }

    @Test(arguments: ["99999999999999999999", "9223372036854775808", "1000000000000000"])
    func hugeContentLengthIs413NotATrap(length: String) {
        let request = "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: \(length)\r\n\r\n"
        #expect(parseAll([bytes(request)]).error == .payloadTooLarge(limit: 512_000))
    }

    @Test func bodyOverLimitIs413BeforeTheBodyArrives() {
        let head = "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 512001\r\n\r\n"
        #expect(parseAll([bytes(head)]).error == .payloadTooLarge(limit: 512_000))
        let small = HTTPRequestParser.Limits(maxBodyBytes: 10)
        let chunked = "POST /e HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\n"
        #expect(parseAll([bytes(chunked)], limits: small).error == .payloadTooLarge(limit: 10))
        let exact = "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
        #expect(parseAll([bytes(exact)], limits: small).requests.first?.body.count == 10)
    }

    @Test(
        arguments: [
            (
                "duplicate Content-Length",
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
            ),
            (
                "conflicting Content-Length",
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
            ),
            ("comma list Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc"),
            (
                "CL with TE",
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            ("TE not chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            (
                "duplicate TE",
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            ("obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
            ("space before colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n"),
            ("bare LF", "GET / HTTP/1.1\nHost: x\r\n\r\n"),
            ("bare CR", "GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n"),
            ("no Host", "GET / HTTP/1.1\r\n\r\n"),
            ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            ("bad request line", "GET /\r\nHost: x\r\n\r\n"),
            ("bad method", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("bad version", "GET / HTTX/1.1\r\nHost: x\r\n\r\n"),
            ("CTL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\u{01}b\r\n\r\n"),
            ("negative CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
            ("bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            (
                "chunk without CRLF",
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n"
            ),
            (
                "chunk size with junk",
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 x\r\nabc\r\n0\r\n\r\n"
            ),
        ]
    )
    func smugglingAndMalformedInputIs400(name: String, raw: String) {
        let result = parseAll([bytes(raw)])
        guard case .badRequest = result.error else {
            Issue.record(
                "\(name): expected 400, got \(String(describing: result.error)) with \(result.requests.count) requests"
            )
            return
        }
        #expect(result.error?.status == .badRequest)
    }

    @Test func unsupportedCodingsAndVersions() {
        let gzipChunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
        #expect(parseAll([bytes(gzipChunked)]).error?.status == .notImplemented)
        #expect(parseAll([bytes("GET / HTTP/2.0\r\nHost: x\r\n\r\n")]).error == .versionNotSupported)
    }

    @Test func keepAliveRules() {
        let r10 = parseAll([bytes("GET / HTTP/1.0\r\n\r\n")]).requests.first
        #expect(r10?.keepAlive == false)
        let r10ka = parseAll([bytes("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")]).requests.first
        #expect(r10ka?.keepAlive == true)
        let r11close = parseAll([bytes("GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, close\r\n\r\n")]).requests
        #expect(r11close.first?.keepAlive == false)
    }

    @Test func expectContinueIsSignalledOnceBeforeTheBody() {
        let head = bytes("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
        let result = parseAll([head, bytes("abc")])
        #expect(result.continues == 1)
        #expect(result.requests.first?.body == bytes("abc"))
        // Body already there: no interim response needed.
        #expect(parseAll([head + bytes("abc")]).continues == 0)
    }

    @Test func leadingEmptyLinesAreIgnoredAndStateIsTracked() throws {
        var parser = HTTPRequestParser()
        #expect(!parser.hasPartialRequest)
        parser.append(bytes("\r\nPOST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab"))
        guard case .needMoreData = try parser.next() else {
            Issue.record("expected needMoreData")
            return
        }
        #expect(parser.isReadingBody)
        parser.append(bytes("cd"))
        guard case .request(let r) = try parser.next() else {
            Issue.record("expected a request")
            return
        }
        #expect(r.body == bytes("abcd"))
        #expect(!parser.hasPartialRequest)
    }
}
