import Foundation
import IngestCore
import IngestKafka
import IngestTesting
import Logging
import Testing

@testable import GenesysSimulator

/// The notification bridge as a real process: the simulator's notification service (REST and
/// WebSocket on our own HTTP server) → `ingest-bridge` → spool → a real broker.
@Suite("Notification bridge: WebSocket → Kafka, gaps recorded (real processes)", .serialized, .elasticThreads)
struct BridgeEndToEndTests {
    func records(_ broker: TansuBroker, _ topics: [String], expected: Int? = nil) throws -> [KafkaRecord] {
        try readRecords(broker, topics: topics, expected: expected)
    }

    func gaps(_ broker: TansuBroker) throws -> [[String: Any]] {
        try records(broker, ["genesys.ingest.gaps"]).compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.value)) as? [String: Any]
        }
    }

    @Test func messagesArriveAndEveryOutageIsAGapRecord() async throws {
        let rig = try BridgeRig(heartbeat: .milliseconds(300))
        let (broker, simulator, notifications) = (rig.broker, rig.simulator, rig.notifications)
        let httpPort = Network.freePort()
        let bridge = try rig.bridge(
            [
                "INGEST_BRIDGE_TOPICS": "v2.analytics.queues.{id}.observations,v2.forbidden.topic",
                "INGEST_BRIDGE_QUEUE_IDS": "q1,q2", "INGEST_BRIDGE_HEARTBEAT_TIMEOUT_MS": "1500",
                "INGEST_BRIDGE_PING_INTERVAL_MS": "500", "INGEST_TOPIC_PARTITIONS": "2",
                "INGEST_BRIDGE_HTTP_PORT": String(httpPort),
            ],
            logName: "bridge"
        )
        defer { bridge.killAndWait() }
        // Each (re)connection is a new channel: wait for one more than before, and connected.
        var channels = 0
        func connected() async throws -> Bool { try await rig.newConnection(after: &channels) }
        #expect(try await connected(), "the bridge connected: \(bridge.output.suffix(2000))")
        #expect(bridge.output.contains("topic rejected by Genesys"), "an unpermitted topic is reported")
        #expect(bridge.output.contains("not offered on WebSockets"), "a topic the org does not list is reported")
        #expect(Network.waitForPort(httpPort, timeout: 10))
        func get(_ path: String) throws -> RawHTTPResponse {
            let client = try RawHTTPClient(port: httpPort)
            try client.send(RawHTTPClient.request(method: "GET", path: path))
            return try client.readResponse()
        }
        // The simulator counts the socket as connected when it answers the upgrade; the bridge
        // counts it once its own side of the handshake returned, a moment later.
        #expect(
            try await eventually(seconds: 10) { try get("/readyz").status == 200 },
            "ready: the channel is connected"
        )
        func publish(_ range: Range<Int>) {
            for i in range {
                notifications.publish(
                    topicName: "v2.analytics.queues.q\(i % 2 + 1).observations",
                    eventBody: [
                        "n": .number(Double(i)),
                        "data": [["metric": "oWaiting", "stats": ["count": .number(Double(i))]]],
                    ]
                )
            }
        }
        publish(0..<50)
        // A dropped connection: reconnect, and a gap record for the time in between.
        try await Task.sleep(for: .milliseconds(500))
        notifications.dropConnections()
        #expect(try await connected(), "reconnected after a drop")
        try await Task.sleep(for: .milliseconds(300))
        publish(50..<70)
        // A silent socket (open, but nothing comes, pongs neither): the watchdog reconnects.
        try await Task.sleep(for: .milliseconds(300))
        notifications.muteConnections()
        #expect(
            try await eventually(seconds: 20) { bridge.output.contains("no heartbeat or message") },
            "the heartbeat watchdog fired: \(bridge.output.suffix(2000))"
        )
        #expect(try await connected())
        // Genesys announces a closing socket: reconnect at once.
        try await Task.sleep(for: .milliseconds(300))
        notifications.announceSocketClosing()
        #expect(try await eventually(seconds: 20) { bridge.output.contains("announced the socket's closing") })
        #expect(try await connected())
        try await Task.sleep(for: .milliseconds(300))
        publish(70..<80)

        let records = try records(broker, ["genesys.raw.queue"], expected: 80)
        let numbers = Set(
            records.compactMap {
                ((try? JSONSerialization.jsonObject(with: Data($0.value))) as? [String: Any]).flatMap {
                    ($0["eventBody"] as? [String: Any])?["n"] as? Int
                }
            }
        )
        #expect(numbers == Set(0..<80), "every message published while connected arrived: \(numbers.count) of 80")
        #expect(records.allSatisfy { r in r.headers.contains { $0.name == IngestHeader.producedEventID } })
        #expect(records.allSatisfy { r in r.key.map { String(decoding: $0, as: UTF8.self) }?.hasPrefix("q") == true })
        #expect(!records.contains { String(decoding: $0.value, as: UTF8.self).contains("WebSocket Heartbeat") })
        var reasons: [String] = []
        _ = try await eventually(seconds: 20) {
            reasons = try gaps(broker).compactMap { $0["reason"] as? String }
            return Set(reasons).isSuperset(of: ["startup", "connection-lost", "heartbeat-timeout", "socket-closing"])
        }
        #expect(
            Set(reasons).isSuperset(of: ["startup", "connection-lost", "heartbeat-timeout", "socket-closing"]),
            "a gap record per outage: \(reasons)"
        )
        let metrics = try get("/metrics").bodyText
        #expect(metrics.contains("ingest_bridge_channels_connected 1"), "\(metrics)")
        let gapsLine = metrics.split(separator: "\n").first { $0.hasPrefix("ingest_bridge_gaps_total ") }
        #expect(gapsLine.flatMap { Int($0.split(separator: " ")[1]) }.map { $0 >= 4 } == true, "\(metrics)")
        #expect(metrics.contains("ingest_bridge_rejected_topics 1"))
        try await DashboardCoverage.expectExported(dashboard: "bridge", prefixes: ["ingest_bridge_"]) {
            try get("/metrics").bodyText
        }
        #expect(metrics.contains("ingest_bridge_topic_permitted{topic=\"v2.forbidden.topic\"} 0"), "\(metrics)")
        #expect(metrics.contains("ingest_bridge_topic_permitted{topic=\"v2.analytics.queues.q1.observations\"} 1"))
        for gap in try gaps(broker) {
            let from = gap["from"] as? Int64 ?? 0
            let to = gap["to"] as? Int64 ?? 0
            #expect(from > 0 && to >= from, "a gap has an interval: \(gap)")
            #expect((gap["topics"] as? [String])?.contains("v2.analytics.queues.q1.observations") == true)
        }
        await simulator.stop()
    }
    /// Channels that expire every 3 s, rotated 1.5 s before: a steady stream across several
    /// rotations arrives whole and once (the overlap's repeats dropped), with no gap but the
    /// start-up one.
    @Test func rotationBeforeExpiryLosesNothingAndDuplicatesNothing() async throws {
        let rig = try BridgeRig(heartbeat: .milliseconds(200), channelLifetime: .seconds(3))
        let (broker, simulator, notifications) = (rig.broker, rig.simulator, rig.notifications)
        let bridge = try rig.bridge(
            [
                "INGEST_BRIDGE_TOPICS": "v2.routing.queues.{id}.conversations", "INGEST_BRIDGE_QUEUE_IDS": "q1,q2,q3",
                "INGEST_BRIDGE_ROTATE_BEFORE_EXPIRY_MS": "1500", "INGEST_BRIDGE_HEARTBEAT_TIMEOUT_MS": "2000",
                "INGEST_TOPIC_PARTITIONS": "2",
            ],
            logName: "bridge-rotation"
        )
        defer { bridge.killAndWait() }
        #expect(
            try await eventually(seconds: 20) { notifications.connectedCount >= 1 },
            "\(bridge.output.suffix(2000))"
        )
        var published = 0
        let end = ContinuousClock.now + .seconds(8)
        while ContinuousClock.now < end {
            for _ in 0..<5 {
                notifications.publish(
                    topicName: "v2.routing.queues.q\(published % 3 + 1).conversations",
                    eventBody: ["n": .number(Double(published))]
                )
                published += 1
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let rotations = bridge.output.components(separatedBy: "channel rotated before it expired").count - 1
        #expect(rotations >= 2, "channels were rotated: \(rotations); \(bridge.output.suffix(2000))")
        let records = try records(broker, ["genesys.raw.queue"], expected: published)
        let numbers = records.compactMap {
            ((try? JSONSerialization.jsonObject(with: Data($0.value))) as? [String: Any]).flatMap {
                ($0["eventBody"] as? [String: Any])?["n"] as? Int
            }
        }
        #expect(Set(numbers) == Set(0..<published), "nothing lost: \(Set(numbers).count) of \(published)")
        #expect(numbers.count == Set(numbers).count, "nothing twice: \(numbers.count - Set(numbers).count) repeats")
        let reasons = try gaps(broker).compactMap { $0["reason"] as? String }
        #expect(reasons == ["startup"], "a rotation is not a gap: \(reasons)")
        await simulator.stop()
    }
    /// kill -9 and a restart: the start-up gap begins when the killed bridge last received
    /// (kept in its spool directory), so the time it was down is on record; what it had
    /// spooled before the kill reaches Kafka.
    @Test func aRestartedBridgeReportsTheTimeItWasDown() async throws {
        let rig = try BridgeRig(heartbeat: .milliseconds(200))
        let (broker, simulator, notifications) = (rig.broker, rig.simulator, rig.notifications)
        let topics = ["INGEST_BRIDGE_TOPICS": "v2.users.{id}.presence", "INGEST_BRIDGE_USER_IDS": "u1"]
        var bridge = try rig.bridge(topics, logName: "bridge-restart")
        #expect(try await eventually(seconds: 20) { notifications.connectedCount == 1 })
        for i in 0..<10 {
            notifications.publish(topicName: "v2.users.u1.presence", eventBody: ["n": .number(Double(i))])
        }
        try await Task.sleep(for: .seconds(3))  // heard for a while: the mark is written
        let killedAt = Int64(Date().timeIntervalSince1970 * 1000)
        bridge.signal(SIGKILL)
        _ = bridge.waitForExit(timeout: 5)
        try await Task.sleep(for: .seconds(2))
        bridge = try rig.bridge(topics, logName: "bridge-restart")
        defer { bridge.killAndWait() }
        let restartedAt = Int64(Date().timeIntervalSince1970 * 1000)
        var startups: [[String: Any]] = []
        _ = try await eventually(seconds: 20) {
            startups = try gaps(broker).filter { $0["reason"] as? String == "startup" }
            return startups.count >= 2
        }
        let last = try #require(startups.last, "start-up gaps: \(startups)")
        let from = last["from"] as? Int64 ?? 0
        let to = last["to"] as? Int64 ?? 0
        #expect(from <= killedAt && from >= killedAt - 4000, "the gap starts when the bridge last received: \(last)")
        #expect(to >= restartedAt, "and ends once the new one is subscribed: \(last)")
        let users = try records(broker, ["genesys.raw.user"], expected: 10)
        #expect(users.count >= 10, "what was spooled before the kill reached Kafka: \(users.count)")
        await simulator.stop()
    }
    /// Kafka is down while notifications arrive (Genesys will not send them again): the
    /// bridge's spool keeps them, and they all reach the broker once it is back.
    @Test func aKafkaOutageLosesNothing() async throws {
        let rig = try BridgeRig(heartbeat: .milliseconds(300))
        let (broker, simulator, notifications) = (rig.broker, rig.simulator, rig.notifications)
        let bridge = try rig.bridge(
            ["INGEST_BRIDGE_TOPICS": "v2.analytics.queues.{id}.observations", "INGEST_BRIDGE_QUEUE_IDS": "q1,q2"],
            logName: "bridge-kafka-outage"
        )
        defer { bridge.killAndWait() }
        #expect(try await eventually(seconds: 20) { notifications.connectedCount == 1 })
        broker.stop()
        for i in 0..<40 {
            notifications.publish(
                topicName: "v2.analytics.queues.q\(i % 2 + 1).observations",
                eventBody: ["n": .number(Double(i))]
            )
        }
        try await Task.sleep(for: .seconds(3))
        try broker.start()
        // Tansu's memory storage comes back empty.
        _ = try KafkaAdmin(configuration: KafkaClientConfiguration(bootstrapServers: broker.bootstrap))
            .createTopics([.init(name: "genesys.raw.queue", partitions: 2)])
        for i in 40..<50 {
            notifications.publish(
                topicName: "v2.analytics.queues.q\(i % 2 + 1).observations",
                eventBody: ["n": .number(Double(i))]
            )
        }
        var numbers = Set<Int>()
        _ = try await eventually(seconds: 90) {
            numbers = Set(
                try records(broker, ["genesys.raw.queue"]).compactMap {
                    ((try? JSONSerialization.jsonObject(with: Data($0.value))) as? [String: Any]).flatMap {
                        ($0["eventBody"] as? [String: Any])?["n"] as? Int
                    }
                }
            )
            return numbers.count >= 50
        }
        #expect(numbers == Set(0..<50), "everything the socket delivered reached Kafka: \(numbers.count) of 50")
        await simulator.stop()
    }

    /// The real path for a gap: bridge → gap record → `ingest-worker` with the reconcile
    /// handler → the observations query → one observation per affected queue on the raw queue
    /// topic, marked as reconciled, in the shape the analytics and overflow handlers read; and
    /// the bulk presence read → the user's presence on the raw user topic.
    @Test func aGapIsReconciledFromTheObservationsQueryAndThePresenceRead() async throws {
        let rig = try BridgeRig(heartbeat: .milliseconds(300))
        let (broker, simulator) = (rig.broker, rig.simulator)
        simulator.setObservations(queueID: "q1", waiting: 7, interacting: 3, longestWaitingMilliseconds: 95_000)
        simulator.setObservations(queueID: "q2", waiting: 0, interacting: 1, longestWaitingMilliseconds: 0)
        simulator.setPresence(userID: "u1", systemPresence: "ON_QUEUE")
        let bridge = try rig.bridge(
            [
                "INGEST_BRIDGE_TOPICS": "v2.analytics.queues.{id}.observations,v2.users.{id}.presence",
                "INGEST_BRIDGE_QUEUE_IDS": "q1,q2", "INGEST_BRIDGE_USER_IDS": "u1",
            ],
            logName: "bridge-reconcile"
        )
        defer { bridge.killAndWait() }
        #expect(try await eventually(seconds: 20) { simulator.notifications.connectedCount == 1 })
        let worker = try WorkerProcess(
            brokers: broker.bootstrap,
            store: try TestStore(.sqlite),
            group: "reconcile-\(UUID().uuidString.prefix(6))",
            environment: rig.genesys.merging([
                "INGEST_WORKER_HANDLERS": "reconcile", "INGEST_WORKER_TOPICS": "genesys.ingest.gaps",
            ]) { a, _ in a }
        )
        defer { worker.child.killAndWait() }
        var reconciled: [KafkaRecord] = []
        _ = try await eventually(seconds: 60) {
            reconciled = try records(broker, ["genesys.raw.queue"]).filter { r in
                r.headers.contains { $0.name == IngestHeader.reconciledGap }
            }
            return reconciled.count >= 2
        }
        #expect(
            reconciled.count == 2,
            "one per queue of the start-up gap: \(reconciled.count); \(worker.child.output.suffix(1500))"
        )
        let observations = try reconciled.map { try QueueObservation.parse($0.value) }
        let q1 = try #require(observations.first { $0.queueID == "q1" })
        #expect(q1.waiting == 7 && q1.interacting == 3 && q1.longestWaitingSeconds == 95)
        #expect(observations.contains { $0.queueID == "q2" && $0.waiting == 0 })
        #expect(reconciled.allSatisfy { r in r.key.map { String(decoding: $0, as: UTF8.self) } != nil })
        // The presence topic: the user's current presence from the bulk read, on the raw user
        // topic.
        var presence: [KafkaRecord] = []
        _ = try await eventually(seconds: 20) {
            presence = try records(broker, ["genesys.raw.user"]).filter { r in
                r.headers.contains { $0.name == IngestHeader.reconciledGap }
            }
            return !presence.isEmpty
        }
        #expect(presence.count == 1, "one presence for u1: \(presence.count)")
        let p = try JSONValue.parse(Data(try #require(presence.first).value))
        #expect(p["topicName"]?.stringValue == "v2.users.u1.presence")
        #expect(p["eventBody"]?["presenceDefinition"]?["systemPresence"]?.stringValue == "ON_QUEUE")
        #expect(presence.first?.key.map { String(decoding: $0, as: UTF8.self) } == "u1")
        #expect(!worker.child.output.contains("gap topics not reconciled"), "every topic kind is reconciled")
        await simulator.stop()
    }
}

extension BridgeEndToEndTests {
    /// Generator → simulator WebSocket → bridge → Kafka → analytics worker, with a dropped
    /// connection mid-stream: the waits published while the socket was down are lost to the
    /// WebSocket (Genesys does not replay), the gap record sends the reconcile handler to the
    /// conversation details (per-conversation topics: the multi-get; queue conversation topics:
    /// the paged details query), and the analytics worker counts every wait exactly once —
    /// the lost ones recovered, the ones at the gap's edges (inside its margin, published
    /// twice) recognised by their composite identity.
    @Test func aDropMidStreamIsReconciledFromDetailsAndCountsStayExact() async throws {
        let rig = try BridgeRig(heartbeat: .milliseconds(300))
        let (broker, simulator, notifications) = (rig.broker, rig.simulator, rig.notifications)
        try createTopic(broker, "genesys.raw.conversation", partitions: 3)
        try createTopic(broker, "genesys.raw.queue", partitions: 2)
        let total = 60
        let ids = (0..<total).map { _ in UUID().uuidString.lowercased() }
        let queues = ["q-a", "q-b"]
        let topics =
            ids.flatMap {
                ["v2.detail.events.conversation.\($0).acd.end", "v2.detail.events.conversation.\($0).customer.end"]
            }
            + ["v2.routing.queues.{id}.conversations"]
        let bridge = try rig.bridge(
            [
                "INGEST_BRIDGE_TOPICS": topics.joined(separator: ","),
                "INGEST_BRIDGE_QUEUE_IDS": queues.joined(separator: ","),
            ],
            logName: "bridge-details"
        )
        defer { bridge.killAndWait() }
        var channels = 0
        func connected() async throws -> Bool { try await rig.newConnection(after: &channels) }
        #expect(try await connected(), "the bridge connected: \(bridge.output.suffix(2000))")
        let worker = try WorkerProcess(
            brokers: broker.bootstrap,
            store: try TestStore(.sqlite),
            group: "details-\(UUID().uuidString.prefix(6))",
            environment: rig.genesys.merging([
                "INGEST_WORKER_HANDLERS": "reconcile,analytics",
                "INGEST_WORKER_TOPICS": "genesys.ingest.gaps,genesys.raw.conversation,genesys.raw.queue",
                "INGEST_ANALYTICS_WINDOWS": "15", "INGEST_RECONCILE_SETTLE_MS": "500",
            ]) { a, _ in a }
        )
        defer { worker.child.killAndWait() }
        var options = TrafficGenerator.Options(gatewayURL: "", secret: "")
        options.postsToGateway = false
        options.notifiesDetailEvents = true
        options.conversationIDs = ids
        options.queueIDs = queues
        options.conversationsPerSecond = 100
        options.waitRange = 2_000...20_000
        let generator = TrafficGenerator(options: options, simulator: simulator, logger: Logger(label: "gen"))
        await generator.run(conversations: 20)
        #expect(generator.statistics.undeliveredWaits == 0, "the first third went out on the socket")
        // The connection drops; the bridge reconnects after its back-off (≥ 0.5 s), and what
        // is published meanwhile reaches no socket.
        notifications.dropConnections()
        await generator.run(conversations: 20)
        let lost = generator.statistics.undeliveredWaits
        #expect(lost > 0, "waits were published while no socket was connected")
        #expect(try await connected(), "reconnected after the drop")
        await generator.run(conversations: 20)

        func page() -> String { (try? worker.get("/metrics").bodyText) ?? "" }
        var offered: Double = 0
        let counted = await within(90) {
            offered = metricValues(page(), "genesys_queue_interactions", ["window": "15m", "outcome": "offered"])
                .reduce(0, +)
            return offered >= Double(total)
        }
        #expect(counted, "all \(total) waits counted (\(offered)); \(worker.child.output.suffix(2000))")
        // Nothing more arrives later: every wait once, none twice.
        try await Task.sleep(for: .seconds(3))
        let metrics = page()
        let injected = generator.injectedWaits
        for queue in queues {
            #expect(
                metricValues(
                    metrics,
                    "genesys_queue_interactions",
                    ["queue": queue, "window": "15m", "outcome": "offered"]
                )
                    == [Double(injected.filter { $0.queueID == queue }.count)],
                "offered in \(queue)"
            )
            #expect(
                metricValues(
                    metrics,
                    "genesys_queue_interactions",
                    ["queue": queue, "window": "15m", "outcome": "abandoned"]
                ) == [Double(injected.filter { $0.queueID == queue && $0.abandoned }.count)],
                "abandoned in \(queue)"
            )
        }
        let recovered = metricValues(metrics, "ingest_reconcile_records_total", ["family": "conversation"]).reduce(0, +)
        #expect(recovered >= Double(lost), "the lost waits were published from details: \(recovered) ≥ \(lost)")
        let reconciled = try records(broker, ["genesys.raw.conversation"]).filter { r in
            r.headers.contains { $0.name == IngestHeader.reconciledGap }
        }
        #expect(
            reconciled.allSatisfy { r in
                r.headers.contains { $0.name == IngestHeader.source && $0.value == Array("reconcile".utf8) }
            }
        )
        #expect(reconciled.count >= lost, "\(reconciled.count) reconciled records for \(lost) lost waits")
        #expect(!worker.child.output.contains("gap topics not reconciled"), "every subscribed topic kind is reconciled")
        await simulator.stop()
    }
}

/// A broker, the simulator (with its notification service) and the environment every bridge
/// of a test shares: Kafka, the simulator's Genesys API and credentials, its own spool
/// directory, an HTTP port picked by the system.
struct BridgeRig {
    let broker: TansuBroker
    let simulator: GenesysSimulator
    let genesys: [String: String]
    let base: [String: String]
    var notifications: NotificationService { simulator.notifications }

    init(heartbeat: Duration, channelLifetime: Duration? = nil) throws {
        broker = try TansuBroker()
        var config = SimulatorConfiguration()
        config.notifications.heartbeatInterval = heartbeat
        if let channelLifetime { config.notifications.channelLifetime = channelLifetime }
        simulator = GenesysSimulator(configuration: config, logger: Logger(label: "sim"))
        try simulator.start()
        genesys = [
            "INGEST_GENESYS_API_URL": simulator.baseURL, "INGEST_GENESYS_CLIENT_ID": config.clientID,
            "INGEST_GENESYS_CLIENT_SECRET": config.clientSecret,
        ]
        base = genesys.merging([
            "INGEST_KAFKA_BROKERS": broker.bootstrap, "INGEST_BRIDGE_HTTP_PORT": "0",
            "INGEST_SPOOL_DIR": NSTemporaryDirectory() + "bridge-spool-" + UUID().uuidString,
        ]) { a, _ in a }
    }

    /// Waits for a channel newer than the `channels` seen so far to be connected (each
    /// (re)connection is a new channel), then remembers the count.
    func newConnection(after channels: inout Int) async throws -> Bool {
        let seen = channels
        let ok = try await eventually(seconds: 20) {
            notifications.channelCount > seen && notifications.connectedCount == 1
        }
        channels = notifications.channelCount
        return ok
    }

    /// Starts `ingest-bridge` with the shared environment plus `extra`.
    func bridge(_ extra: [String: String], logName: String) throws -> ChildProcess {
        try ChildProcess(
            executable: BuiltProducts.path("ingest-bridge"),
            environment: base.merging(extra) { $1 },
            logName: logName
        )
    }
}
