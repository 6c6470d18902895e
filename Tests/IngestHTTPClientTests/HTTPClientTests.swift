import Dispatch
import Foundation
import IngestCore
import IngestHTTP
import IngestTesting
import Logging
import Synchronization
import Testing

@testable import IngestHTTPClient

/// `/echo` echoes method, target and body; `/slow?ms=N` answers after N ms; `/big?kb=N` sends
/// N KiB; `/silent` never answers. Requests whose target is absolute (`http://…`) are
/// answered as a forward proxy would, marked `X-Via-Proxy`.
private final class TestHandler: HTTPRequestHandler, @unchecked Sendable {
    let seen = LockedValue<[String]>([])

    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        seen.withLock { $0.append("\(request.method) \(request.target)") }
        let target = request.target
        var headers: [(String, String)] = [("X-Method", request.method), ("X-Target", target)]
        if target.hasPrefix("http://") { headers.append(("X-Via-Proxy", "yes")) }
        let path =
            target.hasPrefix("http://")
            ? String(target.split(separator: "/", maxSplits: 3).last.map { "/" + $0 } ?? "/") : String(request.path)
        let query = HTTPClientTests.query(target)
        if path.hasPrefix("/slow") {
            let ms = Int(query["ms"] ?? "100") ?? 100
            let kb = Int(query["kb"] ?? "0") ?? 0
            let fixed = headers
            responder.loop.queue.asyncAfter(deadline: .now() + .milliseconds(ms)) {
                responder.respond(
                    HTTPResponse(status: .ok, headers: fixed, body: Array(repeating: 120, count: kb * 1024))
                )
            }
            return
        }
        if path.hasPrefix("/big") {
            let kb = Int(query["kb"] ?? "1") ?? 1
            responder.respond(HTTPResponse(status: .ok, headers: headers, body: Array(repeating: 65, count: kb * 1024)))
            return
        }
        if path.hasPrefix("/silent") { return }
        if let h = request.headers["x-test"] { headers.append(("X-Test-Echo", h)) }
        responder.respond(
            HTTPResponse(status: HTTPStatus(code: 201, reason: "Created"), headers: headers, body: request.body)
        )
    }
}

private final class Outcomes: Sendable {
    let value = LockedValue<(ok: Int, cancelled: Int, other: [String])>((0, 0, []))
}

private func withServer(_ body: (HTTPServer, TestHandler) async throws -> Void) async throws {
    let handler = TestHandler()
    let server = try HTTPServer(
        configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, eventLoopCount: 2),
        handler: handler,
        logger: Logger(label: "test")
    )
    try server.start()
    do {
        try await body(server, handler)
    } catch {
        await server.shutdown(deadline: .seconds(1))
        throw error
    }
    await server.shutdown(deadline: .seconds(1))
}

@Suite("Outbound HTTP client (libcurl multi) over real sockets", .serialized, .elasticThreads)
struct HTTPClientTests {
    static func query(_ target: String) -> [String: String] {
        guard let q = target.firstIndex(of: "?") else { return [:] }
        var out: [String: String] = [:]
        for pair in target[target.index(after: q)...].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            if kv.count == 2 { out[kv[0]] = kv[1] }
        }
        return out
    }

    @Test func methodsHeadersAndBodiesRoundTrip() async throws {
        try await withServer { server, _ in
            let client = HTTPClient()
            defer { client.shutdown() }
            let base = "http://127.0.0.1:\(server.port)"
            let body = Array("{\"hello\":\"wörld\"}".utf8)
            for method in ["POST", "PUT", "PATCH", "DELETE"] {
                let r = try await client.execute(
                    HTTPClientRequest(
                        method: method,
                        url: base + "/echo?x=1",
                        headers: [("X-Test", "t-\(method)")],
                        body: body
                    )
                )
                #expect(r.status == 201)
                #expect(r.header("x-method") == method)
                #expect(r.header("X-Target") == "/echo?x=1")
                #expect(r.header("x-test-echo") == "t-\(method)")
                #expect(r.body == body)
            }
            let get = try await client.execute(HTTPClientRequest(url: base + "/echo"))
            #expect(get.header("x-method") == "GET")
            #expect(get.body.isEmpty)
            let empty = try await client.execute(HTTPClientRequest(method: "POST", url: base + "/echo"))
            #expect(empty.status == 201 && empty.body.isEmpty)
            let big = try await client.execute(HTTPClientRequest(url: base + "/big?kb=2048"))
            #expect(big.body.count == 2048 * 1024)
        }
    }

    @Test func connectionsAreReused() async throws {
        try await withServer { server, _ in
            let client = HTTPClient(configuration: .init(maxConnectionsPerHost: 2))
            defer { client.shutdown() }
            for _ in 0..<50 {
                _ = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(server.port)/echo"))
            }
            #expect(server.connectionCount == 1, "sequential requests share one kept-alive connection")
        }
    }

    @Test func deadlinesAndErrorsAreTyped() async throws {
        try await withServer { server, _ in
            let client = HTTPClient(configuration: .init(maxResponseBytes: 1024))
            defer { client.shutdown() }
            let start = ContinuousClock.now
            await #expect(throws: HTTPClientError.self) {
                _ = try await client.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(server.port)/silent", timeoutMilliseconds: 300)
                )
            }
            #expect(ContinuousClock.now - start < .seconds(60), "the 300 ms deadline ended the request")
            do {
                _ = try await client.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(server.port)/silent", timeoutMilliseconds: 200)
                )
            } catch let error as HTTPClientError {
                #expect(error.kind == .timedOut)
                #expect(error.isTransient)
            }
            do {
                _ = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:\(server.port)/big?kb=4"))
                Issue.record("a body over the limit must fail")
            } catch let error as HTTPClientError {
                #expect(error.kind == .responseTooLarge, "\(error)")
            }
            // Nothing listens on port 1.
            do {
                _ = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:1/"))
                Issue.record("connecting to a closed port must fail")
            } catch let error as HTTPClientError {
                #expect(error.kind == .connectionFailed, "\(error)")
            }
            for bad in ["ftp://example.com/x", "not a url", "file:///etc/passwd"] {
                do {
                    _ = try await client.execute(HTTPClientRequest(url: bad))
                    Issue.record("\(bad) must be refused")
                } catch let error as HTTPClientError {
                    #expect(error.kind == .invalidRequest, "\(bad): \(error)")
                }
            }
            await #expect(throws: HTTPClientError.self) {
                _ = try await client.execute(
                    HTTPClientRequest(
                        url: "http://127.0.0.1:\(server.port)/echo",
                        headers: [("X-Bad", "a\r\nInjected: 1")]
                    )
                )
            }
        }
    }

    /// The stress the URLSession-based clients failed (a hung test run, issue 10): thousands
    /// of requests, each cancelled at a random moment — before it is sent, while the body
    /// streams, as it completes. Everything must end within a bounded time, every request
    /// must end as a response or a cancellation, and no connection may leak.
    @Test func thousandsOfRandomlyCancelledRequestsFinishAndLeakNothing() async throws {
        try await withServer { server, _ in
            let client = HTTPClient(configuration: .init(maxConnectionsPerHost: 8))
            defer { client.shutdown() }
            let base = "http://127.0.0.1:\(server.port)"
            let total = 3000
            let outcomes = Outcomes()
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<total {
                    if i >= 64 { try await group.next() }
                    group.addTask {
                        // 0–3 ms: before the request is handed over, while it is in flight, or
                        // right as the answer (0–2 ms, up to 256 KiB) arrives.
                        let delay = Int.random(in: 0...4)
                        let url = "\(base)/slow?ms=\(delay)&kb=\(Int.random(in: 0...256))"
                        let task = Task {
                            try await client.execute(HTTPClientRequest(url: url, timeoutMilliseconds: 20_000))
                        }
                        // A third at once, a third while the request is out, a third around
                        // the moment the answer streams in.
                        let wait =
                            switch i % 3 {
                            case 0: 0
                            case 1: Int.random(in: 0...(delay * 1000 + 1000))
                            default: Int.random(in: 2_000...200_000)
                            }
                        if wait > 0 { try? await Task.sleep(for: .microseconds(wait)) }
                        task.cancel()
                        switch await task.result {
                        case .success(let r) where r.status == 200: outcomes.value.withLock { $0.ok += 1 }
                        case .failure(let e) where e is CancellationError: outcomes.value.withLock { $0.cancelled += 1 }
                        case .success(let r): outcomes.value.withLock { $0.other.append("status \(r.status)") }
                        case .failure(let e): outcomes.value.withLock { $0.other.append("\(e)") }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = ContinuousClock.now - start
            let result = outcomes.value.withLock { $0 }
            print("stress: \(result.ok) answered, \(result.cancelled) cancelled in \(elapsed)")
            #expect(result.ok + result.cancelled == total, "\(result.other.prefix(5))")
            #expect(
                result.cancelled > 0 && result.ok > 0,
                "cancellations landed at different moments: \(result.ok) answered, \(result.cancelled) cancelled"
            )
            #expect(elapsed < .seconds(120), "bounded: \(elapsed)")
            #expect(client.requestsInFlight == 0)
            // Aborted transfers close their connections; finished ones return to the pool,
            // which never holds more than the per-host cap.
            var settled = false
            for _ in 0..<50 {
                if server.connectionCount <= 8 {
                    settled = true
                    break
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(settled, "open connections at the server: \(server.connectionCount)")
            // The client still works afterwards.
            #expect(try await client.execute(HTTPClientRequest(url: base + "/echo")).status == 201)
        }
    }

    @Test func proxySettingsFromTheEnvironment() {
        let env = EnvironmentReader(
            [
                "HTTPS_PROXY": "http://proxy.corp:3128", "http_proxy": "http://lower:8080",
                "HTTP_PROXY": "http://upper:1",
                "NO_PROXY": "localhost, .internal.corp,10.1.2.3,api.example.com:443",
            ]
        ) { _ in [] }
        let p = ProxySettings(environment: env)
        #expect(p.httpsProxy == "http://proxy.corp:3128")
        #expect(p.httpProxy == "http://lower:8080", "the lower-case variable wins, as in curl")
        #expect(p.proxy(for: "https://api.mypurecloud.com/api/v2/x") == "http://proxy.corp:3128")
        #expect(p.proxy(for: "http://events.pagerduty.com/v2/enqueue") == "http://lower:8080")
        #expect(p.proxy(for: "https://localhost:8443/") == nil)
        #expect(p.proxy(for: "https://tsdb.internal.corp/write") == nil)
        #expect(p.proxy(for: "https://internal.corp/write") == nil)
        #expect(p.proxy(for: "https://notinternal.corp/write") == "http://proxy.corp:3128")
        #expect(p.proxy(for: "http://10.1.2.3:9000/x") == nil)
        #expect(p.proxy(for: "https://user:pw@api.example.com/x") == nil)
        #expect(ProxySettings(httpsProxy: "http://p:1", noProxy: "*").proxy(for: "https://a.b/") == nil)
        #expect(ProxySettings().proxy(for: "https://a.b/") == nil)
    }

    @Test func requestsGoThroughTheConfiguredProxyUnlessNoProxySaysOtherwise() async throws {
        try await withServer { origin, originHandler in
            try await withServer { proxy, _ in
                let target = "http://localhost:\(origin.port)/echo"
                let proxied = HTTPClient(
                    configuration: .init(proxy: ProxySettings(httpProxy: "http://127.0.0.1:\(proxy.port)"))
                )
                defer { proxied.shutdown() }
                let r = try await proxied.execute(HTTPClientRequest(url: target))
                #expect(r.header("X-Via-Proxy") == "yes")
                #expect(r.header("X-Target") == target, "a forward proxy gets the absolute URL")
                #expect(originHandler.seen.withLock { $0.isEmpty }, "the origin was not contacted directly")
                let bypass = HTTPClient(
                    configuration: .init(
                        proxy: ProxySettings(httpProxy: "http://127.0.0.1:\(proxy.port)", noProxy: "localhost")
                    )
                )
                defer { bypass.shutdown() }
                let direct = try await bypass.execute(HTTPClientRequest(url: target))
                #expect(direct.header("X-Via-Proxy") == nil)
                #expect(originHandler.seen.withLock { $0 } == ["GET /echo"])
            }
        }
    }

    /// TLS against a real `openssl s_server` with a private CA: untrusted without the CA file
    /// (a typed TLS error), trusted with it.
    @Test func tlsIsVerifiedAndAnExtraCAFileIsTrusted() async throws {
        let (dir, key, cert) = try selfSignedCertificate()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (server, port) = try tlsServer(cert: cert, key: key, mode: "-www")
        defer { server.stop() }
        let url = "https://localhost:\(port)/"
        let untrusting = HTTPClient()
        defer { untrusting.shutdown() }
        do {
            _ = try await untrusting.execute(HTTPClientRequest(url: url, timeoutMilliseconds: 10_000))
            Issue.record("a certificate from an unknown CA must be refused")
        } catch let error as HTTPClientError {
            #expect(error.kind == .tls, "\(error)")
        }
        let trusting = HTTPClient(configuration: .init(caFile: cert))
        defer { trusting.shutdown() }
        let r = try await trusting.execute(HTTPClientRequest(url: url, timeoutMilliseconds: 10_000))
        #expect(r.status == 200)
        let missing = HTTPClient(configuration: .init(caFile: dir.appendingPathComponent("absent.pem").path))
        defer { missing.shutdown() }
        do {
            _ = try await missing.execute(HTTPClientRequest(url: url, timeoutMilliseconds: 10_000))
            Issue.record("an unreadable CA file must fail clearly")
        } catch let error as HTTPClientError {
            #expect(error.kind == .tls, "\(error)")
        }
    }

    /// The byte stream (what the WebSocket client runs on): TLS verified against the system CAs
    /// plus the configured CA file, bytes both ways, a typed TLS error for an untrusted server
    /// (whose message leaves the URL's path out), and a deadline that passes without data.
    @Test func aByteStreamSpeaksVerifiedTLS() throws {
        let (dir, key, cert) = try selfSignedCertificate()
        defer { try? FileManager.default.removeItem(at: dir) }
        // -rev: answers every line reversed.
        let (server, port) = try tlsServer(cert: cert, key: key, mode: "-rev")
        defer { server.stop() }
        let url = "https://localhost:\(port)/channels/secret-channel-id"
        do {
            _ = try ByteStream(url: url, configuration: .init(), connectTimeout: .seconds(10))
            Issue.record("a certificate from an unknown CA must be refused")
        } catch {
            #expect(error.kind == .tls, "\(error)")
            #expect(!error.message.contains("secret-channel-id"), "the path is not in messages: \(error.message)")
        }
        let stream = try ByteStream(url: url, configuration: .init(caFile: cert), connectTimeout: .seconds(10))
        defer { stream.close() }
        try stream.send(Array("genesys\n".utf8), deadline: .now + .seconds(10))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { buffer.deallocate() }
        var received: [UInt8] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while !String(decoding: received, as: UTF8.self).contains("syseneg"), ContinuousClock.now < deadline {
            guard let n = try stream.receive(into: buffer, deadline: deadline), n > 0 else { break }
            received += buffer[0..<n]
        }
        #expect(String(decoding: received, as: UTF8.self).contains("syseneg"), "echo: \(received)")
        // Nothing more comes: the deadline passes without data.
        #expect(try stream.receive(into: buffer, deadline: .now + .milliseconds(200)) == nil)
        #expect(
            ByteStream.origin(of: "wss://user:pw@streaming.example:443/channels/x?y") == "wss://streaming.example:443"
        )
    }

    @Test func aShutDownClientRefusesNewRequests() async throws {
        let client = HTTPClient()
        client.shutdown()
        do {
            _ = try await client.execute(HTTPClientRequest(url: "http://127.0.0.1:1/"))
            Issue.record("must fail")
        } catch let error as HTTPClientError {
            #expect(error.kind == .shutDown)
        }
    }
}

/// A throwaway key and self-signed certificate for `localhost` / 127.0.0.1 (a private CA).
private func selfSignedCertificate() throws -> (dir: URL, key: String, cert: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let key = dir.appendingPathComponent("key.pem").path
    let cert = dir.appendingPathComponent("cert.pem").path
    let make = try ChildProcess(
        executable: "/usr/bin/openssl",
        arguments: [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        logName: "openssl-req"
    )
    #expect(make.waitForExit(timeout: 30) == 0, "\(make.output)")
    return (dir, key, cert)
}

/// `openssl s_server` on a free loopback port with `mode` (`-www`: answers HTTP with a status
/// page; `-rev`: echoes each line reversed).
private func tlsServer(cert: String, key: String, mode: String) throws -> (ChildProcess, Int) {
    let port = Network.freePort()
    let server = try ChildProcess(
        executable: "/usr/bin/openssl",
        arguments: ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", cert, "-key", key, mode, "-quiet"],
        logName: "openssl-s_server"
    )
    #expect(Network.waitForPort(port, timeout: 20), "s_server did not start: \(server.output)")
    return (server, port)
}
