import Foundation
import IngestCore
import IngestKafka
import IngestStore
import IngestTesting
import Logging
import Synchronization
import Testing

/// A real `ingest-worker` process with the `record` handler and a SQLite store.
final class WorkerProcess {
    let child: ChildProcess
    let httpPort: Int

    init(brokers: String, store: TestStore, group: String, environment extra: [String: String] = [:]) throws {
        var env: [String: String] = [
            "INGEST_KAFKA_BROKERS": brokers,
            "INGEST_STORE_URL": store.url,
            "INGEST_STORE_SCHEMA": store.schema,
            "INGEST_WORKER_GROUP": group,
            "INGEST_WORKER_HANDLERS": "record",
            "INGEST_WORKER_HTTP_HOST": "127.0.0.1",
            "INGEST_WORKER_HTTP_PORT": "0",
            "INGEST_WORKER_TOPICS": "genesys.raw.conversation",
            // Tansu: a group join waits for the rebalance timeout; keep it short.
            "INGEST_KAFKA_CONSUMER_PROPERTIES": "max.poll.interval.ms=7000,session.timeout.ms=6000",
            "INGEST_RETRY_BACKOFF_MS": "20",
            // A killed worker's claims are taken over after this.
            "INGEST_CLAIM_LEASE_MS": "3000",
        ]
        for (k, v) in extra { env[k] = v }
        child = try ChildProcess(executable: BuiltProducts.path("ingest-worker"), environment: env, logName: "worker")
        guard let port = child.waitForOutput(#"worker\.http\.port=(\d+)"#, timeout: 20).flatMap({ Int($0) }) else {
            throw RawHTTPClientError(description: "worker did not start: \(child.output)")
        }
        httpPort = port
    }

    func get(_ path: String) throws -> RawHTTPResponse {
        let client = try RawHTTPClient(port: httpPort)
        try client.send(RawHTTPClient.request(method: "GET", path: path))
        return try client.readResponse()
    }
}

/// Produces records and waits for every acknowledgement.
func produce(
    _ broker: TansuBroker,
    _ records: [(key: String, value: [UInt8])],
    topic: String = "genesys.raw.conversation",
    headers: (Int) -> [KafkaHeader] = { _ in [] }
)
    async throws
{
    let acked = Atomic<Int>(0)
    let producer = try KafkaProducer(
        configuration: KafkaClientConfiguration(bootstrapServers: broker.bootstrap),
        logger: Logger(label: "test"),
        onDeliveryReports: { reports in acked.add(reports.filter { $0.error == nil }.count, ordering: .relaxed) }
    )
    for (i, r) in records.enumerated() {
        try producer.produce(
            topic: topic,
            key: Array(r.key.utf8),
            value: r.value,
            headers: headers(i),
            token: UInt64(i + 1)
        )
    }
    let deadline = ContinuousClock.now + .seconds(30)
    while acked.load(ordering: .relaxed) < records.count && ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(20))
    }
    producer.close()
    #expect(acked.load(ordering: .relaxed) == records.count)
}

func createTopic(_ broker: TansuBroker, _ name: String = "genesys.raw.conversation", partitions: Int32 = 6) throws {
    try KafkaAdmin(configuration: KafkaClientConfiguration(bootstrapServers: broker.bootstrap))
        .createTopics([.init(name: name, partitions: partitions)])
}

/// A fresh store for one test: a SQLite file or a PostgreSQL schema.
struct TestStore {
    var kind: StoreKind
    var location: String

    init(_ kind: StoreKind) throws {
        self.kind = kind
        self.location = try kind.make().location
    }

    var url: String { kind == .sqlite ? "sqlite:" + location : testPostgresURL! }
    var schema: String { kind == .sqlite ? "public" : location }
}

/// Side effects recorded so far (read through a second connection to the worker's store).
func sideEffects(_ store: TestStore) async throws -> [SideEffect] {
    let connection = try store.kind.make(sharing: store.location).store
    let effects = try await connection.sideEffects(handler: "record")
    await connection.close()
    return effects
}

func waitForSideEffects(_ path: TestStore, count: Int, timeout: Double = 60) async throws -> [SideEffect] {
    let deadline = ContinuousClock.now + .seconds(timeout)
    var effects: [SideEffect] = []
    while ContinuousClock.now < deadline {
        effects = try await sideEffects(path)
        if effects.count >= count { break }
        try await Task.sleep(for: .milliseconds(200))
    }
    try await Task.sleep(for: .milliseconds(500))  // anything extra would show up now
    return try await sideEffects(path)
}

func event(
    conversation: String,
    id: String?,
    type: String = "customer.start",
    participant: String = "p1",
    extra: String = ""
)
    -> [UInt8]
{
    let idField = id.map { "\"id\":\"\($0)\"," } ?? ""
    return Array(
        """
        {\(idField)"detail":{"topicName":"v2.detail.events.conversation.\(conversation).\(type)","eventBody":{\
        "eventTime":1649237444949,"conversationId":"\(conversation)","participantId":"\(participant)",\
        "sessionId":"s-\(participant)"\(extra)}}}
        """.utf8
    )
}

/// Reads `topic` from the beginning once it exists (dead-letter topics appear on first write).
func readWhenPresent(
    _ kafka: KafkaClientConfiguration,
    topic: String,
    expected: Int,
    timeout: Double = 30
) async throws
    -> [KafkaRecord]
{
    let deadline = ContinuousClock.now + .seconds(timeout)
    var records: [KafkaRecord] = []
    while ContinuousClock.now < deadline {
        records = try KafkaConsumer.readAll(
            configuration: kafka,
            topics: [topic],
            expected: expected,
            idleMilliseconds: 1000
        )
        if records.count >= expected { break }
        try await Task.sleep(for: .milliseconds(300))
    }
    return records
}

@Suite(
    "Worker end to end: real worker processes, real Tansu broker, SQLite and PostgreSQL",
    .serialized,
    .elasticThreads
)
struct WorkerEndToEndTests {
    @Test(arguments: StoreKind.available)
    func duplicateDeliveriesGiveOneSideEffectEach(kind: StoreKind) async throws {
        let broker = try TansuBroker()
        try createTopic(broker)
        let db = try TestStore(kind)
        // One EventBridge event delivered three times; two customer.start events of one
        // conversation for different participants (no envelope id), each delivered twice.
        let withID = event(conversation: "c-a", id: "env-1")
        let p1 = event(conversation: "c-b", id: nil, participant: "p1")
        let p2 = event(conversation: "c-b", id: nil, participant: "p2")
        try await produce(
            broker,
            [("c-a", withID), ("c-a", withID), ("c-b", p1), ("c-b", p2), ("c-b", p1), ("c-a", withID), ("c-b", p2)]
        )
        let worker = try WorkerProcess(brokers: broker.bootstrap, store: db, group: "dups")
        let effects = try await waitForSideEffects(db, count: 3)
        #expect(effects.count == 3, "\(effects.map(\.payload))")
        #expect(Set(effects.map(\.dedupKey)).count == 3)
        let metrics = try worker.get("/metrics").bodyText
        #expect(metrics.contains(#"ingest_worker_dedup_hits_total 4"#))
        // Consumer lag is refreshed every 5 s once partitions are assigned.
        try await DashboardCoverage.expectExported(dashboard: "worker", prefixes: ["ingest_worker_"]) {
            try worker.get("/metrics").bodyText
        }
        #expect(try worker.get("/readyz").status == 200)
    }

    /// Regression (issue 10): records without an envelope id were dropped as "duplicates":
    /// 50 distinct queue summaries gave 1 side effect, 50 enriched records 1, 50 notification-
    /// shape observations of one queue 1. Now each shape gives 50, and 20 redeliveries of one
    /// record (byte-identical, or an enriched record re-published with the same producer id
    /// after a crash) are handled once.
    @Test(arguments: StoreKind.available)
    func recordsWithoutAnEnvelopeIDAreAllHandledAndRedeliveriesOnce(kind: StoreKind) async throws {
        let broker = try TansuBroker()
        let topics = ["genesys.queue.metrics", "genesys.conversations.enriched", "genesys.raw.queue"]
        for t in topics { try createTopic(broker, t, partitions: 3) }
        let db = try TestStore(kind)
        func summary(_ i: Int) -> [UInt8] {
            Array(
                #"{"queueId":"q-1","mediaType":"voice","interval":"2026-12-01T10:00:00Z/2026-12-01T10:30:00Z","final":false,"offered":\#(i)}"#
                    .utf8
            )
        }
        func enriched(_ i: Int, at second: Int) -> [UInt8] {
            Array(
                #"{"conversationId":"c-\#(i)","derived":{"tAcdMs":\#(i)},"enrichedAt":"2026-12-01T10:00:\#(second)Z"}"#
                    .utf8
            )
        }
        func observation(_ i: Int) -> [UInt8] {
            Array(
                #"{"topicName":"v2.analytics.queues.q-1.observations","version":"2","eventBody":{"group":{"queueId":"q-1"},"data":[{"metrics":[{"metric":"oWaiting","stats":{"count":\#(i)}}]}]}}"#
                    .utf8
            )
        }
        let again = Array(repeating: 0, count: 20)
        try await produce(broker, ((0..<50) + again).map { ("q-1", summary($0)) }, topic: topics[0])
        let republished =
            (0..<50).map { ("c-\($0)", enriched($0, at: 10)) } + again.map { _ in ("c-0", enriched(0, at: 59)) }
        try await produce(broker, republished, topic: topics[1]) { i in
            [KafkaHeader(name: IngestHeader.producedEventID, string: "enriched|id:e-\(i < 50 ? i : 0)")]
        }
        try await produce(broker, ((0..<50) + again).map { ("q-1", observation($0)) }, topic: topics[2])
        let worker = try WorkerProcess(
            brokers: broker.bootstrap,
            store: db,
            group: "no-envelope-id",
            environment: ["INGEST_WORKER_TOPICS": topics.joined(separator: ",")]
        )
        let effects = try await waitForSideEffects(db, count: 150, timeout: 90)
        for topic in topics {
            let handled = effects.filter { $0.payload.hasPrefix(topic + "/") }
            #expect(handled.count == 50, "\(topic): \(handled.count) handled")
        }
        #expect(effects.count == 150)
        let metrics = try worker.get("/metrics").bodyText
        #expect(metrics.contains(#"ingest_worker_dedup_hits_total 60"#), "20 redeliveries per shape skipped")
    }

    @Test func perKeyOrderHoldsUnderConcurrency() async throws {
        let broker = try TansuBroker()
        try createTopic(broker, partitions: 3)
        let db = try TestStore(.sqlite)
        var records: [(key: String, value: [UInt8])] = []
        for seq in 0..<60 {
            for c in 0..<8 {
                records.append(
                    ("conv-\(c)", event(conversation: "conv-\(c)", id: "e-\(c)-\(seq)", extra: ",\"seq\":\(seq)"))
                )
            }
        }
        try await produce(broker, records)
        let worker = try WorkerProcess(
            brokers: broker.bootstrap,
            store: db,
            group: "order",
            environment: [
                "INGEST_WORKER_CONCURRENCY": "8", "INGEST_WORKER_BATCH_SIZE": "64", "INGEST_RECORD_WORK_MS": "4",
                "INGEST_RECORD_WORK_RANDOM": "true",
            ]
        )
        let effects = try await waitForSideEffects(db, count: records.count)
        #expect(effects.count == records.count)
        // What the handlers really did: each effect says when its handler started and ended
        // (ticks of one counter in the worker). Per conversation, in offset order, a handler
        // must start only after the previous one ended; across conversations they overlap.
        struct Run {
            var offset: Int
            var start: Int
            var end: Int
        }
        var runs: [String: [Run]] = [:]
        for e in effects {
            let parts = e.payload.split(separator: " ")
            let offset = Int(parts[0].split(separator: "/")[2])!
            let ticks = parts[2].dropFirst("run=".count).split(separator: "-").compactMap { Int($0) }
            runs[String(parts[1]), default: []].append(Run(offset: offset, start: ticks[0], end: ticks[1]))
        }
        #expect(runs.count == 8)
        for (conversation, list) in runs {
            let ordered = list.sorted { $0.offset < $1.offset }
            #expect(ordered.count == 60)
            for (a, b) in zip(ordered, ordered.dropFirst()) {
                #expect(b.start > a.end, "\(conversation): offset \(b.offset) started before \(a.offset) finished")
            }
        }
        let all = runs.values.flatMap { $0 }.sorted { $0.start < $1.start }
        let overlapping = zip(all, all.dropFirst()).filter { $1.start < $0.end }.count
        #expect(overlapping > 0, "different conversations were handled concurrently")
        #expect(worker.child.isRunning)
    }

    /// SIGKILL mid-stream, restart: nothing lost, no side effect applied twice.
    @Test(arguments: StoreKind.available)
    func sigkillMidStreamThenRestartLosesNothingAndAppliesNothingTwice(kind: StoreKind) async throws {
        let broker = try TansuBroker()
        try createTopic(broker)
        let db = try TestStore(kind)
        let total = 1500
        try await produce(
            broker,
            (0..<total).map { i in ("c-\(i % 50)", event(conversation: "c-\(i % 50)", id: "k-\(i)")) }
        )
        // The first worker is slow (so the kill lands mid-stream even on a busy machine), the
        // second one fast.
        let env = ["INGEST_RECORD_WORK_MS": "30", "INGEST_WORKER_CONCURRENCY": "2", "INGEST_WORKER_BATCH_SIZE": "100"]
        let first = try WorkerProcess(brokers: broker.bootstrap, store: db, group: "kill", environment: env)
        var seen = 0
        let deadline = ContinuousClock.now + .seconds(60)
        while seen < total / 8 && ContinuousClock.now < deadline {
            seen = try await sideEffects(db).count
            try await Task.sleep(for: .milliseconds(50))
        }
        first.child.signal(SIGKILL)
        _ = first.child.waitForExit(timeout: 5)
        let before = try await sideEffects(db).count
        #expect(before > 0 && before < total, "killed mid-stream (\(before) of \(total) done)")
        let second = try WorkerProcess(
            brokers: broker.bootstrap,
            store: db,
            group: "kill",
            environment: env.merging(["INGEST_RECORD_WORK_MS": "0", "INGEST_WORKER_CONCURRENCY": "8"]) { $1 }
        )
        let effects = try await waitForSideEffects(db, count: total, timeout: 90)
        #expect(effects.count == total)
        #expect(Set(effects.map(\.dedupKey)).count == total, "no side effect applied twice")
        #expect(second.child.isRunning)
    }

    /// Two workers share the group and the store; one is killed; the other finishes its work.
    @Test(arguments: StoreKind.available)
    func twoWorkersOneKilledTheOtherTakesOver(kind: StoreKind) async throws {
        let broker = try TansuBroker()
        try createTopic(broker)
        let db = try TestStore(kind)
        let total = 1200
        let env = ["INGEST_RECORD_WORK_MS": "6", "INGEST_WORKER_CONCURRENCY": "4", "INGEST_WORKER_BATCH_SIZE": "50"]
        let a = try WorkerProcess(brokers: broker.bootstrap, store: db, group: "pair", environment: env)
        let b = try WorkerProcess(brokers: broker.bootstrap, store: db, group: "pair", environment: env)
        try await Task.sleep(for: .seconds(4))  // both joined
        try await produce(
            broker,
            (0..<total).map { i in ("c-\(i % 60)", event(conversation: "c-\(i % 60)", id: "t-\(i)")) }
        )
        var seen = 0
        let deadline = ContinuousClock.now + .seconds(60)
        while seen < total / 5 && ContinuousClock.now < deadline {
            seen = try await sideEffects(db).count
            try await Task.sleep(for: .milliseconds(50))
        }
        a.child.signal(SIGKILL)
        let effects = try await waitForSideEffects(db, count: total, timeout: 90)
        #expect(effects.count == total)
        #expect(Set(effects.map(\.dedupKey)).count == total)
        #expect(b.child.isRunning)
    }

    /// Poison → DLQ with its headers; after the fix, a dry run changes nothing and a replay is
    /// handled exactly once (a second replay is a duplicate).
    @Test func poisonIsDeadLetteredAndReplayIsHandledOnce() async throws {
        let broker = try TansuBroker()
        try createTopic(broker)
        let db = try TestStore(.sqlite)
        let poison = event(conversation: "c-p", id: "poison-1", extra: #","ingest-test":"poison""#)
        let retry = event(conversation: "c-r", id: "retry-1", extra: #","ingest-test":"fail""#)
        try await produce(broker, [("c-p", poison), ("c-r", retry), ("c-ok", event(conversation: "c-ok", id: "ok-1"))])
        let worker = try WorkerProcess(brokers: broker.bootstrap, store: db, group: "dlq")
        let kafka = KafkaClientConfiguration(bootstrapServers: broker.bootstrap)
        let dead = try await readWhenPresent(kafka, topic: "genesys.raw.conversation.dlq", expected: 2)
        #expect(dead.count == 2)
        let byClass = Dictionary(uniqueKeysWithValues: dead.map { ($0.header("dlq-error-class") ?? "", $0) })
        let p = try #require(byClass["poison"])
        #expect(p.value == poison)
        #expect(p.key == Array("c-p".utf8))
        #expect(p.header("dlq-origin-topic") == "genesys.raw.conversation")
        #expect(p.header("dlq-origin-partition") != nil && p.header("dlq-origin-offset") != nil)
        #expect(p.header("dlq-consumer-group") == "dlq")
        #expect(p.header("dlq-attempts") == "1")
        #expect(p.header("dlq-error-message") == "event marked as poison")
        #expect(Int64(p.header("dlq-first-failure-at") ?? "") ?? 0 > 0)
        #expect(byClass["retryable"]?.header("dlq-attempts") == "3", "retried up to the attempt limit")
        #expect(try await sideEffects(db).count == 1)
        worker.child.signal(SIGTERM)
        #expect(worker.child.waitForExit(timeout: 20) == 0, "graceful stop")

        // The fix: a worker that no longer fails on these events.
        let fixed = try WorkerProcess(
            brokers: broker.bootstrap,
            store: db,
            group: "dlq",
            environment: ["INGEST_RECORD_POISON_MARKER": "", "INGEST_RECORD_RETRYABLE_MARKER": ""]
        )
        let ctl = BuiltProducts.path("ingestctl")
        // Inspect: list (filtered, JSON), stats, show.
        let list = try ChildProcess(
            executable: ctl,
            arguments: [
                "dlq", "list", "--brokers", broker.bootstrap, "--error-class", "poison", "--conversation", "c-p",
                "--json",
            ],
            logName: "ctl"
        )
        #expect(list.waitForExit(timeout: 30) == 0)
        let lines = list.output.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(lines.count == 1)
        #expect(lines.first?.contains("\"dlq-error-class\":\"poison\"") == true)
        let stats = try ChildProcess(
            executable: ctl,
            arguments: ["dlq", "stats", "--brokers", broker.bootstrap],
            logName: "ctl"
        )
        #expect(stats.waitForExit(timeout: 30) == 0)
        #expect(stats.output.contains("genesys.raw.conversation.dlq\tpoison\t1"))
        #expect(stats.output.contains("genesys.raw.conversation.dlq\tretryable\t1"))
        let show = try ChildProcess(
            executable: ctl,
            arguments: [
                "dlq", "show", "--brokers", broker.bootstrap, "--topic", "genesys.raw.conversation.dlq", "--partition",
                String(p.partition), "--offset", String(p.offset),
            ],
            logName: "ctl"
        )
        #expect(show.waitForExit(timeout: 30) == 0)
        #expect(show.output.contains("dlq-error-message: event marked as poison"))
        #expect(show.output.contains("\"conversationId\" : \"c-p\""), "value pretty-printed")

        let dry = try ChildProcess(
            executable: ctl,
            arguments: ["dlq", "replay", "--brokers", broker.bootstrap, "--dry-run"],
            logName: "ctl"
        )
        #expect(dry.waitForExit(timeout: 30) == 0)
        #expect(dry.output.contains("2 record(s) would be replayed"))
        try await Task.sleep(for: .seconds(2))
        #expect(try await sideEffects(db).count == 1, "dry run changes nothing")

        let replay = try ChildProcess(
            executable: ctl,
            arguments: ["dlq", "replay", "--brokers", broker.bootstrap, "--error-class", "poison", "--actor", "test"],
            logName: "ctl"
        )
        #expect(replay.waitForExit(timeout: 30) == 0, "\(replay.output)")
        var effects = try await waitForSideEffects(db, count: 2)
        #expect(effects.count == 2)
        #expect(effects.contains { $0.dedupKey == "record|id:poison-1" })
        // Replaying the same dead letter again: idempotency makes it a no-op.
        let again = try ChildProcess(
            executable: ctl,
            arguments: ["dlq", "replay", "--brokers", broker.bootstrap, "--error-class", "poison"],
            logName: "ctl"
        )
        #expect(again.waitForExit(timeout: 30) == 0)
        try await Task.sleep(for: .seconds(4))
        effects = try await sideEffects(db)
        #expect(effects.count == 2)
        let audit = try KafkaConsumer.readAll(configuration: kafka, topics: ["ingest.dlq.audit"], expected: 2)
        #expect(audit.count == 2)
        #expect(audit.contains { String(decoding: $0.value, as: UTF8.self).contains("\"actor\":\"test\"") })
        #expect(fixed.child.isRunning)
    }

    @Test func fatalFailurePausesWithoutDeadLettering() async throws {
        let broker = try TansuBroker()
        try createTopic(broker)
        let db = try TestStore(.sqlite)
        try await produce(
            broker,
            [("c-f", event(conversation: "c-f", id: "fatal-1", extra: #","ingest-test":"fatal""#))]
        )
        let worker = try WorkerProcess(brokers: broker.bootstrap, store: db, group: "fatal")
        var paused = false
        for _ in 0..<100 where !paused {
            paused = try worker.get("/readyz").status == 503 && worker.child.output.contains("consumption paused")
            if !paused { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(paused)
        #expect(try worker.get("/readyz").bodyText.contains("paused"))
        let kafka = KafkaClientConfiguration(bootstrapServers: broker.bootstrap)
        let dead = try KafkaConsumer.readAll(
            configuration: kafka,
            topics: ["genesys.raw.conversation.dlq"],
            idleMilliseconds: 1500
        )
        #expect(dead.isEmpty, "nothing dead-lettered")
        #expect(try await sideEffects(db).isEmpty)
    }
}
