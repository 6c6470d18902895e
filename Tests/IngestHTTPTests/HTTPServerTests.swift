import Dispatch
import Foundation
import IngestCore
import IngestTesting
import Logging
import Testing

@testable import IngestHTTP

/// Echoes bodies; `/slow?ms=N` answers after N ms (from the loop's queue), to test ordering.
private final class EchoHandler: HTTPRequestHandler {
    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let path = String(request.path)
        if path == "/slow" {
            let ms = Int(request.target.split(separator: "=").last ?? "100") ?? 100
            responder.loop.queue.asyncAfter(deadline: .now() + .milliseconds(ms)) {
                responder.respond(HTTPResponse(status: .ok, body: Array("slow".utf8)))
            }
            return
        }
        responder.respond(HTTPResponse(status: .ok, headers: [("X-Path", path)], body: request.body))
    }
}

/// A loopback configuration on port 0 with two event loops, adjusted by `modify`.
private func testConfiguration(_ modify: (inout HTTPServerConfiguration) -> Void = { _ in }) -> HTTPServerConfiguration
{
    var config = HTTPServerConfiguration(host: "127.0.0.1", port: 0, eventLoopCount: 2)
    modify(&config)
    return config
}

private func withServer(
    _ config: HTTPServerConfiguration = testConfiguration(),
    _ body: (HTTPServer) async throws -> Void
) async throws {
    let server = try HTTPServer(configuration: config, handler: EchoHandler(), logger: Logger(label: "test"))
    try server.start()
    do {
        try await body(server)
    } catch {
        await server.shutdown(deadline: .seconds(1))
        throw error
    }
    await server.shutdown(deadline: .seconds(1))
}

/// Polls `condition` on the monotonic clock until it holds or `seconds` pass.
private func eventually(seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

private func get(_ path: String, close: Bool = false) -> [UInt8] {
    RawHTTPClient.request(method: "GET", path: path, close: close)
}

@Suite("HTTP server over real sockets", .serialized, .elasticThreads)
struct HTTPServerTests {
    @Test func keepAliveServesManyRequestsOnOneConnection() async throws {
        try await withServer { server in
            let client = try RawHTTPClient(port: server.port)
            for i in 0..<20 {
                try client.send(RawHTTPClient.request(path: "/echo", body: Array("n\(i)".utf8)))
                let r = try client.readResponse()
                #expect(r.status == 200)
                #expect(r.bodyText == "n\(i)")
                #expect(r.header("Connection") == nil)
            }
        }
    }

    @Test func pipelinedResponsesComeBackInRequestOrder() async throws {
        try await withServer { server in
            let client = try RawHTTPClient(port: server.port)
            // The slow request is answered last by the handler but must be written first.
            try client.send(
                get("/slow?ms=200") + RawHTTPClient.request(path: "/echo", body: Array("fast".utf8))
                    + get("/slow?ms=50")
            )
            #expect(try client.readResponse().bodyText == "slow")
            #expect(try client.readResponse().bodyText == "fast")
            #expect(try client.readResponse().bodyText == "slow")
        }
    }

    @Test func chunkedBodiesAreDecoded() async throws {
        try await withServer { server in
            let client = try RawHTTPClient(port: server.port)
            try client.send(
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"
            )
            let r = try client.readResponse()
            #expect(r.status == 200)
            #expect(r.bodyText == "Wikipedia")
        }
    }

    @Test func smugglingAttemptGets400AndTheConnectionCloses() async throws {
        try await withServer { server in
            let client = try RawHTTPClient(port: server.port)
            // CL.TE: a front end honouring Content-Length would see one request; we refuse both.
            try client.send(
                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                    + "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            let r = try client.readResponse()
            #expect(r.status == 400)
            #expect(r.header("Connection") == "close")
            #expect(client.readEOF(), "no second response, connection closed")
            // Duplicate Content-Length, on a new connection.
            let c2 = try RawHTTPClient(port: server.port)
            try c2.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
            #expect(try c2.readResponse().status == 400)
            #expect(c2.readEOF())
        }
    }

    @Test func limitsAnswerWithTheRightStatus() async throws {
        let config = testConfiguration { $0.limits = .init(maxHeaderBytes: 16 * 1024, maxBodyBytes: 1000) }
        try await withServer(config) { server in
            let c1 = try RawHTTPClient(port: server.port)
            try c1.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 17_000) + "\r\n\r\n")
            #expect(try c1.readResponse().status == 431)
            #expect(c1.readEOF())
            // 413 arrives although the body is never sent.
            let c2 = try RawHTTPClient(port: server.port)
            try c2.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
            let r = try c2.readResponse()
            #expect(r.status == 413)
            #expect(c2.readEOF())
        }
    }

    @Test func slowClientsGet408AndAreDisconnected() async throws {
        let config = testConfiguration {
            $0.headerReadTimeout = .milliseconds(300)
            $0.bodyReadTimeout = .milliseconds(300)
        }
        try await withServer(config) { server in
            // Slowloris: a byte at a time never completes the head in time.
            let c1 = try RawHTTPClient(port: server.port)
            let start = ContinuousClock.now
            for byte in "GET / HTTP/1.1\r\nHost".utf8 {
                try? c1.send([byte])
                try await Task.sleep(for: .milliseconds(30))
                if ContinuousClock.now - start > .seconds(0.8) { break }
            }
            #expect(try c1.readResponse().status == 408)
            #expect(c1.readEOF())
            // Stalled body.
            let c2 = try RawHTTPClient(port: server.port)
            try c2.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            #expect(try c2.readResponse().status == 408)
            #expect(c2.readEOF())
        }
    }

    @Test func idleKeepAliveConnectionsAreClosedQuietly() async throws {
        let config = testConfiguration { $0.idleTimeout = .milliseconds(300) }
        try await withServer(config) { server in
            let client = try RawHTTPClient(port: server.port)
            try client.send(get("/echo"))
            #expect(try client.readResponse().status == 200)
            #expect(client.readEOF())
            try await Task.sleep(for: .milliseconds(100))
            #expect(server.connectionCount == 0)
        }
    }

    @Test func connectionCapAnswers503() async throws {
        let config = testConfiguration { $0.maxConnections = 2 }
        try await withServer(config) { server in
            let a = try RawHTTPClient(port: server.port)
            let b = try RawHTTPClient(port: server.port)
            try a.send(get("/echo"))
            try b.send(get("/echo"))
            #expect(try a.readResponse().status == 200)
            #expect(try b.readResponse().status == 200)
            let c = try RawHTTPClient(port: server.port)
            let r = try c.readResponse()
            #expect(r.status == 503)
            #expect(r.header("Retry-After") != nil)
            // Capacity frees up when a client leaves.
            try a.send(get("/echo", close: true))
            #expect(try a.readResponse().status == 200)
            #expect(a.readEOF())
            a.close()
            try await Task.sleep(for: .milliseconds(100))
            let d = try RawHTTPClient(port: server.port)
            try d.send(get("/echo"))
            #expect(try d.readResponse().status == 200)
        }
    }

    /// Memory held for request bodies is bounded by the budget, not by clients: a large body
    /// that does not fit is refused (503 + Retry-After) before it is read, small requests
    /// still pass while large ones hold the budget, and the budget is given back when bodies
    /// complete or connections go away.
    @Test func requestBodiesBeyondTheMemoryBudgetAre503BeforeTheyAreRead() async throws {
        let config = testConfiguration {
            $0.bodyBudgetBytes = 1 << 20
            $0.limits.maxBodyBytes = 2 << 20
        }
        try await withServer(config) { server in
            let size = 400_000
            func head(_ length: Int) -> [UInt8] {
                Array("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: \(length)\r\n\r\n".utf8)
            }
            let body = [UInt8](repeating: UInt8(ascii: "x"), count: size)
            // Two large bodies in progress reserve 800 KB of the 1 MiB budget.
            let a = try RawHTTPClient(port: server.port)
            let b = try RawHTTPClient(port: server.port)
            try a.send(head(size) + body[0..<1000])
            try b.send(head(size) + body[0..<1000])
            #expect(
                await eventually(seconds: 5) { server.bodyBudget.usedBytes >= 2 * size },
                "reserved: \(server.bodyBudget.usedBytes)"
            )
            // A third does not fit: refused at once, without its body.
            let c = try RawHTTPClient(port: server.port)
            try c.send(head(size))
            let refused = try c.readResponse()
            #expect(refused.status == 503)
            #expect(refused.header("Retry-After") == "1")
            #expect(refused.header("Connection") == "close")
            #expect(server.bodyBudget.refusedCount == 1)
            // A small request is still served meanwhile.
            let small = try RawHTTPClient(port: server.port)
            try small.send(RawHTTPClient.request(path: "/echo", body: Array("small".utf8)))
            let smallAnswer = try small.readResponse()
            #expect(smallAnswer.status == 200 && smallAnswer.bodyText == "small")
            // The first two complete, byte for byte.
            try a.send(Array(body[1000...]))
            try b.send(Array(body[1000...]))
            let ra = try a.readResponse()
            let rb = try b.readResponse()
            #expect(
                ra.status == 200 && ra.body.count == size,
                "\(ra.status) \(ra.bodyText.prefix(200)) used \(server.bodyBudget.usedBytes)"
            )
            #expect(
                rb.status == 200 && rb.body.count == size,
                "\(rb.status) \(rb.bodyText.prefix(200)) used \(server.bodyBudget.usedBytes)"
            )
            // The budget is free again: a large body is admitted.
            #expect(
                await eventually(seconds: 5) { server.bodyBudget.usedBytes < 256 << 10 },
                "released: \(server.bodyBudget.usedBytes)"
            )
            let d = try RawHTTPClient(port: server.port)
            try d.send(head(size) + body)
            #expect(try d.readResponse().status == 200)
            // Connections that leave mid-body give their reservation back.
            let e = try RawHTTPClient(port: server.port)
            try e.send(head(size) + body[0..<10])
            #expect(await eventually(seconds: 5) { server.bodyBudget.usedBytes >= size })
            e.close()
            #expect(
                await eventually(seconds: 5) { server.bodyBudget.usedBytes < 256 << 10 },
                "released after a disconnect: \(server.bodyBudget.usedBytes)"
            )
        }
    }

    /// A protocol upgrade: the 101 goes out, then the handler owns the connection — it gets
    /// the bytes that came right behind the request and everything after, and writes freely.
    @Test func anUpgradedConnectionBelongsToItsHandler() async throws {
        final class Upper: UpgradedConnectionHandler, @unchecked Sendable {
            let closedCount = LockedValue(0)
            func opened(_ connection: UpgradedConnection) { connection.write(Array("hello\n".utf8)) }
            func received(_ bytes: [UInt8], on connection: UpgradedConnection) {
                connection.write(Array(String(decoding: bytes, as: UTF8.self).uppercased().utf8))
            }
            func closed(_ connection: UpgradedConnection) { closedCount.withLock { $0 += 1 } }
        }
        final class UpgradingHandler: HTTPRequestHandler, @unchecked Sendable {
            let upper = Upper()
            func handle(_ request: HTTPRequest, responder: HTTPResponder) {
                responder.upgrade(
                    HTTPResponse(
                        status: .switchingProtocols,
                        headers: [("Upgrade", "shout"), ("Connection", "Upgrade")]
                    ),
                    to: upper
                )
            }
        }
        let handler = UpgradingHandler()
        let server = try HTTPServer(configuration: testConfiguration(), handler: handler, logger: Logger(label: "test"))
        try server.start()
        let client = try RawHTTPClient(port: server.port)
        try client.send(Array("GET /x HTTP/1.1\r\nHost: t\r\nUpgrade: shout\r\nConnection: Upgrade\r\n\r\nearly".utf8))
        var received: [UInt8] = []
        let deadline = ContinuousClock.now + .seconds(5)
        while !String(decoding: received, as: UTF8.self).contains("EARLY"), ContinuousClock.now < deadline {
            guard let chunk = try? client.readSome(), !chunk.isEmpty else { break }
            received += chunk
        }
        let text = String(decoding: received, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), "\(text)")
        #expect(!text.contains("Content-Length"), "a 101 has no body length")
        #expect(text.contains("\r\n\r\nhello\n") && text.hasSuffix("EARLY"), "\(text)")
        try client.send(Array("more".utf8))
        #expect(String(decoding: try client.readSome(), as: UTF8.self) == "MORE")
        client.close()
        #expect(await eventually(seconds: 5) { handler.upper.closedCount.withLock { $0 } == 1 })
        await server.shutdown(deadline: .seconds(1))
    }

    @Test func aHalfClosedClientStillGetsItsPendingResponse() async throws {
        try await withServer { server in
            let client = try RawHTTPClient(port: server.port)
            try client.send(get("/slow?ms=300"))
            client.shutdownWrite()
            let r = try client.readResponse()
            #expect(r.status == 200)
            #expect(r.bodyText == "slow")
            #expect(client.readEOF())
        }
    }

    @Test func expectContinueGetsAnInterimResponse() async throws {
        try await withServer { server in
            let client = try RawHTTPClient(port: server.port)
            try client.send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            #expect(try client.readResponse().status == 100)
            try client.send("hello")
            let r = try client.readResponse()
            #expect(r.status == 200)
            #expect(r.bodyText == "hello")
        }
    }

    @Test func manyConcurrentConnections() async throws {
        try await withServer { server in
            let port = server.port
            let ok = try await withThrowingTaskGroup(of: Int.self) { group in
                for c in 0..<100 {
                    group.addTask {
                        let client = try RawHTTPClient(port: port)
                        var good = 0
                        // Pipeline 10 requests, then read the 10 answers.
                        var batch: [UInt8] = []
                        for i in 0..<10 { batch += RawHTTPClient.request(path: "/echo", body: Array("\(c)-\(i)".utf8)) }
                        try client.send(batch)
                        for i in 0..<10 where try client.readResponse().bodyText == "\(c)-\(i)" { good += 1 }
                        return good
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(ok == 1000)
        }
    }

    @Test func shutdownFinishesInFlightRequestsAndRefusesNewConnections() async throws {
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, eventLoopCount: 1),
            handler: EchoHandler(),
            logger: Logger(label: "test")
        )
        let port = try server.start()
        let client = try RawHTTPClient(port: port)
        // The answer comes 3 s after the request: shutdown surely starts while it is in flight,
        // however loaded the machine is (with 300 ms it sometimes did not).
        try client.send(get("/slow?ms=3000"))
        try await Task.sleep(for: .milliseconds(100))
        async let stopped: Void = server.shutdown(deadline: .seconds(10))
        try await Task.sleep(for: .milliseconds(50))
        #expect((try? RawHTTPClient(port: port, timeout: 1)) == nil, "listener closed")
        let r = try client.readResponse()
        #expect(r.status == 200)
        #expect(r.header("Connection") == "close")
        await stopped
        #expect(server.connectionCount == 0)
    }
}
