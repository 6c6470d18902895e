import Foundation
import IngestCore
import IngestCrypto
import IngestHTTP
import IngestKafka
import IngestStore
import IngestWorker
import Logging
import Testing

@testable import IngestConsole

/// Dead letters in memory (the broker in production).
final class ListSource: DeadLetterSource, @unchecked Sendable {
    // @unchecked: `records` is guarded by `lock`.
    private let lock = NSLock()
    private var records: [KafkaRecord] = []
    /// A pause per record read (a slow topic, for cancellation).
    var delay: Double = 0

    func add(_ r: [KafkaRecord]) { lock.withLock { records += r } }

    func scan(topics: [String], limit: Int, visit: (KafkaRecord) -> Bool) throws -> (read: Int, truncated: Bool) {
        let all = lock.withLock { records.filter { topics.contains($0.topic) } }
        var read = 0
        for r in all {
            guard read < limit else { return (read, true) }
            read += 1
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            if !visit(r) { break }
        }
        return (read, false)
    }
}

/// What a redrive published, in memory.
final class ListPublisher: RedrivePublisher, @unchecked Sendable {
    private let lock = NSLock()
    private var sent: [(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader])] = []
    var published: [(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader])] { lock.withLock { sent } }

    func publish(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader]) throws {
        lock.withLock { sent.append((topic, key, value, headers)) }
    }

    func flush() throws {}
}

func deadLetter(
    _ i: Int,
    class errorClass: String = "poison",
    handler: String = "record",
    message: String = "event marked as poison",
    conversation: String? = nil,
    failedAt: Int64 = 1_767_225_600_000,
    value: String? = nil
) -> KafkaRecord {
    let c = conversation ?? "c-\(i)"
    let body =
        value
        ?? #"{"id":"e-\#(i)","detail":{"topicName":"v2.detail.events.conversation.\#(c).acd.end","eventBody":{"conversationId":"\#(c)","queueId":"q-\#(i % 2)","ani":"tel:+15551230000","eventTime":1}}}"#
    return KafkaRecord(
        topic: "genesys.raw.conversation.dlq",
        partition: 0,
        offset: Int64(i),
        key: Array(c.utf8),
        value: Array(body.utf8),
        headers: [
            KafkaHeader(name: IngestHeader.contentType, string: "application/json"),
            KafkaHeader(name: "x-unknown", string: "dropped on replay"),
            KafkaHeader(name: DeadLetterHeader.originTopic, string: "genesys.raw.conversation"),
            KafkaHeader(name: DeadLetterHeader.originPartition, string: "1"),
            KafkaHeader(name: DeadLetterHeader.originOffset, string: String(1000 + i)),
            KafkaHeader(name: DeadLetterHeader.handler, string: handler),
            KafkaHeader(name: DeadLetterHeader.errorClass, string: errorClass),
            KafkaHeader(name: DeadLetterHeader.errorMessage, string: message),
            KafkaHeader(name: DeadLetterHeader.lastFailureAt, string: String(failedAt)),
        ],
        timestamp: failedAt
    )
}

struct Rig {
    let app: ConsoleApp
    let source = ListSource()
    let publisher = ListPublisher()

    init(store: (any IdempotencyStore)? = nil) throws {
        let hash = PasswordHash.make(password: "pw", iterations: 1000)
        let users = try ConsoleUsers.parse(
            "# test users\nada:admin:\(hash)\nolga:operator:\(hash)\nvic:viewer:\(hash)\n"
        )
        var configuration = ConsoleConfiguration(
            users: users,
            signer: SessionSigner(key: Array("k".utf8) + SecureRandom.bytes(16))
        )
        configuration.pageSize = 10
        let publisher = self.publisher
        app = ConsoleApp(
            configuration: configuration,
            source: source,
            publisher: { publisher },
            store: store,
            logger: Logger(label: "console-test")
        )
    }

    /// Signs in and returns the cookie and the CSRF token of the session.
    func signIn(_ user: String) throws -> (cookie: String, csrf: String) {
        let r = app.respond(ConsoleRequest(method: "POST", path: "/login", form: ["user": user, "password": "pw"]))
        #expect(r.status.code == 303)
        let set = try #require(r.headers.first { $0.0 == "Set-Cookie" }?.1)
        let cookie = String(set.split(separator: ";")[0])
        let session = try #require(app.configuration.signer.session(cookieHeader: cookie))
        return (cookie, app.configuration.signer.csrfToken(session))
    }

    func get(_ path: String, _ query: [String: String] = [:], cookie: String) -> HTTPResponse {
        app.respond(ConsoleRequest(method: "GET", path: path, query: query, cookie: cookie))
    }

    func post(_ path: String, _ form: [String: String], cookie: String) -> HTTPResponse {
        app.respond(ConsoleRequest(method: "POST", path: path, form: form, cookie: cookie))
    }
}

extension HTTPResponse {
    var text: String { String(decoding: body, as: UTF8.self) }
    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
}

@Suite("Console: sign-in, roles, CSRF, dead letters and redrive (handler level, no sockets)")
struct ConsoleAppTests {
    @Test func signInSetsASignedCookieAndRepeatedFailuresAreThrottled() throws {
        let rig = try Rig()
        #expect(rig.app.respond(ConsoleRequest(method: "GET", path: "/dlq")).status.code == 303, "to the sign-in page")
        for _ in 0..<5 {
            let r = rig.app.respond(
                ConsoleRequest(method: "POST", path: "/login", form: ["user": "ada", "password": "no"])
            )
            #expect(r.status.code == 401)
            #expect(r.header("Set-Cookie") == nil)
        }
        let locked = rig.app.respond(
            ConsoleRequest(method: "POST", path: "/login", form: ["user": "ada", "password": "pw"])
        )
        #expect(locked.status.code == 429 && locked.header("Retry-After") != nil, "locked even with the right password")
        let (cookie, _) = try rig.signIn("olga")
        let set = try #require(
            rig.app.respond(ConsoleRequest(method: "POST", path: "/login", form: ["user": "vic", "password": "pw"]))
                .header("Set-Cookie")
        )
        #expect(set.contains("HttpOnly") && set.contains("SameSite=Strict"))
        #expect(rig.get("/dlq", cookie: cookie).status.code == 200)
        // A cookie whose role was edited no longer verifies.
        let value = cookie.split(separator: "=", maxSplits: 1)[1]
        let payload = String(decoding: RequestText.decodeBase64url(value.split(separator: ".")[0])!, as: UTF8.self)
        let forged = RequestText.base64url(
            Array(payload.replacingOccurrences(of: "|operator|", with: "|admin|").utf8)
        )
        let tampered = "\(SessionSigner.cookieName)=\(forged).\(value.split(separator: ".")[1])"
        #expect(rig.get("/dlq", cookie: tampered).status.code == 303, "a forged cookie is no session")
    }

    @Test func filtersSelectTheRightDeadLetters() throws {
        let records = [
            deadLetter(0), deadLetter(1, class: "retryable", message: "Genesys unavailable (503)"),
            deadLetter(2, handler: "enrich", conversation: "c-x"), deadLetter(3, failedAt: 1_767_229_200_000),
        ]
        func matching(_ p: [String: String]) throws -> [Int64] {
            let q = try DeadLetterQuery.parse(p)
            return records.filter(q.matches).map(\.offset)
        }
        #expect(try matching([:]) == [0, 1, 2, 3])
        #expect(try matching(["class": "retryable"]) == [1])
        #expect(try matching(["handler": "enrich"]) == [2])
        #expect(try matching(["text": "UNAVAILABLE"]) == [1], "error text, case-insensitive")
        #expect(try matching(["conversation": "c-x"]) == [2])
        #expect(try matching(["queue": "q-1"]) == [1, 3])
        #expect(try matching(["since": "2026-01-01T00:30:00Z"]) == [3])
        #expect(try matching(["until": "1767229200000"]) == [0, 1, 2])
        #expect(try matching(["header": "dlq-origin-offset=1002"]) == [2])
        #expect(try matching(["path": "detail.eventBody.queueId=q-0"]) == [0, 2])
        #expect(try matching(["path": "detail.eventBody.eventTime=1"]) == [0, 1, 2, 3], "numbers by their text")
        #expect(throws: DeadLetterQuery.Invalid.self) { try DeadLetterQuery.parse(["since": "yesterday"]) }
        #expect(throws: DeadLetterQuery.Invalid.self) { try DeadLetterQuery.parse(["header": "=x"]) }
    }

    @Test func aViewerCannotRedriveAndAPostWithoutTheTokenIsRefused() throws {
        let rig = try Rig()
        rig.source.add((0..<3).map { deadLetter($0) })
        let viewer = try rig.signIn("vic")
        let page = rig.get("/dlq", cookie: viewer.cookie)
        #expect(page.status.code == 200 && page.text.contains("3</strong> dead letter(s) match"))
        #expect(!page.text.contains("/redrive/plan"), "no redrive button for a viewer")
        let forged = rig.post("/redrive/plan", ["csrf": viewer.csrf, "class": "poison"], cookie: viewer.cookie)
        #expect(forged.status.code == 403, "refused by the server, not only hidden")
        let op = try rig.signIn("olga")
        #expect(rig.get("/dlq", cookie: op.cookie).text.contains("/redrive/plan"))
        #expect(rig.post("/redrive/plan", ["class": "poison"], cookie: op.cookie).status.code == 403, "no token")
        #expect(
            rig.post("/redrive/plan", ["class": "poison", "csrf": viewer.csrf], cookie: op.cookie).status.code == 403
        )
        #expect(rig.post("/logout", [:], cookie: op.cookie).status.code == 403, "sign-out needs the token too")
        #expect(rig.publisher.published.isEmpty)
    }

    /// The plan is what runs: dead letters that arrive after planning are not replayed, each
    /// planned one exactly once, with the product's headers and the replay header only.
    @Test func aRunReplaysExactlyThePlan() async throws {
        let rig = try Rig()
        rig.source.add((0..<12).map { deadLetter($0) } + [deadLetter(12, class: "retryable")])
        let op = try rig.signIn("olga")
        let planned = rig.post("/redrive/plan", ["csrf": op.csrf, "class": "poison"], cookie: op.cookie)
        #expect(planned.status.code == 303)
        let location = try #require(planned.header("Location"))
        let id = String(location.dropFirst("/redrive/".count))
        #expect(rig.get(location, cookie: op.cookie).text.contains("<strong id=\"planned\">12</strong>"))
        rig.source.add((13..<20).map { deadLetter($0) })
        #expect(rig.post("\(location)/run", ["csrf": op.csrf, "rate": "1000"], cookie: op.cookie).status.code == 303)
        let deadline = ContinuousClock.now + .seconds(10)
        while rig.app.jobs.job(id)?.state != .done && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(rig.app.jobs.job(id)?.state == .done)
        let replays = rig.publisher.published.filter { $0.topic == "genesys.raw.conversation" }
        #expect(replays.count == 12, "exactly the plan, not the 7 that arrived later nor the retryable one")
        let from = replays.compactMap { r in r.headers.first { $0.name == DeadLetterHeader.replayedFrom }?.value }
        #expect(Set(from.map { String(decoding: $0, as: UTF8.self) }).count == 12)
        #expect(
            replays.allSatisfy { r in
                !r.headers.contains {
                    $0.name == "x-unknown" || $0.name.hasPrefix("dlq-") && $0.name != DeadLetterHeader.replayedFrom
                }
            }
        )
        #expect(replays.first?.key == Array("c-0".utf8))
        let audit = try #require(rig.publisher.published.first { $0.topic == "ingest.dlq.audit" })
        let record = try JSONValue.parse(Data(audit.value))
        #expect(record["actor"]?.stringValue == "olga" && record["replayed"] == 12 && record["result"] == "done")
        #expect(record["records"]?.elements.count == 12)
        // Running the same plan again is refused (a new plan must be made and confirmed).
        #expect(rig.post("\(location)/run", ["csrf": op.csrf], cookie: op.cookie).status.code == 400)
    }

    @Test func aCancelledJobStopsAndTheAuditSaysHowFarItGot() async throws {
        let rig = try Rig()
        rig.source.add((0..<100).map { deadLetter($0) })
        let op = try rig.signIn("ada")
        let location = try #require(
            rig.post("/redrive/plan", ["csrf": op.csrf], cookie: op.cookie).header("Location")
        )
        let id = String(location.dropFirst("/redrive/".count))
        // 5 a second: 20 s for all 100, so the cancel surely comes first however slow the
        // machine (it is sent once the first record went out).
        #expect(rig.post("\(location)/run", ["csrf": op.csrf, "rate": "5"], cookie: op.cookie).status.code == 303)
        let started = ContinuousClock.now + .seconds(10)
        while (rig.app.jobs.job(id)?.replayed ?? 0) < 1 && ContinuousClock.now < started {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(rig.get(location, cookie: op.cookie).header("Refresh") == "1", "a running job's page reloads itself")
        #expect(rig.post("\(location)/cancel", ["csrf": op.csrf], cookie: op.cookie).status.code == 303)
        let deadline = ContinuousClock.now + .seconds(10)
        while rig.app.jobs.job(id)?.state != .cancelled && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let job = try #require(rig.app.jobs.job(id))
        #expect(job.state == .cancelled)
        let replays = rig.publisher.published.filter { $0.topic == "genesys.raw.conversation" }
        #expect(job.replayed > 0 && job.replayed < 100 && replays.count == job.replayed, "\(job.replayed) replayed")
        let audit = try #require(rig.publisher.published.first { $0.topic == "ingest.dlq.audit" })
        let record = try JSONValue.parse(Data(audit.value))
        #expect(record["result"] == "cancelled" && record["replayed"] == .number(Double(job.replayed)))
    }

    /// The console's shutdown: a running job is cancelled and still writes its audit record.
    @Test func stoppingTheConsoleCancelsAndAuditsRunningJobs() async throws {
        let rig = try Rig()
        rig.source.add((0..<100).map { deadLetter($0) })
        let op = try rig.signIn("olga")
        let location = try #require(rig.post("/redrive/plan", ["csrf": op.csrf], cookie: op.cookie).header("Location"))
        let id = String(location.dropFirst("/redrive/".count))
        #expect(rig.post("\(location)/run", ["csrf": op.csrf, "rate": "5"], cookie: op.cookie).status.code == 303)
        let started = ContinuousClock.now + .seconds(10)
        while (rig.app.jobs.job(id)?.replayed ?? 0) < 1 && ContinuousClock.now < started {
            try await Task.sleep(for: .milliseconds(20))
        }
        rig.app.jobs.stopAll(timeout: .seconds(10))
        #expect(rig.app.jobs.job(id)?.state == .cancelled)
        let audit = try #require(rig.publisher.published.first { $0.topic == "ingest.dlq.audit" })
        #expect(try JSONValue.parse(Data(audit.value))["result"] == "cancelled")
    }

    @Test func viewersSeeMaskedValuesAndEverythingIsEscaped() throws {
        let rig = try Rig()
        rig.source.add([deadLetter(0, message: "<script>alert(1)</script>")])
        let viewer = try rig.signIn("vic")
        let page = rig.get(
            "/dlq/record",
            ["topic": "genesys.raw.conversation.dlq", "partition": "0", "offset": "0"],
            cookie: viewer.cookie
        )
        #expect(page.status.code == 200)
        #expect(page.text.contains("&quot;ani&quot; : &quot;***&quot;"), "masked for viewers")
        #expect(!page.text.contains("5551230000"))
        #expect(!page.text.contains("<script>alert(1)"), "header values are escaped")
        let admin = try rig.signIn("ada")
        let full = rig.get(
            "/dlq/record",
            ["topic": "genesys.raw.conversation.dlq", "partition": "0", "offset": "0"],
            cookie: admin.cookie
        )
        #expect(full.text.contains("5551230000"), "admins see the value")
        #expect(!rig.get("/dlq", cookie: viewer.cookie).text.contains("<script>alert(1)"))
        #expect(
            rig.get("/dlq/record", ["topic": "x", "partition": "0", "offset": "0"], cookie: admin.cookie).status.code
                == 400
        )
    }

    @Test func usersFilesSayWhatIsWrong() {
        let hash = PasswordHash.make(password: "pw", iterations: 1000)
        for (text, expected) in [
            ("ada:admin", "line 1: expected name:role:hash"), ("a d:admin:\(hash)", "user name"),
            ("ada:root:\(hash)", "role must be"), ("ada:admin:plain", "pbkdf2-sha256"),
            ("ada:admin:\(hash)\nada:viewer:\(hash)", "line 2: user ada is listed twice"), ("# nobody", "no user"),
        ] {
            #expect {
                _ = try ConsoleUsers.parse(text)
            } throws: { error in
                "\(error)".contains(expected)
            }
        }
    }

    @Test func passwordHashesAreSaltedAndVerifyOnlyTheirPassword() {
        let a = PasswordHash.make(password: "correct horse", iterations: 1000)
        let b = PasswordHash.make(password: "correct horse", iterations: 1000)
        #expect(a != b, "salted")
        #expect(PasswordHash.verify(password: "correct horse", encoded: a))
        #expect(!PasswordHash.verify(password: "correct hors", encoded: a))
        #expect(
            !PasswordHash.verify(password: "x", encoded: "pbkdf2-sha256$99999999999$AA==$AA=="),
            "absurd cost refused"
        )
        #expect(!PasswordHash.verify(password: "x", encoded: "garbage"))
        // RFC 7914 §11's PBKDF2-HMAC-SHA256 vector (P="passwd", S="salt", c=1, dkLen=64).
        let derived = PasswordHash.derive(
            password: Array("passwd".utf8),
            salt: Array("salt".utf8),
            iterations: 1,
            length: 64
        )
        #expect(
            ByteEncoding.encodeHex(derived).hasPrefix(
                "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
            )
        )
    }
}

@Suite("Console: queue pages from the analytics summaries")
struct QueuePagesTests {
    static func summary(
        queue: String,
        start: String,
        final: Bool,
        offered: Int,
        p90: Int,
        serviceLevel: Double = 0.8
    ) -> KafkaRecord {
        let value = """
            {"queueId":"\(queue)","mediaType":"voice","interval":"\(start)/x","final":\(final),"offered":\(offered),\
            "answered":\(offered - 1),"abandoned":1,"abandonRate":\(1.0 / Double(offered)),"serviceLevel":\(serviceLevel),\
            "waitMs":{"p50":1000,"p90":\(p90),"p95":\(p90 + 1000),"p99":\(p90 + 2000)}}
            """
        return KafkaRecord(
            topic: "genesys.queue.metrics",
            partition: 0,
            offset: 0,
            key: Array(queue.utf8),
            value: Array(value.utf8),
            headers: [],
            timestamp: 0
        )
    }

    @Test func theNewestSummaryOfEachIntervalWinsAndAFinalOneIsKept() {
        var s = QueueSummaries()
        s.add(Self.summary(queue: "q1", start: "2026-01-01T10:00:00Z", final: false, offered: 5, p90: 20_000).value)
        s.add(Self.summary(queue: "q1", start: "2026-01-01T10:00:00Z", final: true, offered: 9, p90: 30_000).value)
        s.add(Self.summary(queue: "q1", start: "2026-01-01T10:00:00Z", final: false, offered: 2, p90: 1_000).value)
        s.add(Self.summary(queue: "q1", start: "2026-01-01T10:30:00Z", final: false, offered: 3, p90: 40_000).value)
        s.add(Self.summary(queue: "q2", start: "2026-01-01T10:30:00Z", final: false, offered: 4, p90: 5_000).value)
        for junk in [
            "", "{}", #"{"queueId":"q3","interval":"never"}"#,
            #"{"queueId":"q3","interval":"2026-01-01T10:00:00Z/x","offered":1e300}"#,
        ] {
            s.add(Array(junk.utf8))
        }
        #expect(s.latest.map(\.queueID) == ["q1", "q2", "q3"])
        #expect(s.latest.first?.offered == 3, "the current interval")
        #expect(s.latest.last?.offered == 0, "an absurd count is not taken")
        let history = s.history("q1")["voice"] ?? []
        #expect(history.map(\.offered) == [9, 3], "the closed interval's final figures survive a late running summary")
        #expect(history.first?.final == true && history.first?.waits["p90"] == 30_000)
    }

    @Test func queuePagesShowTheFiguresAndACharts() throws {
        let rig = try Rig()
        rig.source.add([
            Self.summary(queue: "q-sales", start: "2026-01-01T10:00:00Z", final: true, offered: 40, p90: 61_000),
            Self.summary(queue: "q-sales", start: "2026-01-01T10:30:00Z", final: false, offered: 12, p90: 75_500),
        ])
        let viewer = try rig.signIn("vic")
        let list = rig.get("/queues", cookie: viewer.cookie)
        #expect(list.status.code == 200)
        #expect(list.text.contains("q-sales") && list.text.contains("75.5 s") && list.text.contains("(running)"))
        let page = rig.get("/queues/q-sales", cookie: viewer.cookie)
        #expect(page.status.code == 200 && page.text.contains("<svg") && page.text.contains("61.0 s"))
        #expect(page.text.contains("80.0 %"), "service level")
        #expect(rig.get("/queues/nope", cookie: viewer.cookie).status.code == 404)
        #expect(list.text.contains("need <code>--store</code>"), "without a store the page says what is missing")
    }

    /// With the workers' store: the alerts firing and the overflow controller's state, read from
    /// the documents the analytics and overflow workers keep.
    @Test func queuePagesShowFiringAlertsAndTheOverflowState() async throws {
        let path = NSTemporaryDirectory() + "console-store-\(UUID().uuidString).sqlite"
        let store = try SQLiteIdempotencyStore(path: path)
        for (key, body) in [
            ("genesys-ingest/surge/q-sales/voice", "firing\tsurge\tq-sales\tvoice"),
            ("genesys-ingest/slow/q-sales/voice", "resolved\tslow\tq-sales\tvoice"),
            ("genesys-ingest/surge/q-other/voice", "firing\tsurge\tq-other\tvoice"),
        ] {
            #expect(
                try await store.putDocument(
                    kind: "analytics-alert",
                    key: key,
                    expectedVersion: 0,
                    body: body,
                    owner: "w",
                    leaseUntil: 0
                )
            )
        }
        let overflow =
            #"{"queueID":"q-sales","state":"active","stateSince":1767225600000,"lastActivation":{"activationID":"a1","outcome":"reverted","endedAt":1767222000000,"addedMembers":["u1","u2"],"changedFields":[],"notes":[]}}"#
        #expect(
            try await store.putDocument(
                kind: "overflow",
                key: "q-sales",
                expectedVersion: 0,
                body: overflow,
                owner: "w",
                leaseUntil: 0
            )
        )
        let rig = try Rig(store: store)
        rig.source.add([
            Self.summary(queue: "q-sales", start: "2026-01-01T10:00:00Z", final: false, offered: 3, p90: 9_000)
        ])
        let viewer = try rig.signIn("vic")
        let page = rig.get("/queues/q-sales", cookie: viewer.cookie).text
        #expect(page.contains("<strong id=\"alerts\">surge (voice)</strong>"), "only the firing alert of this queue")
        #expect(page.contains("<strong id=\"overflow\">active</strong>"))
        #expect(page.contains("last activation: reverted") && page.contains("2 member(s) added"))
        let list = rig.get("/queues", cookie: viewer.cookie).text
        #expect(list.contains("<td>surge</td><td>active</td>"))
        await store.close()
    }
}
