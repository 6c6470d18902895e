import IngestCore
import IngestKafka
import Logging
import Synchronization

/// Header names on dead-letter records (the original headers are kept too).
public enum DeadLetterHeader {
    public static let originTopic = "dlq-origin-topic"
    public static let originPartition = "dlq-origin-partition"
    public static let originOffset = "dlq-origin-offset"
    public static let originTimestamp = "dlq-origin-timestamp"
    public static let consumerGroup = "dlq-consumer-group"
    public static let handler = "dlq-handler"
    public static let attempts = "dlq-attempts"
    public static let errorClass = "dlq-error-class"
    public static let errorMessage = "dlq-error-message"
    public static let firstFailureAt = "dlq-first-failure-at"
    public static let lastFailureAt = "dlq-last-failure-at"
    /// Set by `ingestctl dlq replay` on records it re-publishes to the origin topic.
    public static let replayedFrom = "dlq-replayed-from"

    public static let all: Set<String> = [
        originTopic, originPartition, originOffset, originTimestamp, consumerGroup, handler, attempts, errorClass,
        errorMessage, firstFailureAt, lastFailureAt,
    ]
}

/// Why an event is dead-lettered.
public struct DeadLetterReason: Sendable {
    public var handler: String
    public var errorClass: String
    public var message: String
    public var attempts: Int
    public var firstFailureMilliseconds: Int64
    public var lastFailureMilliseconds: Int64
}

/// A producer whose `send` returns once the broker acknowledged the record.
public final class AcknowledgedProducer: Sendable {
    private let producer: KafkaProducer

    /// Continuations waiting for their record's acknowledgement, by token.
    private final class Waiting: Sendable {
        let byToken = LockedValue<[UInt64: CheckedContinuation<KafkaError?, Never>]>([:])
    }

    private let waiting = Waiting()
    private let nextToken = Atomic<UInt64>(1)

    public init(configuration: KafkaClientConfiguration, logger: Logger) throws(KafkaError) {
        let waiting = self.waiting
        self.producer = try KafkaProducer(
            configuration: configuration,
            logger: logger,
            onDeliveryReports: { reports in
                for r in reports {
                    let c = waiting.byToken.withLock { $0.removeValue(forKey: r.token) }
                    c?.resume(returning: r.error)
                }
            }
        )
    }

    /// Produces one record and waits for the broker's acknowledgement.
    public func send(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader]) async throws(KafkaError) {
        let token = nextToken.add(1, ordering: .relaxed).newValue
        let producer = self.producer
        let waiting = self.waiting
        let error: KafkaError? = await withCheckedContinuation {
            (continuation: CheckedContinuation<KafkaError?, Never>) in
            waiting.byToken.withLock { $0[token] = continuation }
            do throws(KafkaError) {
                try producer.produce(topic: topic, key: key, value: value, headers: headers, token: token)
            } catch {
                let c = waiting.byToken.withLock { $0.removeValue(forKey: token) }
                c?.resume(returning: Optional(error))
            }
        }
        if let error { throw error }
    }

    public func close() {
        producer.flush(timeoutMilliseconds: 5000)
        producer.close()
    }
}

/// Produces records to `<topic>.dlq` (same key, value and headers, plus the `dlq-*` headers)
/// and waits for the broker's acknowledgement.
public final class DeadLetterWriter: Sendable {
    private let producer: AcknowledgedProducer
    private let groupID: String

    public init(configuration: KafkaClientConfiguration, groupID: String, logger: Logger) throws(KafkaError) {
        self.producer = try AcknowledgedProducer(configuration: configuration, logger: logger)
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

    public func close() { producer.close() }
}
