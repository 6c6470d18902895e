import IngestCore
import IngestKafka
import Logging
import Synchronization

/// Why an event is dead-lettered.
public struct DeadLetterReason: Sendable {
    public var handler: String
    public var errorClass: String
    public var message: String
    public var attempts: Int
    public var firstFailureMilliseconds: Int64
    public var lastFailureMilliseconds: Int64
}

/// Produces records to `<topic>.dlq` (same key, value and headers, plus the `dlq-*` headers)
/// and waits for the broker's acknowledgement.
public final class DeadLetterWriter: Sendable {
    private let producer: AcknowledgedProducer
    private let groupID: String

    /// - Parameter producer: the process's shared producer (its owner closes it).
    public init(producer: AcknowledgedProducer, groupID: String) {
        self.producer = producer
        self.groupID = groupID
    }

    public static func topic(for origin: String) -> String { origin + ".dlq" }

    /// Publishes `record` to its dead-letter topic; returns once the broker acknowledged it.
    public func send(_ record: KafkaRecord, reason: DeadLetterReason) async throws(KafkaError) {
        var headers = record.headers.filter { !DeadLetterHeader.all.contains($0.name) }
        headers += [
            KafkaHeader(name: DeadLetterHeader.originTopic, string: record.topic),
            KafkaHeader(name: DeadLetterHeader.originPartition, string: String(record.partition)),
            KafkaHeader(name: DeadLetterHeader.originOffset, string: String(record.offset)),
            KafkaHeader(name: DeadLetterHeader.originTimestamp, string: String(record.timestamp)),
            KafkaHeader(name: DeadLetterHeader.consumerGroup, string: groupID),
            KafkaHeader(name: DeadLetterHeader.handler, string: reason.handler),
            KafkaHeader(name: DeadLetterHeader.attempts, string: String(reason.attempts)),
            KafkaHeader(name: DeadLetterHeader.errorClass, string: reason.errorClass),
            KafkaHeader(name: DeadLetterHeader.errorMessage, string: String(reason.message.prefix(1000))),
            KafkaHeader(name: DeadLetterHeader.firstFailureAt, string: String(reason.firstFailureMilliseconds)),
            KafkaHeader(name: DeadLetterHeader.lastFailureAt, string: String(reason.lastFailureMilliseconds)),
        ]
        try await producer.send(
            topic: Self.topic(for: record.topic),
            key: record.key,
            value: record.value,
            headers: headers
        )
    }

}
