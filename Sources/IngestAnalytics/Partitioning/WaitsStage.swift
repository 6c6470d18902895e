import Foundation
import IngestCore
import IngestKafka
import IngestWorker

/// The first analytics stage (`analytics-waits`): reads `acd.end` events (or enriched
/// records), which arrive keyed by conversation, and re-keys each wait by queue onto the
/// waits topic. Nothing is counted here: the handler completes once every wait is
/// acknowledged by the broker, so a crash before that re-produces the same wait records.
public struct WaitsStageHandler: EventHandler {
    public static let handlerName = "analytics-waits"
    public let name = Self.handlerName
    let producer: AcknowledgedProducer
    let waitsTopic: String
    let source: AnalyticsConfiguration.Source
    let enrichedTopic: String

    public init(producer: AcknowledgedProducer, configuration: AnalyticsConfiguration) {
        self.producer = producer
        self.waitsTopic = configuration.waitsTopic
        self.source = configuration.source
        self.enrichedTopic = configuration.enrichedTopic
    }

    public func accepts(_ event: WorkerEvent) -> Bool {
        if source == .enriched { return event.record.topic == enrichedTopic }
        guard let topic = event.topicName else { return false }
        return topic.hasPrefix("v2.detail.events.conversation.") && topic.hasSuffix(".acd.end")
    }

    public func handle(_ event: WorkerEvent) async throws(HandlerFailure) -> [SideEffect] {
        let waits: [WaitObservation]
        do {
            waits =
                source == .enriched ? try AnalyticsInput.enriched(event.body) : [try AnalyticsInput.acdEnd(event.body)]
        } catch {
            throw .poison("analytics cannot read the event: \(error)")
        }
        for (i, wait) in waits.enumerated() {
            do {
                try await producer.send(
                    topic: waitsTopic,
                    key: Array(wait.queueID.utf8),
                    value: WaitRecord.value(wait),
                    headers: [
                        KafkaHeader(
                            name: IngestHeader.producedEventID,
                            string: WaitRecord.eventID(sourceKey: event.dedupKey, index: i)
                        ),
                        KafkaHeader(name: IngestHeader.contentType, string: "application/json"),
                    ]
                )
            } catch {
                throw .retryable("cannot write the wait to \(waitsTopic): \(error.message)")
            }
        }
        return []
    }
}
