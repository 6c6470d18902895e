import Foundation
import GenesysAPI
import IngestCore
import IngestKafka
import IngestWorker
import Logging

/// Fills the bridge's gaps (`genesys.ingest.gaps`, ``GapRecord``) from the Genesys REST APIs,
/// publishing what was missed in the shape the existing handlers consume, marked with
/// ``IngestHeader/reconciledGap``.
///
/// - Queue observation topics (`v2.analytics.queues.{id}.observations`): one observations
///   query for the gap's queues; each queue's current state is published on the raw queue
///   topic as an observation notification (observations are state, not events: the current
///   value replaces what the gap hid).
/// - Other topics are not reconciled yet: counted and logged, the gap is acknowledged.
///
/// Deterministic output ids (`reconciled:<gap id>:<queue id>`): a gap handled twice (a crash
/// between publishing and committing) is recognised downstream as the same records.
public struct ReconcileHandler: EventHandler {
    public let name = "reconcile"
    let gapsTopic: String
    let rawQueueTopic: String
    let routing: RoutingAPI
    let output: AcknowledgedProducer
    let logger: Logger
    let notReconciled = LockedValue(0)

    public init(
        gapsTopic: String,
        rawQueueTopic: String,
        routing: RoutingAPI,
        output: AcknowledgedProducer,
        logger: Logger
    ) {
        self.gapsTopic = gapsTopic
        self.rawQueueTopic = rawQueueTopic
        self.routing = routing
        self.output = output
        self.logger = logger
    }

    public func accepts(_ event: WorkerEvent) -> Bool { event.record.topic == gapsTopic }

    public func handle(_ event: WorkerEvent) async throws(HandlerFailure) -> [SideEffect] {
        let gap: GapRecord
        do { gap = try JSONDecoder().decode(GapRecord.self, from: Data(event.body)) } catch {
            throw .poison("not a gap record: \(error)")
        }
        var queueIDs: [String] = []
        var skipped: [String] = []
        for topic in gap.topics {
            let route = EnvelopeInspector.route(topicName: topic)
            if topic.hasPrefix("v2.analytics.queues."), topic.hasSuffix(".observations"), let id = route.entityID {
                if !queueIDs.contains(id) { queueIDs.append(id) }
            } else {
                skipped.append(topic)
            }
        }
        if !skipped.isEmpty {
            notReconciled.withLock { $0 += skipped.count }
            logger.warning(
                "gap topics not reconciled (only queue observations are, so far)",
                metadata: ["reconcile.gap": "\(gap.eventID)", "reconcile.topics": "\(skipped.count)"]
            )
        }
        var published: [String] = []
        for batch in RoutingAPI.batches(queueIDs) {
            let results: [(queueID: String, group: [String: JSONValue], data: [JSONValue])]
            do { results = try await routing.observationResults(queueIDs: batch) } catch let error as GenesysAPIError {
                switch error {
                case .authentication: throw .fatal(error.description)
                case .client, .notFound: throw .poison(error.description)
                case .rateLimited, .unavailable: throw .retryable(error.description)
                }
            } catch {
                throw .retryable("\(error)")
            }
            let now = ISO8601DateFormatter().string(from: Date())
            for r in results {
                // The notification shape (QueueObservation.parse reads it): the REST result's
                // metrics under one data interval ending now.
                let message: JSONValue = .object([
                    "topicName": .string("v2.analytics.queues.\(r.queueID).observations"),
                    "version": .string("2"),
                    "timestamp": .string(now),
                    "eventBody": .object([
                        "group": .object(r.group),
                        "data": .array([.object(["interval": .string("\(now)/\(now)"), "metrics": .array(r.data)])]),
                    ]),
                ])
                do {
                    try await output.send(
                        topic: rawQueueTopic,
                        key: Array(r.queueID.utf8),
                        value: Array(message.jsonData),
                        headers: [
                            KafkaHeader(name: IngestHeader.contentType, string: "application/json"),
                            KafkaHeader(name: IngestHeader.source, string: "reconcile"),
                            KafkaHeader(
                                name: IngestHeader.topicName,
                                string: "v2.analytics.queues.\(r.queueID).observations"
                            ),
                            KafkaHeader(name: IngestHeader.reconciledGap, string: gap.eventID),
                            KafkaHeader(
                                name: IngestHeader.producedEventID,
                                string: "reconciled:\(gap.eventID):\(r.queueID)"
                            ),
                        ]
                    )
                } catch {
                    throw .retryable("publishing a reconciled observation failed: \(error.message)")
                }
                published.append(r.queueID)
            }
        }
        logger.info(
            "gap reconciled",
            metadata: [
                "reconcile.gap": "\(gap.eventID)", "reconcile.reason": "\(gap.reason)",
                "reconcile.queues": "\(published.count)", "reconcile.gap_ms": "\(gap.to - gap.from)",
            ]
        )
        return [
            SideEffect(handler: name, dedupKey: event.dedupKey, payload: "\(gap.eventID) queues=\(published.count)")
        ]
    }
}

/// Builds the reconcile feature of a worker (`INGEST_WORKER_HANDLERS=reconcile`): it consumes
/// the gaps topic (`INGEST_BRIDGE_GAPS_TOPIC`, default `genesys.ingest.gaps`) with the
/// process's one Genesys client.
public enum ReconciliationFeature {
    public static let variableNames =
        ["INGEST_BRIDGE_GAPS_TOPIC", "INGEST_TOPIC_PREFIX"] + GenesysClientConfiguration.variableNames

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
        let gapsTopic = env.string("INGEST_BRIDGE_GAPS_TOPIC", default: "genesys.ingest.gaps")
        let handler = ReconcileHandler(
            gapsTopic: gapsTopic,
            rawQueueTopic: TopicNaming(prefix: env.string("INGEST_TOPIC_PREFIX", default: "genesys.raw"))
                .topic(for: .queue),
            routing: RoutingAPI(client: client),
            output: context.producer,
            logger: context.logger
        )
        return WorkerFeature(handlers: [handler], topics: [gapsTopic])
    }
}
