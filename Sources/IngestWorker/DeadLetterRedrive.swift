import IngestCore
import IngestKafka

/// How a dead letter goes back to where it came from — the one rule `ingestctl dlq replay` and
/// the console's redrive share: to the topic in its ``DeadLetterHeader/originTopic`` header,
/// with its key and value untouched, only the allowlisted headers, and
/// ``DeadLetterHeader/replayedFrom`` naming the dead letter. The workers' idempotency then
/// handles it as the original event (a replay of something already handled is a duplicate).
public enum DeadLetterRedrive {
    /// Headers a replayed record keeps: the product's own (what the gateway, bridge and
    /// workers wrote); `dlq-*` and anything unknown are dropped.
    public static let keptHeaders: Set<String> = [
        IngestHeader.contentType, IngestHeader.receivedAt, IngestHeader.source, IngestHeader.requestID,
        IngestHeader.keyID, IngestHeader.topicName, IngestHeader.eventID, IngestHeader.producedEventID,
        IngestHeader.reconciledGap,
    ]

    public struct Replay: Sendable {
        public var topic: String
        public var key: [UInt8]?
        public var value: [UInt8]
        public var headers: [KafkaHeader]
    }

    /// The record to publish for `deadLetter`, or nil when it names no origin topic.
    public static func replay(of deadLetter: KafkaRecord) -> Replay? {
        guard let origin = deadLetter.header(DeadLetterHeader.originTopic), !origin.isEmpty else { return nil }
        var headers = deadLetter.headers.filter { keptHeaders.contains($0.name) }
        headers.append(
            KafkaHeader(
                name: DeadLetterHeader.replayedFrom,
                string: "\(deadLetter.topic)/\(deadLetter.partition)@\(deadLetter.offset)"
            )
        )
        return Replay(topic: origin, key: deadLetter.key, value: deadLetter.value, headers: headers)
    }
}
