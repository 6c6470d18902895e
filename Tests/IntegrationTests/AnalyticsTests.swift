import Foundation
import IngestCore
import IngestKafka
import IngestStore
import IngestTesting
import IngestWorker
import Logging
import Prometheus
import Testing

@testable import GenesysSimulator
@testable import IngestAnalytics

/// An `acd.end` EventBridge envelope.
func acdEndEvent(
    id: String = EventFactory.uuid(),
    conversation: String = EventFactory.uuid(),
    queue: String,
    waitMilliseconds: Int,
    outcome: String = "ANSWERED",
    eventTime: Int64 = Int64(Date().timeIntervalSince1970 * 1000)
) -> [UInt8] {
    Array(
        """
        {"version":"0","id":"\(id)","detail-type":"v2.detail.events.conversation.{id}.acd.end",\
        "source":"aws.partner/genesys.com/cloud/org/ingest-test","time":"2026-11-23T09:00:00Z",\
        "detail":{"topicName":"v2.detail.events.conversation.\(conversation).acd.end","version":"2",\
        "eventBody":{"eventTime":\(eventTime),"conversationId":"\(conversation)","participantId":"p-acd",\
        "sessionId":"s-1","queueId":"\(queue)","mediaType":"VOICE","acdOutcome":"\(outcome)",\
        "connectedDurationMs":\(waitMilliseconds)}}}
        """.utf8
    )
}

/// Values of the series `name` whose labels include all of `labels`, from a Prometheus text page.
func metricValues(_ page: String, _ name: String, _ labels: [String: String] = [:]) -> [Double] {
    page.split(separator: "\n").compactMap { line -> Double? in
        guard line.hasPrefix(name + "{") || line.hasPrefix(name + " ") else { return nil }
        for (k, v) in labels where !line.contains("\(k)=\"\(v)\"") { return nil }
        return line.split(separator: " ").last.flatMap { Double($0) }
    }
}

/// The share of `values` at or below `v` (the rank a reported percentile has in the exact data).
func rank(of v: Double, in values: [Double]) -> Double {
    Double(values.filter { $0 <= v }.count) / Double(values.count)
}

@Suite("Queue wait analytics: parsing, delivery, engine", .elasticThreads)
struct AnalyticsUnitTests {
    @Test func readsAcdEndFromTheGeneratorsEnvelope() throws {
        let body = TrafficGenerator.envelope(
            conversation: "c-1",
            type: "acd.end",
            fields: [
                "queueId": "q-1", "eventTime": Int64(1_700_000_000_000), "acdOutcome": "ABANDON",
                "connectedDurationMs": 4200,
            ]
        )
        let o = try AnalyticsInput.acdEnd(body)
        #expect(
            o
                == WaitObservation(
                    queueID: "q-1",
                    mediaType: "voice",
                    eventTimeMilliseconds: 1_700_000_000_000,
                    waitMilliseconds: 4200,
                    outcome: .abandoned
                )
        )
        // New outcome values appear without notice: counted as unknown, not rejected.
        let novel = try AnalyticsInput.acdEnd(acdEndEvent(queue: "q", waitMilliseconds: 1, outcome: "TRANSFERRED_AWAY"))
        #expect(novel.outcome == .unknown)
        #expect(throws: AnalyticsInput.ParseError.missingField("queueId")) {
            try AnalyticsInput.acdEnd(
                TrafficGenerator.envelope(
                    conversation: "c",
                    type: "acd.end",
                    fields: ["eventTime": 1, "connectedDurationMs": 1]
                )
            )
        }
        #expect(throws: AnalyticsInput.ParseError.notJSON) { try AnalyticsInput.acdEnd(Array("{nope".utf8)) }
    }

    /// Regression (issue 10): numbers from the wire are checked before conversion: an
    /// `eventTime` of 1e300 trapped in `Int64(_:)`, crashing the worker on every redelivery.
    @Test(arguments: ["1e300", "-1", "1e16", "-1e300"])
    func outOfRangeNumbersArePoisonNotATrap(eventTime: String) {
        let body = Array(
            #"{"detail":{"topicName":"v2.detail.events.conversation.c.acd.end","eventBody":{"queueId":"q","eventTime":\#(eventTime),"connectedDurationMs":5}}}"#
                .utf8
        )
        #expect(throws: AnalyticsInput.ParseError.self) { try AnalyticsInput.acdEnd(body) }
        let longWait = Array(
            #"{"eventBody":{"queueId":"q","eventTime":1700000000000,"connectedDurationMs":1e300}}"#.utf8
        )
        #expect(throws: AnalyticsInput.ParseError.self) { try AnalyticsInput.acdEnd(longWait) }
    }

    @Test func readsObservationsAndEnrichedRecords() throws {
        let obs = try AnalyticsInput.observations(
            TrafficGenerator.observationEnvelope(queue: "q-9", waiting: 4, interacting: 2, longestMs: 65_000)
        )
        #expect(obs.queueID == "q-9" && obs.mediaType == "voice" && obs.waiting == 4 && obs.interacting == 2)
        #expect(obs.longestWaitingSeconds == 65 && obs.timeMilliseconds > 0)

        let start = Date(timeIntervalSince1970: 1_700_000_000)
        let details = ConversationDetailsFactory.details(
            conversationID: "c-7",
            queueID: "q-7",
            agentID: nil,
            start: start,
            waitMilliseconds: 30_000,
            talkMilliseconds: 0,
            abandoned: true
        )
        let record = JSONValue.object(["conversationId": "c-7", "details": details]).jsonData
        let waits = try AnalyticsInput.enriched(Array(record))
        #expect(waits.count == 1)
        #expect(waits.first?.queueID == "q-7" && waits.first?.outcome == .abandoned)
        #expect(waits.first?.waitMilliseconds == 30_000)
    }

    /// PagerDuty answers 429 twice: the event is delivered once after honouring Retry-After;
    /// a refused (400) event is counted as a failure, not retried.
    @Test func pagerDutyRetriesThrottlingAndDeliversInOrder() async throws {
        let simulator = GenesysSimulator(configuration: SimulatorConfiguration(), logger: Logger(label: "sim"))
        try simulator.start()
        defer { Task { await simulator.stop() } }
        simulator.receiver.injectFaults(target: "pagerduty", count: 2, status: 429, retryAfter: "1")
        let registry = PrometheusCollectorRegistry()
        let metrics = AnalyticsMetrics(registry: registry)
        let notifier = PagerDutyNotifier(
            url: URL(string: simulator.baseURL + "/pagerduty/v2/enqueue")!,
            routingKey: "rk",
            source: "test",
            metrics: metrics,
            logger: Logger(label: "pd"),
            baseBackoffSeconds: 0.1
        )
        let trigger = AlertTransition(action: .trigger, rule: "slow", queueID: "q", mediaType: "voice", value: 130)
        var resolve = trigger
        resolve.action = .resolve
        let started = ContinuousClock.now
        await notifier.enqueue(
            .init(transition: trigger, severity: "critical", summary: "slow", details: ["p90": "130"])
        )
        await notifier.enqueue(.init(transition: resolve, severity: "critical", summary: "slow", details: [:]))
        while await notifier.pending > 0 && ContinuousClock.now - started < .seconds(120) {
            try await Task.sleep(for: .milliseconds(50))
        }
        let events = simulator.receiver.pagerDutyEvents
        #expect(events.map { $0["event_action"]?.stringValue } == ["trigger", "resolve"], "\(events)")
        #expect(Set(events.compactMap { $0["dedup_key"]?.stringValue }) == ["genesys-ingest/slow/q/voice"])
        let payload = try #require(events.first?["payload"])
        #expect(payload["custom_details"]?["p90"]?.stringValue == "130")
        #expect(simulator.receiver.refusedCount("pagerduty") == 2)
        #expect(ContinuousClock.now - started >= .seconds(2), "waited for Retry-After twice")

        let invalid = PagerDutyNotifier(
            url: URL(string: simulator.baseURL + "/pagerduty/v2/enqueue")!,
            routingKey: "",
            source: "test",
            metrics: metrics,
            logger: Logger(label: "pd")
        )
        await invalid.enqueue(.init(transition: trigger, severity: "critical", summary: "x", details: [:]))
        while await invalid.pending > 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(simulator.receiver.pagerDutyEvents.count == 2)
        #expect(metricValues(registry.text, "genesys_analytics_pagerduty_failures_total") == [1])
    }

    /// A TSDB that answers 503 keeps points buffered (nothing blocks); once it recovers they
    /// are written. Beyond the buffer's capacity the oldest points are dropped and counted.
    @Test func tsdbBuffersWhileDownAndDropsOnlyBeyondCapacity() async throws {
        let simulator = GenesysSimulator(configuration: SimulatorConfiguration(), logger: Logger(label: "sim"))
        try simulator.start()
        defer { Task { await simulator.stop() } }
        simulator.receiver.injectFaults(target: "tsdb", count: 2, status: 503)
        let registry = PrometheusCollectorRegistry()
        let exporter = TSDBExporter(
            url: URL(string: simulator.baseURL + "/tsdb/write")!,
            token: nil,
            capacity: 100,
            metrics: AnalyticsMetrics(registry: registry),
            logger: Logger(label: "tsdb"),
            batchSize: 40
        )
        let lines = (0..<150).map { "m,q=a v=\($0) \(1_700_000_000_000 + $0)" }
        await exporter.add(lines)
        #expect(await exporter.bufferedPoints == 100)
        #expect(metricValues(registry.text, "genesys_analytics_tsdb_points_dropped_total") == [50])
        let started = ContinuousClock.now
        while await exporter.bufferedPoints > 0 && ContinuousClock.now - started < .seconds(120) {
            await exporter.flush()
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(simulator.receiver.tsdbLines == Array(lines.suffix(100)), "the newest 100 points, in order")
        #expect(simulator.receiver.refusedCount("tsdb") == 2)
        #expect(metricValues(registry.text, "genesys_analytics_tsdb_points_written_total") == [100])
    }

    /// Waits committed through the store rebuild the same figures in a new engine (restart).
    @Test(arguments: StoreKind.available)
    func engineRebuildsItsWindowsFromCommittedWaits(kind: StoreKind) async throws {
        let store = try kind.make().store
        var configuration = AnalyticsConfiguration()
        configuration.aggregator.windowMinutes = [5, 15]
        func engine() -> AnalyticsEngine { makeEngine(configuration, store: store, output: nil) }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let first = engine()
        var effects: [SideEffect] = []
        for i in 0..<500 {
            let o = WaitObservation(
                queueID: "q-\(i % 3)",
                mediaType: "voice",
                eventTimeMilliseconds: now - Int64(i * 100),
                waitMilliseconds: Double((i * 7919) % 60_000),
                outcome: i % 10 == 0 ? .abandoned : .answered
            )
            effects.append(
                SideEffect(handler: AnalyticsEngine.handlerName, dedupKey: "analytics|k-\(i)", payload: o.encoded)
            )
        }
        let keys = effects.map(\.dedupKey)
        _ = try await store.claim(keys, owner: "w", nowMilliseconds: now, leaseMilliseconds: 60_000)
        let done = try await store.complete(
            keys,
            owner: "w",
            nowMilliseconds: now,
            retainMilliseconds: 3_600_000,
            sideEffects: effects
        )
        #expect(done.count == 500)
        await first.apply(effects)
        let second = engine()
        #expect(try await second.rebuild(nowMilliseconds: now) == 500)
        for q in 0..<3 {
            let a = await first.window(queueID: "q-\(q)", mediaType: "voice", minutes: 5, nowMilliseconds: now)
            let b = await second.window(queueID: "q-\(q)", mediaType: "voice", minutes: 5, nowMilliseconds: now)
            #expect(a != nil && a == b, "\(String(describing: a)) vs \(String(describing: b))")
        }
        await store.close()
    }
}

/// A closed interval's final summary is published once: a restarted engine that rebuilds the
/// same waits finds the interval already published (claimed in the store) and skips it.
@Suite("Queue wait analytics: final interval summaries", .serialized, .elasticThreads)
struct AnalyticsIntervalSummaryTests {
    @Test func closedIntervalIsPublishedOnceAcrossRestarts() async throws {
        let broker = try TansuBroker()
        try createTopic(broker, "genesys.queue.metrics", partitions: 1)
        let kafka = KafkaClientConfiguration(bootstrapServers: broker.bootstrap)
        let db = try TestStore(.sqlite)
        let store = try db.kind.make(sharing: db.location).store
        let output = try AcknowledgedProducer(configuration: kafka, logger: Logger(label: "out"))
        var configuration = AnalyticsConfiguration()
        configuration.publishMilliseconds = 3_600_000
        func engine() -> AnalyticsEngine { makeEngine(configuration, store: store, output: output) }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let start = now - now % 1_800_000 - 3_600_000  // an interval an hour ago
        var effects: [SideEffect] = []
        for i in 0..<40 {
            let o = WaitObservation(
                queueID: "q-1",
                mediaType: "voice",
                eventTimeMilliseconds: start + 60_000 + Int64(i) * 30_000,
                waitMilliseconds: Double(1000 * (i + 1)),
                outcome: i < 4 ? .abandoned : .answered
            )
            effects.append(
                SideEffect(handler: AnalyticsEngine.handlerName, dedupKey: "analytics|w-\(i)", payload: o.encoded)
            )
        }
        // A wait 33 minutes after the interval ended: the interval (30 min + 2 min lateness) is closed.
        let later = WaitObservation(
            queueID: "q-1",
            mediaType: "voice",
            eventTimeMilliseconds: start + 63 * 60_000,
            waitMilliseconds: 5000,
            outcome: .answered
        )
        effects.append(
            SideEffect(handler: AnalyticsEngine.handlerName, dedupKey: "analytics|later", payload: later.encoded)
        )
        let keys = effects.map(\.dedupKey)
        _ = try await store.claim(keys, owner: "w", nowMilliseconds: now, leaseMilliseconds: 60_000)
        _ = try await store.complete(
            keys,
            owner: "w",
            nowMilliseconds: now,
            retainMilliseconds: 3_600_000,
            sideEffects: effects
        )

        let first = engine()
        await first.apply(effects)
        await first.tick(nowMilliseconds: now)
        let restarted = engine()
        #expect(try await restarted.rebuild(nowMilliseconds: now) == 41)
        await restarted.tick(nowMilliseconds: now)

        let records = try await readWhenPresent(kafka, topic: "genesys.queue.metrics", expected: 1)
        let finals = records.compactMap { try? JSONSerialization.jsonObject(with: Data($0.value)) as? [String: Any] }
            .filter { $0["final"] as? Bool == true }
        #expect(finals.count == 1, "published once: \(finals)")
        let record = try #require(finals.first)
        #expect(record["offered"] as? Int == 40 && record["abandoned"] as? Int == 4 && record["answered"] as? Int == 36)
        #expect(record["queueId"] as? String == "q-1" && record["mediaType"] as? String == "voice")
        let interval = try #require(record["interval"] as? String)
        let iso = ISO8601DateFormatter()
        #expect(
            interval == iso.string(from: Date(timeIntervalSince1970: Double(start) / 1000)) + "/"
                + iso.string(from: Date(timeIntervalSince1970: Double(start + 1_800_000) / 1000))
        )
        let p90 = try #require((record["waitMs"] as? [String: Any])?["p90"] as? Int)
        #expect(abs(p90 - 36_000) <= 1_000, "p90 of 1…40 s is about 36 s: \(p90)")
        await store.close()
    }
}

/// An engine without PagerDuty or TSDB, with its own registry.
func makeEngine(
    _ configuration: AnalyticsConfiguration,
    store: any IdempotencyStore,
    output: AcknowledgedProducer?
) -> AnalyticsEngine {
    AnalyticsEngine(
        configuration: configuration,
        store: store,
        output: output,
        pagerDuty: nil,
        tsdb: nil,
        metrics: AnalyticsMetrics(registry: PrometheusCollectorRegistry()),
        workerID: "w",
        logger: Logger(label: "analytics")
    )
}

extension PrometheusCollectorRegistry {
    var text: String {
        var buffer: [UInt8] = []
        emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}

/// The analytics handler's committed waits (read through a second connection).
func committedWaits(_ store: TestStore) async throws -> [SideEffect] {
    let connection = try store.kind.make(sharing: store.location).store
    let effects = try await connection.sideEffects(handler: AnalyticsEngine.handlerName)
    await connection.close()
    return effects
}

/// Polls `condition` until it holds or `seconds` pass; returns whether it held.
func within(_ seconds: Double, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(250))
    }
    return try await condition()
}

@Suite(
    "Queue wait analytics end to end: generator, gateway, worker processes, simulator receivers",
    .serialized,
    .elasticThreads
)
struct AnalyticsEndToEndTests {
    /// Known injected waits come out as percentiles within the stated error on `/metrics` and in
    /// `genesys.queue.metrics`; a surge on one queue triggers exactly one PagerDuty trigger
    /// (delivered despite a 429) and, once it clears, exactly one resolve; points reach the
    /// TSDB stand-in after it recovers from 503s.
    @Test func generatorWaitsBecomePercentilesSummariesAndOneAlertPerSurge() async throws {
        let broker = try TansuBroker()
        try createTopic(broker, "genesys.raw.conversation", partitions: 3)
        try createTopic(broker, "genesys.raw.queue", partitions: 2)
        let kafka = KafkaClientConfiguration(bootstrapServers: broker.bootstrap)
        let simulator = GenesysSimulator(configuration: SimulatorConfiguration(), logger: Logger(label: "sim"))
        try simulator.start()
        simulator.receiver.injectFaults(target: "pagerduty", count: 1, status: 429, retryAfter: "1")
        simulator.receiver.injectFaults(target: "tsdb", count: 2, status: 503)
        let gateway = try ChildProcess(
            executable: BuiltProducts.path("ingest-gateway"),
            environment: [
                "INGEST_KAFKA_BROKERS": broker.bootstrap, "INGEST_HTTP_HOST": "127.0.0.1", "INGEST_HTTP_PORT": "0",
                "INGEST_SOURCE_GENESYS_SECRET": "analytics-test", "INGEST_CREATE_TOPICS": "false",
            ],
            logName: "gateway"
        )
        let gatewayPort = try #require(gateway.waitForOutput(#"http\.port=(\d+) \[IngestHTTP\]"#, timeout: 30))
        let worker = try WorkerProcess(
            brokers: broker.bootstrap,
            store: try TestStore(.sqlite),
            group: "analytics",
            environment: [
                "INGEST_WORKER_HANDLERS": "analytics",
                "INGEST_WORKER_TOPICS": "genesys.raw.conversation,genesys.raw.queue",
                "INGEST_ANALYTICS_WINDOWS": "1,5,15", "INGEST_ANALYTICS_PUBLISH_MS": "1000",
                "INGEST_ANALYTICS_EVALUATE_MS": "250",
                "INGEST_ANALYTICS_ALERTS":
                    "surge: p90_wait > 100 clear 50 hold 2 window 1 min-offered 5 severity critical",
                "INGEST_PAGERDUTY_URL": simulator.baseURL + "/pagerduty/v2/enqueue",
                "INGEST_PAGERDUTY_ROUTING_KEY": "test-routing-key",
                "INGEST_TSDB_URL": simulator.baseURL + "/tsdb/write", "INGEST_TSDB_FLUSH_MS": "500",
            ]
        )
        var options = TrafficGenerator.Options(
            gatewayURL: "http://127.0.0.1:\(gatewayPort)/events/genesys",
            secret: "analytics-test"
        )
        options.conversationsPerSecond = 100
        options.waitRange = 2_000...20_000
        let generator = TrafficGenerator(options: options, simulator: simulator, logger: Logger(label: "gen"))
        await generator.run(conversations: 200)
        #expect(generator.statistics.failed == 0, "\(generator.statistics) \(gateway.output.suffix(1500))")
        let injected = generator.injectedWaits
        #expect(injected.count == 200)

        // 1. /metrics: counts exact, percentiles within the stated error of the exact ones.
        func page() -> String { (try? worker.get("/metrics").bodyText) ?? "" }
        let counted = await within(60) {
            metricValues(page(), "genesys_queue_interactions", ["window": "15m", "outcome": "offered"])
                .reduce(0, +) == 200
        }
        #expect(counted, "all 200 waits counted: \(worker.child.output.suffix(1500))")
        let metrics = page()
        // Observations keep coming while it looks (Genesys sends them about once a second; the
        // run's first ones may have been read before the worker owned their queues).
        try await DashboardCoverage.expectExported(
            dashboard: "queues",
            prefixes: ["genesys_queue_", "genesys_analytics_"]
        ) {
            await generator.postObservationRound()
            return page()
        }
        for queue in options.queueIDs {
            let waits = injected.filter { $0.queueID == queue }.map { Double($0.waitMilliseconds) }
            let labels = ["queue": queue, "window": "15m"]
            #expect(
                metricValues(metrics, "genesys_queue_interactions", labels.merging(["outcome": "offered"]) { $1 })
                    == [Double(waits.count)]
            )
            #expect(
                metricValues(metrics, "genesys_queue_interactions", labels.merging(["outcome": "abandoned"]) { $1 })
                    == [Double(injected.filter { $0.queueID == queue && $0.abandoned }.count)]
            )
            for q in [0.5, 0.9, 0.95, 0.99] {
                let reported = try #require(
                    metricValues(metrics, "genesys_queue_wait_seconds", labels.merging(["quantile": "\(q)"]) { $1 })
                        .first
                )
                let r = rank(of: reported * 1000 + 0.5, in: waits)
                #expect(abs(r - q) <= 1 / Double(waits.count) + 0.02, "p\(q) of \(queue): rank \(r)")
            }
        }

        // 2. genesys.queue.metrics: running summaries per queue and interval, same figures.
        var latest: [String: [String: Any]] = [:]
        let summarized = await within(30) {
            let records = (try? KafkaConsumer.readAll(configuration: kafka, topics: ["genesys.queue.metrics"])) ?? []
            for r in records {
                guard let key = r.key.map({ String(decoding: $0, as: UTF8.self) }),
                    let object = try? JSONSerialization.jsonObject(with: Data(r.value)) as? [String: Any]
                else { continue }
                latest[key] = object
            }
            return latest.values.reduce(0) { $0 + ($1["offered"] as? Int ?? 0) } == 200
        }
        #expect(summarized, "summaries: \(latest)")
        for (_, record) in latest where latest.count == options.queueIDs.count {
            let queue = try #require(record["queueId"] as? String)
            let waits = injected.filter { $0.queueID == queue }.map { Double($0.waitMilliseconds) }
            let p90 = try #require((record["waitMs"] as? [String: Any])?["p90"] as? Int)
            #expect(abs(rank(of: Double(p90) + 0.5, in: waits) - 0.9) <= 1 / Double(waits.count) + 0.02)
            #expect(record["final"] as? Bool == false)
            #expect((record["interval"] as? String)?.contains("/") == true)
        }
        #expect(
            simulator.receiver.pagerDutyEvents.isEmpty,
            "no alert for normal waits: \(simulator.receiver.pagerDutyEvents)"
        )
        #expect(
            await within(20) { simulator.receiver.tsdbLines.contains { $0.hasPrefix("genesys_queue_wait,") } },
            "\(worker.child.output.suffix(1500))"
        )
        #expect(simulator.receiver.refusedCount("tsdb") == 2, "two 503s, then the buffered points went through")

        // 3. A surge on one queue: exactly one trigger, then (once the 1-minute window moves
        // past it) exactly one resolve, with the same dedup key.
        var surgeOptions = options
        surgeOptions.queueIDs = [options.queueIDs[0]]
        let surge = TrafficGenerator(options: surgeOptions, simulator: simulator, logger: Logger(label: "surge"))
        // Bursts until it fires: the 1-minute window holds only the current minute, so a single
        // burst that is counted after the minute turned is never seen by the rule. It has fired
        // once PagerDuty was tried (the first try is refused with a 429 and retried a second
        // later): bursting on until the retry lands could start a second surge in the next
        // minute, after the first one resolved.
        let triggered = await within(60) {
            await surge.run(conversations: 20, waitRange: 150_000...250_000)
            return simulator.receiver.refusedCount("pagerduty") > 0 || !simulator.receiver.pagerDutyEvents.isEmpty
        }
        #expect(triggered, "\(worker.child.output.suffix(2000))")
        let resolved = await within(100) { simulator.receiver.pagerDutyEvents.count >= 2 }
        #expect(resolved, "\(simulator.receiver.pagerDutyEvents) \(worker.child.output.suffix(2000))")
        try await Task.sleep(for: .seconds(2))
        let events = simulator.receiver.pagerDutyEvents
        #expect(events.map { $0["event_action"]?.stringValue } == ["trigger", "resolve"], "\(events)")
        let dedup = "genesys-ingest/surge/\(options.queueIDs[0])/voice"
        #expect(
            events.allSatisfy {
                $0["dedup_key"]?.stringValue == dedup && $0["routing_key"]?.stringValue == "test-routing-key"
            }
        )
        let payload = try #require(events.first?["payload"])
        #expect(payload["severity"]?.stringValue == "critical")
        let p90 = try #require(payload["custom_details"]?["p90WaitSeconds"]?.stringValue)
        #expect(Double(p90) ?? 0 > 100)
        #expect(simulator.receiver.refusedCount("pagerduty") == 1, "the 429 was retried")
        _ = gateway
        await simulator.stop()
    }

    /// SIGKILL mid-stream, restart: every wait is counted once — none lost, none twice —
    /// including 300 redelivered duplicates.
    /// Regression (issue 10): the worker stopped analytics (final evaluation and TSDB flush)
    /// while the consumer was still handling and committing events, so what it committed last
    /// was never exported. Now the consumer stops first (reverse start order): after a SIGTERM
    /// under load, the last point pushed to the TSDB counts exactly the committed waits.
    @Test func sigtermDuringLoadExportsExactlyWhatWasCommitted() async throws {
        let simulator = GenesysSimulator(configuration: SimulatorConfiguration(), logger: Logger(label: "sim"))
        try simulator.start()
        defer { Task { await simulator.stop() } }
        let broker = try TansuBroker()
        try createAnalyticsTopics(broker)
        let db = try TestStore(.sqlite)
        let total = 2000
        try await produce(
            broker,
            (0..<total).map { i in
                (
                    key: "c-\(i)",
                    value: acdEndEvent(
                        id: "e-\(i)",
                        conversation: "c-\(i)",
                        queue: "q-stop",
                        waitMilliseconds: 1000 + i
                    )
                )
            }
        )
        let worker = try WorkerProcess(
            brokers: broker.bootstrap,
            store: db,
            group: "analytics-stop",
            environment: [
                "INGEST_WORKER_HANDLERS": "record,analytics", "INGEST_RECORD_WORK_MS": "5",
                "INGEST_WORKER_CONCURRENCY": "4", "INGEST_WORKER_BATCH_SIZE": "50",
                "INGEST_ANALYTICS_WINDOWS": "60",
                // Only the final flush at shutdown writes (the periodic one is far away).
                "INGEST_TSDB_URL": simulator.baseURL + "/tsdb/write", "INGEST_TSDB_FLUSH_MS": "600000",
                "INGEST_ANALYTICS_EVALUATE_MS": "600000",
            ]
        )
        _ = try await within(60) { try await committedWaits(db).count >= 300 }
        worker.child.signal(SIGTERM)
        #expect(worker.child.waitForExit(timeout: 30) == 0, "graceful stop: \(worker.child.output.suffix(1500))")
        let committed = try await committedWaits(db).count
        #expect(committed > 0 && committed < total, "stopped mid-stream (\(committed) of \(total))")
        let points = simulator.receiver.tsdbLines.filter {
            $0.hasPrefix("genesys_queue_wait,") && $0.contains("queue=q-stop") && $0.contains("window=60m")
        }
        let last = try #require(points.last, "no TSDB point at shutdown: \(simulator.receiver.tsdbLines.suffix(3))")
        let offered = last.split(separator: " ")[1].split(separator: ",").first { $0.hasPrefix("offered=") }
        #expect(offered == "offered=\(committed)i", "\(last) vs \(committed) committed")
    }

    @Test(arguments: StoreKind.available)
    func sigkillMidStreamNeitherLosesNorDoubleCountsWaits(kind: StoreKind) async throws {
        let broker = try TansuBroker()
        try createAnalyticsTopics(broker)
        let db = try TestStore(kind)
        let total = 3000
        let queues = ["q-a", "q-b", "q-c"]
        var records = (0..<total).map { i in
            (
                key: "c-\(i)",
                value: acdEndEvent(
                    id: "e-\(i)",
                    conversation: "c-\(i)",
                    queue: queues[i % 3],
                    waitMilliseconds: (i * 37) % 90_000
                )
            )
        }
        records += records.prefix(300)
        try await produce(broker, records)
        let env = [
            "INGEST_WORKER_HANDLERS": "record,analytics", "INGEST_RECORD_WORK_MS": "10",
            "INGEST_WORKER_CONCURRENCY": "2", "INGEST_WORKER_BATCH_SIZE": "100", "INGEST_ANALYTICS_EVALUATE_MS": "200",
        ]
        let first = try WorkerProcess(brokers: broker.bootstrap, store: db, group: "analytics-kill", environment: env)
        _ = try await within(60) { try await committedWaits(db).count >= total / 5 }
        first.child.signal(SIGKILL)
        _ = first.child.waitForExit(timeout: 5)
        let before = try await committedWaits(db).count
        #expect(before > 0 && before < total, "killed mid-stream (\(before) of \(total) counted)")

        // Slow first worker (the kill lands mid-stream on a busy machine), fast second one.
        let second = try WorkerProcess(
            brokers: broker.bootstrap,
            store: db,
            group: "analytics-kill",
            environment: env.merging(["INGEST_RECORD_WORK_MS": "0", "INGEST_WORKER_CONCURRENCY": "8"]) { $1 }
        )
        func offered() -> [Double] {
            metricValues(
                (try? second.get("/metrics").bodyText) ?? "",
                "genesys_queue_interactions",
                ["window": "15m", "outcome": "offered"]
            )
        }
        let done = await within(90) { offered().reduce(0, +) >= Double(total) }
        #expect(done, "\(offered())")
        try await Task.sleep(for: .seconds(2))
        #expect(offered().sorted() == [1000, 1000, 1000], "each queue's waits counted exactly once")
        let waits = try await committedWaits(db)
        #expect(waits.count == total && Set(waits.map(\.dedupKey)).count == total)
        #expect(second.child.isRunning)
    }
}
