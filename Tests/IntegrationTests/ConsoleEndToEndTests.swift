import Foundation
import IngestCore
import IngestCrypto
import IngestKafka
import IngestTesting
import Testing

/// The console as a real process (`ingestctl console serve`) over real sockets, against a real
/// broker and real worker processes: dead letters made by a worker, found in the browser's
/// pages, redriven in bulk through a plan and a confirmed job, handled exactly once by the fixed
/// worker, audited; a viewer's forged redrive refused.
@Suite("Ops console: sign in, dead letters, bulk redrive (real processes)", .serialized, .elasticThreads)
struct ConsoleEndToEndTests {
    struct Browser {
        let port: Int
        var cookie = ""

        func send(_ method: String, _ path: String, form: [(String, String)] = []) throws -> RawHTTPResponse {
            let client = try RawHTTPClient(port: port, timeout: 30)
            let body = form.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
            var headers: [(String, String)] = cookie.isEmpty ? [] : [("Cookie", cookie)]
            if method == "POST" { headers.append(("Content-Type", "application/x-www-form-urlencoded")) }
            try client.send(RawHTTPClient.request(method: method, path: path, headers: headers, body: Array(body.utf8)))
            return try client.readResponse()
        }

        static func encode(_ s: String) -> String {
            s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? s
        }

        mutating func signIn(_ user: String, _ password: String) throws {
            let r = try send("POST", "/login", form: [("user", user), ("password", password)])
            #expect(r.status == 303, "\(r.bodyText)")
            cookie = String(try #require(r.header("Set-Cookie")).split(separator: ";")[0])
        }

        /// The CSRF token of the signed-in session, as a page's forms carry it.
        func csrf() throws -> String {
            let page = try send("GET", "/dlq?class=none").bodyText
            let marker = "name=\"csrf\" value=\""
            let start = try #require(page.range(of: marker)).upperBound
            return String(page[start...].prefix { $0 != "\"" })
        }
    }

    @Test func deadLettersAreRedrivenInBulkAndHandledOnce() async throws {
        let broker = try TansuBroker()
        try createTopic(broker)
        let db = try TestStore(.sqlite)
        let total = 200
        try await produce(
            broker,
            (0..<total).map { i in
                ("c-\(i)", event(conversation: "c-\(i)", id: "poison-\(i)", extra: #","ingest-test":"poison""#))
            } + [("c-ok", event(conversation: "c-ok", id: "ok-1"))]
        )
        let worker = try WorkerProcess(brokers: broker.bootstrap, store: db, group: "console")
        let kafka = KafkaClientConfiguration(bootstrapServers: broker.bootstrap)
        let dead = try await readWhenPresent(kafka, topic: "genesys.raw.conversation.dlq", expected: total)
        #expect(dead.count == total)
        worker.child.signal(SIGTERM)
        #expect(worker.child.waitForExit(timeout: 20) == 0)
        #expect(try await sideEffects(db).count == 1)
        // The fix: a worker that no longer fails on these events.
        let fixed = try WorkerProcess(
            brokers: broker.bootstrap,
            store: db,
            group: "console",
            environment: ["INGEST_RECORD_POISON_MARKER": ""]
        )
        defer { fixed.child.killAndWait() }

        let hash = PasswordHash.make(password: "s3cret", iterations: 20_000)
        let users = NSTemporaryDirectory() + "console-users-\(UUID().uuidString)"
        try "ops:operator:\(hash)\nwatcher:viewer:\(hash)\n".write(toFile: users, atomically: true, encoding: .utf8)
        let console = try ChildProcess(
            executable: BuiltProducts.path("ingestctl"),
            arguments: [
                "console", "serve", "--brokers", broker.bootstrap, "--users", users, "--port", "0", "--store", db.url,
                "--store-schema", db.schema,
            ],
            logName: "console"
        )
        defer { console.killAndWait() }
        let port = try #require(
            console.waitForOutput(#"console on http://127\.0\.0\.1:(\d+)/"#, timeout: 30).flatMap(Int.init)
        )
        var ops = Browser(port: port)
        #expect(try ops.send("GET", "/dlq").status == 303, "sign-in required")
        #expect(try ops.send("POST", "/login", form: [("user", "ops"), ("password", "wrong")]).status == 401)
        try ops.signIn("ops", "s3cret")
        let list = try ops.send("GET", "/dlq?class=poison&conversation=c-7")
        #expect(list.status == 200)
        #expect(list.bodyText.contains("<strong>1</strong> dead letter(s) match"), "filtered by conversation")
        let all = try ops.send("GET", "/dlq?class=poison").bodyText
        #expect(all.contains("<strong>\(total)</strong> dead letter(s) match"))
        #expect(all.contains("<svg"), "the per-hour chart")
        let csrf = try ops.csrf()

        // A viewer: no button, and a forged POST (with the viewer's own valid token) refused.
        var viewer = Browser(port: port)
        try viewer.signIn("watcher", "s3cret")
        #expect(!(try viewer.send("GET", "/dlq").bodyText.contains("/redrive/plan")))
        let forged = try viewer.send("POST", "/redrive/plan", form: [("csrf", try viewer.csrf()), ("class", "poison")])
        #expect(forged.status == 403)
        #expect(try ops.send("POST", "/redrive/plan", form: [("class", "poison")]).status == 403, "no CSRF token")

        // Plan, see exactly what will run, confirm, follow the job.
        let planned = try ops.send("POST", "/redrive/plan", form: [("csrf", csrf), ("class", "poison")])
        #expect(planned.status == 303)
        let location = try #require(planned.header("Location"))
        #expect(try ops.send("GET", location).bodyText.contains("<strong id=\"planned\">\(total)</strong>"))
        #expect(try ops.send("POST", location + "/run", form: [("csrf", csrf), ("rate", "500")]).status == 303)
        let done = try await eventually(seconds: 60) {
            try ops.send("GET", location).bodyText.contains("<strong id=\"state\">done</strong>")
        }
        #expect(done, "the job finished: \(console.output.suffix(1500))")
        let effects = try await waitForSideEffects(db, count: total + 1)
        #expect(effects.count == total + 1, "every replayed dead letter handled by the fixed worker")

        // A second redrive of the same dead letters: replayed, but idempotency handles each once.
        let again = try #require(
            try ops.send("POST", "/redrive/plan", form: [("csrf", csrf), ("class", "poison")]).header("Location")
        )
        #expect(try ops.send("POST", again + "/run", form: [("csrf", csrf), ("rate", "1000")]).status == 303)
        #expect(try await eventually(seconds: 60) { try ops.send("GET", again).bodyText.contains(">done<") })
        try await Task.sleep(for: .seconds(3))
        #expect(try await sideEffects(db).count == total + 1, "replaying twice handles once")

        // The conversation trace: the original, its dead letter, the replays, and how each was handled.
        let trace = try ops.send("GET", "/trace?conversation=c-7").bodyText
        #expect(trace.contains("dead letter (poison, record)"), "the dead letter, with why")
        #expect(trace.contains("replayed from genesys.raw.conversation.dlq/"), "the replays")
        #expect(trace.contains("record: done"), "handled by the record handler once replayed")
        #expect(!trace.contains("c-8"), "only this conversation")

        // Both runs audited, and shown on the audit page.
        let audit = try KafkaConsumer.readAll(configuration: kafka, topics: ["ingest.dlq.audit"], expected: 2)
        #expect(audit.count == 2)
        #expect(audit.allSatisfy { String(decoding: $0.value, as: UTF8.self).contains("\"actor\":\"ops\"") })
        let page = try ops.send("GET", "/audit").bodyText
        #expect(page.contains(String(location.dropFirst("/redrive/".count))))
        #expect(fixed.child.isRunning)

        // SIGTERM while a redrive runs: the job is cancelled, audited, and the console exits 0.
        let slow = try #require(
            try ops.send("POST", "/redrive/plan", form: [("csrf", csrf), ("class", "poison")]).header("Location")
        )
        #expect(try ops.send("POST", slow + "/run", form: [("csrf", csrf), ("rate", "5")]).status == 303)
        #expect(try await eventually(seconds: 30) { try ops.send("GET", slow).bodyText.contains(">running<") })
        console.signal(SIGTERM)
        #expect(console.waitForExit(timeout: 40) == 0, "a graceful stop: \(console.output.suffix(1000))")
        let audits = try KafkaConsumer.readAll(configuration: kafka, topics: ["ingest.dlq.audit"], expected: 3)
        #expect(audits.count == 3)
        #expect(audits.contains { String(decoding: $0.value, as: UTF8.self).contains("\"result\":\"cancelled\"") })
    }
}
