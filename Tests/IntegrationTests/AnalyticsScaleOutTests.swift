import Foundation
import IngestCore
import IngestKafka
import IngestTesting
import Logging
import Testing

@testable import GenesysSimulator
@testable import IngestAnalytics

/// The raw topics analytics reads, with one partition count (the waits topic gets it too).
func createAnalyticsTopics(_ broker: TansuBroker, partitions: Int32 = 6) throws {
    try KafkaAdmin(configuration: KafkaClientConfiguration(bootstrapServers: broker.bootstrap))
        .createTopics(
            ["genesys.raw.conversation", "genesys.raw.queue", "genesys.queue.metrics"].map {
                .init(name: $0, partitions: $0 == "genesys.queue.metrics" ? 1 : partitions)
            }
        )
}

/// A known set of `acd.end` events over five queues (600/500/400/300/200 waits), with fixed
/// waits, outcomes and event times: the truth every scale must reproduce.
struct KnownWaits {
    struct Wait {
        var id: String
        var conversation: String
        var queue: String
        var waitMilliseconds: Int
        var outcome: String
        var eventTime: Int64
    }

    static let queues = ["Q1", "Q2", "Q3", "Q4", "Q5"].map { "queue-\($0.lowercased())-7d1e" }
    let waits: [Wait]

    /// An event time about a minute ago from which all the waits (20 s of them) fall into one
    /// 30-minute interval: each interval's percentiles are checked against all of a queue's
    /// waits, so a set split by an interval boundary (about 1 run in 90) cannot be compared.
    static func recentStart(now: Int64 = WallClock.nowMilliseconds()) -> Int64 {
        let start = now - 60_000
        let boundary = (start / 1_800_000 + 1) * 1_800_000
        return start + 25_000 < boundary ? start : boundary - 1_800_000 + 1_000
    }

    /// `start`: event time of the first wait; the rest follow 10 ms apart.
    init(start: Int64, seed: UInt64 = 42) {
        var random = SplitMix64(seed: seed)
        var out: [Wait] = []
        let shares = [600, 500, 400, 300, 200]
        var i = 0
        for (q, share) in shares.enumerated() {
            for _ in 0..<share {
                let scale = [30_000, 120_000, 240_000, 480_000, 60_000][q]
                let outcome = i % 7 == 0 ? "ABANDON" : (i % 13 == 0 ? "FLOW_OUT" : "ANSWERED")
                out.append(
                    Wait(
                        id: "known-\(i)",
                        conversation: "conv-\(i)",
                        queue: Self.queues[q],
                        waitMilliseconds: Int(random.next() % UInt64(scale)) + 500,
                        outcome: outcome,
                        eventTime: start + Int64(i) * 10
                    )
                )
                i += 1
            }
        }
        // Interleave the queues the way calls arrive.
        waits = out.sorted { ($0.eventTime % 997, $0.id) < ($1.eventTime % 997, $1.id) }
    }

    var records: [(key: String, value: [UInt8])] {
        waits.map { w in
            (
                key: w.conversation,
                value: acdEndEvent(
                    id: w.id,
                    conversation: w.conversation,
                    queue: w.queue,
                    waitMilliseconds: w.waitMilliseconds,
                    outcome: w.outcome,
                    eventTime: w.eventTime
                )
            )
        }
    }

    func count(_ queue: String, _ outcome: String? = nil) -> Int {
        waits.filter { $0.queue == queue && (outcome == nil || $0.outcome == outcome) }.count
    }

    func exactWaits(_ queue: String) -> [Double] {
        waits.filter { $0.queue == queue }.map { Double($0.waitMilliseconds) }
    }
}

/// The figures of one queue as its summaries report them.
struct QueueFigures: Equatable, CustomStringConvertible {
    var offered = 0
    var answered = 0
    var abandoned = 0
    var flowedOut = 0
    var percentiles: [String: Int] = [:]

    var description: String {
        "offered \(offered) answered \(answered) abandoned \(abandoned) flowedOut \(flowedOut) waitMs \(percentiles.sorted { $0.key < $1.key })"
    }
}

/// A group of analytics worker processes sharing one store.
final class AnalyticsCluster {
    let broker: TansuBroker
    let store: TestStore
    let group: String
    let environment: [String: String]
    var workers: [WorkerProcess] = []
    var kafka: KafkaClientConfiguration { KafkaClientConfiguration(bootstrapServers: broker.bootstrap) }

    init(broker: TansuBroker, store: TestStore, group: String, environment: [String: String] = [:]) {
        self.broker = broker
        self.store = store
        self.group = group
        self.environment = [
            "INGEST_WORKER_HANDLERS": "analytics",
            "INGEST_WORKER_TOPICS": "genesys.raw.conversation,genesys.raw.queue",
            "INGEST_ANALYTICS_PUBLISH_MS": "500", "INGEST_ANALYTICS_EVALUATE_MS": "250",
            "INGEST_ANALYTICS_WINDOWS": "1,5,15",
        ].merging(environment) { $1 }
    }

    @discardableResult
    func start(_ count: Int = 1) throws -> [WorkerProcess] {
        let started = try (0..<count).map { _ in
            try WorkerProcess(brokers: broker.bootstrap, store: store, group: group, environment: environment)
        }
        workers += started
        return started
    }

    /// Every summary record so far, in topic order.
    func summaries() -> [[String: Any]] {
        let records = (try? KafkaConsumer.readAll(configuration: kafka, topics: ["genesys.queue.metrics"])) ?? []
        return records.compactMap { try? JSONSerialization.jsonObject(with: Data($0.value)) as? [String: Any] }
    }

    /// The latest summary per queue, media and interval.
    func latest() -> [String: [String: Any]] {
        var out: [String: [String: Any]] = [:]
        for s in summaries() {
            guard let q = s["queueId"] as? String, let m = s["mediaType"] as? String, let i = s["interval"] as? String
            else { continue }
            out["\(q)|\(m)|\(i)"] = s
        }
        return out
    }

    /// Per queue: counts summed over its intervals' latest summaries; percentiles of its one
    /// interval (the known waits sit in one interval unless they straddle a boundary).
    func figures() -> [String: QueueFigures] {
        var out: [String: QueueFigures] = [:]
        for (key, s) in latest().sorted(by: { $0.key < $1.key }) {
            let queue = String(key.split(separator: "|")[0])
            var f = out[queue] ?? QueueFigures()
            f.offered += s["offered"] as? Int ?? 0
            f.answered += s["answered"] as? Int ?? 0
            f.abandoned += s["abandoned"] as? Int ?? 0
            f.flowedOut += s["flowedOut"] as? Int ?? 0
            for (name, v) in s["waitMs"] as? [String: Any] ?? [:] {
                if let v = v as? Int { f.percentiles["\(s["interval"] ?? "")|\(name)"] = v }
            }
            out[queue] = f
        }
        return out
    }

    /// Waits until every queue's summaries count what `truth` holds.
    func waitForFigures(_ truth: KnownWaits, timeout: Double = 120) async -> [String: QueueFigures] {
        var figures: [String: QueueFigures] = [:]
        _ = await within(timeout) {
            figures = self.figures()
            return KnownWaits.queues.allSatisfy { figures[$0]?.offered == truth.count($0) }
        }
        // A late duplicate would show up now.
        try? await Task.sleep(for: .seconds(2))
        return self.figures()
    }

    func stopAll() {
        for w in workers where w.child.isRunning { w.child.signal(SIGTERM) }
        for w in workers { _ = w.child.waitForExit(timeout: 30) }
        workers = []
    }

    var output: String { workers.map { String($0.child.output.suffix(1200)) }.joined(separator: "\n---\n") }
}

/// The store the scale-out tests share between instances: PostgreSQL when configured.
var sharedStoreKind: StoreKind { StoreKind.available.contains(.postgres) ? .postgres : .sqlite }

@Suite(
    "Queue analytics scaled out: per-queue ownership through partitioning (real processes)",
    .serialized,
    .elasticThreads
)
struct AnalyticsScaleOutTests {
    func checkAgainstTruth(_ figures: [String: QueueFigures], _ truth: KnownWaits, scale: Int) {
        for queue in KnownWaits.queues {
            let f = figures[queue] ?? QueueFigures()
            #expect(f.offered == truth.count(queue), "scale \(scale), \(queue): \(f)")
            #expect(f.answered == truth.count(queue, "ANSWERED"), "scale \(scale), \(queue)")
            #expect(f.abandoned == truth.count(queue, "ABANDON"), "scale \(scale), \(queue)")
            #expect(f.flowedOut == truth.count(queue, "FLOW_OUT"), "scale \(scale), \(queue)")
            let exact = truth.exactWaits(queue)
            for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)] {
                for (key, v) in f.percentiles where key.hasSuffix("|\(name)") {
                    let r = rank(of: Double(v) + 0.5, in: exact)
                    #expect(abs(r - q) <= 1 / Double(exact.count) + 0.02, "scale \(scale), \(queue) \(name): rank \(r)")
                }
            }
        }
    }

    /// The same known events through 1, 2 and 3 instances: counts exact at every scale, and the
    /// percentiles identical between scales (every wait of a queue reaches the one digest of
    /// the one instance that owns it), within the stated error of the exact ones.
    @Test func sameFiguresAtOneTwoAndThreeInstances() async throws {
        let truth = KnownWaits(start: KnownWaits.recentStart())
        var byScale: [Int: [String: QueueFigures]] = [:]
        for scale in 1...3 {
            let broker = try TansuBroker()
            try createAnalyticsTopics(broker)
            let cluster = AnalyticsCluster(
                broker: broker,
                store: try TestStore(sharedStoreKind),
                group: "scale-\(scale)"
            )
            try cluster.start(scale)
            try await produce(broker, truth.records)
            let figures = await cluster.waitForFigures(truth)
            checkAgainstTruth(figures, truth, scale: scale)
            if scale > 1 {
                // Each queue's series on exactly one instance's /metrics, and the queues spread
                // over every instance (their ids hash to partitions 0, 3, 4, 4 and 5 of 6).
                var owners = Set<Int>()
                for queue in KnownWaits.queues {
                    let exposing = cluster.workers.indices.filter {
                        !metricValues(
                            (try? cluster.workers[$0].get("/metrics").bodyText) ?? "",
                            "genesys_queue_interactions",
                            ["queue": queue, "window": "15m", "outcome": "offered"]
                        ).isEmpty
                    }
                    #expect(exposing.count == 1, "scale \(scale): \(queue) exposed by \(exposing.count) instances")
                    owners.formUnion(exposing)
                }
                #expect(owners.count == scale, "scale \(scale): queues owned by \(owners.count) instances")
            }
            byScale[scale] = figures
            if figures.count != KnownWaits.queues.count {
                Issue.record(Comment(rawValue: "scale \(scale): \(cluster.output)"))
            }
            cluster.stopAll()
        }
        #expect(byScale[1] == byScale[2], "1 vs 2 instances")
        #expect(byScale[1] == byScale[3], "1 vs 3 instances")
    }

    /// Three instances, one SIGKILLed mid-stream: its queues move to the survivors, the counts
    /// are exact at the end, and each closed interval has exactly one final summary with the
    /// full counts.
    @Test(arguments: StoreKind.available)
    func sigkillOfOneOfThreeMovesItsQueuesAndCountsStayExact(kind: StoreKind) async throws {
        let broker = try TansuBroker()
        try createAnalyticsTopics(broker)
        // Waits in an interval that ended an hour ago; closers after them close it.
        let now = WallClock.nowMilliseconds()
        let intervalStart = now - now % 1_800_000 - 3_600_000
        let truth = KnownWaits(start: intervalStart + 60_000)
        let cluster = AnalyticsCluster(
            broker: broker,
            store: try TestStore(kind),
            group: "kill",
            // A slow aggregation stage, so the kill lands mid-stream.
            environment: ["INGEST_WORKER_CONCURRENCY": "2", "INGEST_WORKER_BATCH_SIZE": "50"]
        )
        let workers = try cluster.start(3)
        try await produce(broker, truth.records)
        _ = await within(60) { cluster.figures().values.reduce(0) { $0 + $1.offered } >= 400 }
        workers[1].child.signal(SIGKILL)
        _ = workers[1].child.waitForExit(timeout: 5)
        let figures = await cluster.waitForFigures(truth, timeout: 150)
        for queue in KnownWaits.queues {
            #expect(figures[queue]?.offered == truth.count(queue), "\(queue): \(String(describing: figures[queue]))")
            #expect(figures[queue]?.abandoned == truth.count(queue, "ABANDON"))
        }
        // Close the interval: one wait per queue 33 minutes after it started.
        let closers = KnownWaits.queues.enumerated().map { i, queue in
            (
                key: "closer-\(i)",
                value: acdEndEvent(
                    id: "closer-\(i)",
                    conversation: "closer-\(i)",
                    queue: queue,
                    waitMilliseconds: 1000,
                    eventTime: intervalStart + 33 * 60_000
                )
            )
        }
        try await produce(broker, closers)
        var finals: [[String: Any]] = []
        _ = await within(60) {
            finals = cluster.summaries().filter { $0["final"] as? Bool == true }
            return finals.count >= KnownWaits.queues.count
        }
        try await Task.sleep(for: .seconds(3))
        finals = cluster.summaries().filter { $0["final"] as? Bool == true }
        #expect(finals.count == KnownWaits.queues.count, "one final summary per queue: \(finals.count)")
        for queue in KnownWaits.queues {
            let mine = finals.filter { $0["queueId"] as? String == queue }
            #expect(mine.count == 1, "\(queue): \(mine.count) final summaries")
            #expect(mine.first?["offered"] as? Int == truth.count(queue), "\(queue): full counts in the final")
        }
        if finals.count != KnownWaits.queues.count { Issue.record(Comment(rawValue: cluster.output)) }
        cluster.stopAll()
    }

    /// Events flow while the group grows from 1 to 3 instances and shrinks back to 1: no wait
    /// is lost or counted twice.
    @Test func scalingUpAndDownWhileEventsFlowLosesAndDoublesNothing() async throws {
        let broker = try TansuBroker()
        try createAnalyticsTopics(broker)
        let truth = KnownWaits(start: KnownWaits.recentStart(), seed: 7)
        let cluster = AnalyticsCluster(broker: broker, store: try TestStore(sharedStoreKind), group: "elastic")
        try cluster.start(1)
        let records = truth.records
        let chunks = stride(from: 0, to: records.count, by: 250).map {
            Array(records[$0..<min($0 + 250, records.count)])
        }
        for (i, chunk) in chunks.enumerated() {
            try await produce(broker, chunk)
            switch i {
            case 1: try cluster.start(2)
            case 4:
                // Back to one: the two newest leave gracefully.
                for w in cluster.workers.suffix(2) { w.child.signal(SIGTERM) }
            default: break
            }
            try await Task.sleep(for: .seconds(2))
        }
        let figures = await cluster.waitForFigures(truth, timeout: 150)
        checkAgainstTruth(figures, truth, scale: 0)
        if figures.count != KnownWaits.queues.count { Issue.record(Comment(rawValue: cluster.output)) }
        cluster.stopAll()
    }

    /// A surge on one queue with three instances: exactly one trigger and one resolve reach the
    /// PagerDuty stand-in, whichever instance owns the queue.
    @Test func oneSurgeGivesOneTriggerAndOneResolveAcrossThreeInstances() async throws {
        let simulator = GenesysSimulator(configuration: SimulatorConfiguration(), logger: Logger(label: "sim"))
        try simulator.start()
        defer { Task { await simulator.stop() } }
        let broker = try TansuBroker()
        try createAnalyticsTopics(broker)
        let cluster = AnalyticsCluster(
            broker: broker,
            store: try TestStore(sharedStoreKind),
            group: "surge",
            environment: [
                "INGEST_ANALYTICS_ALERTS": "surge: p90_wait > 100 clear 50 hold 2 window 1 min-offered 5",
                "INGEST_PAGERDUTY_URL": simulator.baseURL + "/pagerduty/v2/enqueue",
                "INGEST_PAGERDUTY_ROUTING_KEY": "surge-key",
            ]
        )
        try cluster.start(3)
        // Long waits, stamped with the time they are sent, every second until the alert fires:
        // the 1-minute window holds only the current minute, and the group may still be
        // settling, so one burst could land in a minute the window has already left.
        var sent = 0
        let triggered = await within(90) {
            if !simulator.receiver.pagerDutyEvents.isEmpty { return true }
            let now = WallClock.nowMilliseconds()
            let burst = (0..<10).map { i in
                (
                    key: "surge-\(sent + i)",
                    value: acdEndEvent(
                        id: "surge-\(sent + i)",
                        conversation: "surge-\(sent + i)",
                        queue: "queue-surge",
                        waitMilliseconds: 150_000 + (sent + i) * 1_000,
                        eventTime: now
                    )
                )
            }
            sent += burst.count
            try? await produce(broker, burst)
            try? await Task.sleep(for: .seconds(1))
            return !simulator.receiver.pagerDutyEvents.isEmpty
        }
        #expect(triggered, "\(cluster.output)")
        // The 1-minute window moves past the surge: resolved, once.
        let resolved = await within(120) { simulator.receiver.pagerDutyEvents.count >= 2 }
        #expect(resolved)
        try await Task.sleep(for: .seconds(3))
        let events = simulator.receiver.pagerDutyEvents
        #expect(events.map { $0["event_action"]?.stringValue } == ["trigger", "resolve"], "\(events)")
        #expect(events.allSatisfy { $0["dedup_key"]?.stringValue == "genesys-ingest/surge/queue-surge/voice" })
        cluster.stopAll()
    }

    /// The observation topic must match the waits topic's partition count: a worker refuses to
    /// start otherwise and says what to change.
    @Test func mismatchedPartitionCountsRefuseToStart() throws {
        let broker = try TansuBroker()
        try createAnalyticsTopics(broker, partitions: 3)
        try createTopic(broker, "genesys.queue.waits", partitions: 4)
        let worker = try ChildProcess(
            executable: BuiltProducts.path("ingest-worker"),
            environment: [
                "INGEST_KAFKA_BROKERS": broker.bootstrap, "INGEST_STORE_URL": "sqlite:" + temporaryDatabase(),
                "INGEST_WORKER_HANDLERS": "analytics", "INGEST_WORKER_HTTP_PORT": "0",
                "INGEST_WORKER_HTTP_HOST": "127.0.0.1",
            ],
            logName: "worker"
        )
        #expect(worker.waitForExit(timeout: 30) != 0)
        #expect(
            worker.output.contains("genesys.queue.waits has 4 partitions and genesys.raw.queue has 3"),
            "\(worker.output)"
        )
    }
}
