import IngestCore
import Logging
import Synchronization

/// A producer whose `send` returns once the broker acknowledged the record — the one
/// "produce and await the ack" mechanism, shared by everything in a process that writes to
/// Kafka (dead letters, enriched records, queue summaries, audit records): one librdkafka
/// producer per process, not one per feature.
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
