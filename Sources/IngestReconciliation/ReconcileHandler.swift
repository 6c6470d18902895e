import Foundation
import GenesysAPI
import IngestCore
import IngestKafka
import IngestWorker
import Logging
import Prometheus

/// Fills the bridge's gaps (`genesys.ingest.gaps`, ``GapRecord``) from the Genesys REST APIs,
/// publishing what was missed in the shape the existing handlers consume, marked with
/// ``IngestHeader/reconciledGap`` and `source=reconcile`.
///
/// - Queue observation topics (`v2.analytics.queues.{id}.observations`): one observations
///   query for the gap's queues; each queue's current state is published on the raw queue
///   topic as an observation notification (observations are state, not events: the current
///   value replaces what the gap hid).
/// - Conversation detail topics (`v2.detail.events.conversation.{id}.{type}`, subscribed per
///   conversation): the conversations' details (`GET …/details?id=`, 100 at a time);
///   queue conversation topics (`v2.routing.queues.{id}.conversations…`): the details query
///   over the gap, filtered by queue and paged. From the details, the `acd.end` and
///   `customer.end` events that fell in the gap (``MissedDetailEvents``) are published on the
///   raw conversation topic with the identity the live events had, so the worker's
///   idempotency drops the ones that did arrive. The query waits until the gap ended
///   ``Settings/settle`` ago (Genesys: an interval still receiving data changes while read).
/// - User presence topics (`v2.users.{id}.presence`): the users' current Genesys Cloud
///   presence (`GET /api/v2/users/presences/purecloud/bulk`, 50 at a time), each published on
///   the raw user topic as a presence notification — state, like observations.
/// - Other topics are not reconciled: counted and logged, the gap is acknowledged.
///
/// Handling a gap twice (a crash between publishing and committing) publishes the same records
/// with the same ids (`reconciled:<gap id>:<queue id>`, the detail events' composite ids),
/// recognised downstream as redeliveries.
public struct ReconcileHandler: EventHandler {
    public struct Settings: Sendable {
        /// Added on both sides of a gap (clock skew between Genesys and the bridge, events at
        /// the edges): what arrived in the margin is recognised and not counted twice.
        public var margin: Duration = .seconds(5)
        /// How long after a gap's end its conversations are read (Genesys: avoid intervals
        /// ending at "now"; details are eventually consistent).
        public var settle: Duration = .seconds(60)
        /// How far before a gap the details query looks for conversations that started
        /// earlier and left a queue during the gap.
        public var lookback: Duration = .seconds(3600)

        public init() {}
    }

    public let name = "reconcile"
    let gapsTopic: String
    let naming: TopicNaming
    let routing: RoutingAPI
    let genesys: GenesysClient
    let output: AcknowledgedProducer
    let settings: Settings
    let metrics: ReconcileMetrics
    let logger: Logger

    public init(
        gapsTopic: String,
        naming: TopicNaming,
        genesys: GenesysClient,
        output: AcknowledgedProducer,
        settings: Settings = Settings(),
        metrics: ReconcileMetrics,
        logger: Logger
    ) {
        self.gapsTopic = gapsTopic
        self.naming = naming
        self.routing = RoutingAPI(client: genesys)
        self.genesys = genesys
        self.output = output
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
    }

    public func accepts(_ event: WorkerEvent) -> Bool { event.record.topic == gapsTopic }

    /// What a gap's topics ask to be re-read.
    struct Plan: Equatable {
        var observedQueues: [String] = []
        /// Per-conversation detail topics: conversation id → the event types subscribed.
        var conversations: [String: Set<String>] = [:]
        /// Queue conversation topics: the queues whose conversations are re-read.
        var conversationQueues: [String] = []
        var presenceUsers: [String] = []
        var skipped: [String] = []

        init(topics: [String]) {
            for topic in topics {
                let route = EnvelopeInspector.route(topicName: topic)
                if topic.hasPrefix("v2.analytics.queues."), topic.hasSuffix(".observations"), let id = route.entityID {
                    if !observedQueues.contains(id) { observedQueues.append(id) }
                } else if topic.hasPrefix("v2.detail.events.conversation."), let id = route.entityID,
                    case let type = DedupKey.topicType(topic, after: id), type != topic
                {
                    if MissedDetailEvents.types.contains(type) {
                        conversations[id, default: []].insert(type)
                    } else if conversations[id] == nil {
                        // Subscribed, but not an event type rebuilt from details.
                        skipped.append(topic)
                    }
                } else if topic.hasPrefix("v2.routing.queues."), topic.contains(".conversations"),
                    let id = route.entityID
                {
                    if !conversationQueues.contains(id) { conversationQueues.append(id) }
                } else if topic.hasPrefix("v2.users."), let id = route.entityID, topic == "v2.users.\(id).presence" {
                    if !presenceUsers.contains(id) { presenceUsers.append(id) }
                } else {
                    skipped.append(topic)
                }
            }
        }
    }

    public func handle(_ event: WorkerEvent) async throws(HandlerFailure) -> [SideEffect] {
        let gap: GapRecord
        do { gap = try JSONDecoder().decode(GapRecord.self, from: Data(event.body)) } catch {
            throw .poison("not a gap record: \(error)")
        }
        guard gap.from <= gap.to else { throw .poison("gap \(gap.eventID) ends before it starts") }
        let plan = Plan(topics: gap.topics)
        if !plan.skipped.isEmpty {
            metrics.unreconciledTopics.increment(by: Int64(plan.skipped.count))
            logger.warning(
                "gap topics not reconciled (queue observations, conversation details and user presence are)",
                metadata: ["reconcile.gap": "\(gap.eventID)", "reconcile.topics": "\(plan.skipped.count)"]
            )
        }
        let queues = try await reconcileObservations(plan.observedQueues, gap: gap)
        let users = try await reconcilePresence(plan.presenceUsers, gap: gap)
        let details = try await reconcileDetails(plan, gap: gap)
        metrics.gaps.increment()
        metrics.gapMilliseconds.increment(by: gap.to - gap.from)
        logger.info(
            "gap reconciled",
            metadata: [
                "reconcile.gap": "\(gap.eventID)", "reconcile.reason": "\(gap.reason)",
                "reconcile.queues": "\(queues)", "reconcile.users": "\(users)",
                "reconcile.detail_events": "\(details)",
                "reconcile.gap_ms": "\(gap.to - gap.from)",
            ]
        )
        return [
            SideEffect(
                handler: name,
                dedupKey: event.dedupKey,
                payload: "\(gap.eventID) queues=\(queues) users=\(users) details=\(details)"
            )
        ]
    }

    /// A Genesys failure as the runtime's outcome.
    static func failure(_ error: any Error, _ what: String) -> HandlerFailure {
        guard let error = error as? GenesysAPIError else { return .retryable("\(what): \(error)") }
        switch error {
        case .authentication: return .fatal(error.description)
        case .client, .notFound: return .poison(error.description)
        case .rateLimited, .unavailable: return .retryable(error.description)
        }
    }

    private func reconcileObservations(_ queueIDs: [String], gap: GapRecord) async throws(HandlerFailure) -> Int {
        var published = 0
        for batch in RoutingAPI.batches(queueIDs) {
            let results: [(queueID: String, group: [String: JSONValue], data: [JSONValue])]
            do { results = try await routing.observationResults(queueIDs: batch) } catch {
                throw Self.failure(error, "the observations query")
            }
            let now = EventFields.isoString(milliseconds: WallClock.nowMilliseconds())
            for r in results {
                // The notification shape (QueueObservation.parse reads it): the REST result's
                // metrics under one data interval ending now.
                let topic = "v2.analytics.queues.\(r.queueID).observations"
                let message: JSONValue = .object([
                    "topicName": .string(topic),
                    "version": .string("2"),
                    "timestamp": .string(now),
                    "eventBody": .object([
                        "group": .object(r.group),
                        "data": .array([.object(["interval": .string("\(now)/\(now)"), "metrics": .array(r.data)])]),
                    ]),
                ])
                try await publish(
                    message,
                    topic: naming.topic(for: .queue),
                    key: r.queueID,
                    topicName: topic,
                    eventID: "reconciled:\(gap.eventID):\(r.queueID)",
                    gap: gap
                )
                published += 1
            }
        }
        metrics.recovered(family: .queue, published)
        return published
    }

    private func reconcilePresence(_ userIDs: [String], gap: GapRecord) async throws(HandlerFailure) -> Int {
        var published = 0
        for start in stride(from: 0, to: userIDs.count, by: 50) {
            let batch = Array(userIDs[start..<min(userIDs.count, start + 50)])
            let presences: [JSONValue]
            do { presences = try await genesys.userPresences(ids: batch) } catch {
                throw Self.failure(error, "the bulk presence read")
            }
            for p in presences {
                guard let user = p["userId"]?.stringValue, batch.contains(user) else { continue }
                // The notification shape of `v2.users.{id}.presence`: the presence itself.
                var body: [String: JSONValue] = [:]
                for field in ["source", "presenceDefinition", "message", "modifiedDate"] {
                    if let v = p[field] { body[field] = v }
                }
                let topic = "v2.users.\(user).presence"
                try await publish(
                    ["topicName": .string(topic), "version": "2", "eventBody": .object(body)],
                    topic: naming.topic(for: .user),
                    key: user,
                    topicName: topic,
                    eventID: "reconciled:\(gap.eventID):\(user)",
                    gap: gap
                )
                published += 1
            }
        }
        metrics.recovered(family: .user, published)
        return published
    }

    private func reconcileDetails(_ plan: Plan, gap: GapRecord) async throws(HandlerFailure) -> Int {
        guard !plan.conversations.isEmpty || !plan.conversationQueues.isEmpty else { return 0 }
        let margin = settings.margin.milliseconds
        let window = (gap.from - margin)...(gap.to + margin)
        // Read once the gap is `settle` in the past: details of just-ended conversations are
        // incomplete, and an interval ending at "now" still changes.
        let wait = window.upperBound + settings.settle.milliseconds - WallClock.nowMilliseconds()
        if wait > 0 {
            do { try await Task.sleep(for: .milliseconds(wait)) } catch {
                throw .retryable("stopped while waiting for the gap's details to settle")
            }
        }
        var events: [MissedDetailEvents.Event] = []
        let ids = plan.conversations.keys.sorted()
        for batch in RoutingAPI.batches(ids) {
            let found: [JSONValue]
            do { found = try await genesys.conversationDetails(ids: batch) } catch {
                throw Self.failure(error, "the conversation details")
            }
            for details in found {
                guard let id = details["conversationId"]?.stringValue, let types = plan.conversations[id] else {
                    continue
                }
                events += MissedDetailEvents.events(in: details, window: window, types: types)
            }
        }
        if !plan.conversationQueues.isEmpty {
            let found: [JSONValue]
            do {
                found = try await genesys.conversationDetailsQuery(
                    from: window.lowerBound - settings.lookback.milliseconds,
                    to: window.upperBound + 1,
                    queueIDs: plan.conversationQueues
                )
            } catch {
                throw Self.failure(error, "the conversation details query")
            }
            let queues = Set(plan.conversationQueues)
            for details in found {
                events += MissedDetailEvents.events(in: details, window: window, queues: queues)
            }
        }
        var published: Set<String> = []
        for e in events {
            let body = Array(e.message.jsonData)
            // The identity the worker gives the live event (the bridge sends it as its event id).
            guard let identity = try? DedupKey.derive(from: body, digest: { _ in "" }).key,
                identity.hasPrefix("conv:"), published.insert(identity).inserted
            else { continue }
            try await publish(
                e.message,
                bytes: body,
                topic: naming.topic(for: .conversation),
                key: e.conversationID,
                topicName: e.topicName,
                eventID: identity,
                gap: gap
            )
        }
        metrics.recovered(family: .conversation, published.count)
        return published.count
    }

    private func publish(
        _ message: JSONValue,
        bytes: [UInt8]? = nil,
        topic: String,
        key: String,
        topicName: String,
        eventID: String,
        gap: GapRecord
    ) async throws(HandlerFailure) {
        do {
            try await output.send(
                topic: topic,
                key: Array(key.utf8),
                value: bytes ?? Array(message.jsonData),
                headers: [
                    KafkaHeader(name: IngestHeader.contentType, string: "application/json"),
                    KafkaHeader(name: IngestHeader.source, string: "reconcile"),
                    KafkaHeader(name: IngestHeader.topicName, string: topicName),
                    KafkaHeader(name: IngestHeader.reconciledGap, string: gap.eventID),
                    KafkaHeader(name: IngestHeader.producedEventID, string: eventID),
                ]
            )
        } catch {
            throw .retryable("publishing a reconciled record failed: \(error.message)")
        }
    }
}

/// The reconcile handler's series on the worker's `/metrics`.
public struct ReconcileMetrics: Sendable {
    let gaps: Counter
    let gapMilliseconds: Counter
    let unreconciledTopics: Counter
    private let recoveredByFamily: [TopicFamily: Counter]

    public init(registry: PrometheusCollectorRegistry) {
        func counter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Counter {
            registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: name, unitName: "total", helpText: help),
                labels: labels
            )
        }
        gaps = counter("ingest_reconcile_gaps", "Gap records reconciled.")
        gapMilliseconds = counter("ingest_reconcile_gap_milliseconds", "Length of the gaps reconciled.")
        unreconciledTopics = counter(
            "ingest_reconcile_unreconciled_topics",
            "Gap topics of a kind not reconciled (their events stay lost)."
        )
        recoveredByFamily = Dictionary(
            uniqueKeysWithValues: [TopicFamily.conversation, .queue, .user].map {
                (
                    $0,
                    counter(
                        "ingest_reconcile_records",
                        "Records published from the REST APIs for gaps (conversation: detail events; queue: observations; user: presence).",
                        [("family", $0.rawValue)]
                    )
                )
            }
        )
    }

    func recovered(family: TopicFamily, _ count: Int) {
        if count > 0 { recoveredByFamily[family]?.increment(by: Int64(count)) }
    }
}

extension Duration {
    /// Whole milliseconds (rounded down).
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// Builds the reconcile feature of a worker (`INGEST_WORKER_HANDLERS=reconcile`): it consumes
/// the gaps topic (`INGEST_BRIDGE_GAPS_TOPIC`, default `genesys.ingest.gaps`) with the
/// process's one Genesys client.
public enum ReconciliationFeature {
    public static let variableNames =
        [
            "INGEST_BRIDGE_GAPS_TOPIC", "INGEST_TOPIC_PREFIX", "INGEST_RECONCILE_MARGIN_MS",
            "INGEST_RECONCILE_SETTLE_MS", "INGEST_RECONCILE_LOOKBACK_MS",
        ] + GenesysClientConfiguration.variableNames

    public static func make(_ context: WorkerFeatureContext) throws -> WorkerFeature {
        let env = context.environment
        let (clientConfig, limit, period) = try GenesysClientConfiguration.from(
            environment: env,
            purpose: "the reconcile handler"
        )
        let client = GenesysClient.shared(
            clientConfig,
            limit: limit,
            periodSeconds: period,
            budgetStore: context.store as? any RateBudgetStore,
            logger: context.logger
        )
        var settings = ReconcileHandler.Settings()
        settings.margin = .milliseconds(try env.int("INGEST_RECONCILE_MARGIN_MS", default: 5_000, range: 0...3_600_000))
        settings.settle = .milliseconds(
            try env.int("INGEST_RECONCILE_SETTLE_MS", default: 60_000, range: 0...3_600_000)
        )
        settings.lookback = .milliseconds(
            try env.int("INGEST_RECONCILE_LOOKBACK_MS", default: 3_600_000, range: 0...(7 * 86_400_000))
        )
        let gapsTopic = env.string("INGEST_BRIDGE_GAPS_TOPIC", default: "genesys.ingest.gaps")
        let handler = ReconcileHandler(
            gapsTopic: gapsTopic,
            naming: TopicNaming(prefix: env.string("INGEST_TOPIC_PREFIX", default: "genesys.raw")),
            genesys: client,
            output: context.producer,
            settings: settings,
            metrics: ReconcileMetrics(registry: context.registry),
            logger: context.logger
        )
        return WorkerFeature(handlers: [handler], topics: [gapsTopic])
    }
}
