import Foundation
import IngestCore
import IngestKafka
import Logging

/// Sends the spool's durable records to Kafka, in spool order, and acknowledges them in the
/// spool once the broker has: only then may their segment be deleted.
///
/// - The producer is idempotent; while Kafka is down, records wait on disk, at most
///   ``maxInFlight`` of them in librdkafka, and each attempt gives up after 10 s.
/// - A delivery that fails anyway (a fatal producer error, a broker refusal) stops the
///   forwarder: it waits for every outstanding report, then resends **everything** from the
///   first record not acknowledged, in order, with a fresh producer — so no key's order is
///   broken by a gap. Records already acknowledged after that point are sent again
///   (at-least-once; consumers deduplicate by the event's identity).
/// - An enqueue is never counted as delivered; the checkpoint advances over the contiguous
///   prefix of acknowledged records only.
///
/// Runs on its own thread.
public final class SpoolForwarder: @unchecked Sendable {
    // @unchecked: the loop's state is confined to its thread; `shared` is behind a lock.
    public var maxInFlight = 20_000
    let log: SpoolLog
    let kafka: KafkaClientConfiguration
    let logger: Logger
    private let wake = DispatchSemaphore(value: 0)
    private let stopRequested = LockedValue(false)
    private let done = DispatchSemaphore(value: 0)
    private var thread: Thread?

    private struct Shared {
        var acknowledged = Set<UInt64>()
        var failed: [UInt64: String] = [:]
        var fatal: String?
    }

    private let shared = LockedValue(Shared())
    /// Records sent again after a failure, for metrics.
    public let resends = LockedValue(0)

    public init(log: SpoolLog, kafka: KafkaClientConfiguration, logger: Logger) {
        self.log = log
        var kafka = kafka
        // A record not acknowledged within 10 s fails, and the forwarder starts over from the
        // first unacknowledged one with a fresh producer. (An infinite timeout wedged the
        // idempotent producer when a broker came back without its producer state: it waits for
        // in-flight requests that never finish before it can reset.)
        if kafka.properties["message.timeout.ms"] == nil { kafka.properties["message.timeout.ms"] = "10000" }
        if kafka.properties["linger.ms"] == nil { kafka.properties["linger.ms"] = "5" }
        // Back within a second of the broker (librdkafka's default back-off grows to 10 s).
        if kafka.properties["reconnect.backoff.max.ms"] == nil { kafka.properties["reconnect.backoff.max.ms"] = "1000" }
        self.kafka = kafka
        self.logger = logger
    }

    public func start() {
        let t = Thread { [unowned self] in
            self.run()
            self.done.signal()
        }
        t.name = "genesys-ingest.spool.forwarder"
        thread = t
        t.start()
    }

    /// New records are durable: look now rather than at the next idle tick.
    public func notify() { wake.signal() }

    /// Stops after giving outstanding records a few seconds to be acknowledged (what is not
    /// stays in the spool and is sent after the next start).
    public func stop() {
        stopRequested.withLock { $0 = true }
        wake.signal()
        if thread != nil { done.wait() }
    }

    /// Records the broker has acknowledged but not yet checkpointed, plus the rest: the lag.
    public var lag: UInt64 { log.durableSequence - log.acknowledgedSequence }

    private func makeProducer() -> KafkaProducer? {
        do {
            // Reports are polled by the forwarder's own thread (no dispatch source to miss a
            // wake-up): progress depends on nothing but this loop.
            return try KafkaProducer(
                configuration: kafka,
                logger: logger,
                reportDriver: .external,
                onDeliveryReports: { [shared] reports in
                    shared.withLock { s in
                        for r in reports {
                            if let e = r.error { s.failed[r.token] = e.message } else { s.acknowledged.insert(r.token) }
                        }
                    }
                },
                onError: { [shared] error in
                    if error.isFatal { shared.withLock { $0.fatal = error.message } }
                }
            )
        } catch {
            logger.error("spool forwarder cannot create a Kafka producer", metadata: ["error": "\(error.message)"])
            return nil
        }
    }

    /// Moves `head` over the records at the front of `outstanding` that the broker has
    /// acknowledged; returns the last of them, if any.
    private func advance(_ outstanding: [UInt64], _ head: inout Int) -> UInt64? {
        let acked = shared.withLock { $0.acknowledged }
        var last: UInt64?
        while head < outstanding.count, acked.contains(outstanding[head]) {
            last = outstanding[head]
            head += 1
        }
        return last
    }

    private func run() {
        var acknowledged = log.acknowledgedSequence
        let reader = SpoolReader(log: log, after: acknowledged)
        var producer = makeProducer()
        /// Sent and not yet acknowledged, in spool order.
        var outstanding: [UInt64] = []
        var head = 0
        var waiting: [SpoolRecord] = []  // read, not yet enqueued (librdkafka queue full)
        var backoff = 0.2
        var lastCheckpoint = ContinuousClock.now
        /// The last sequence made durable in the spool's checkpoint.
        var checkpointed = acknowledged
        /// Last time the acknowledged prefix advanced (or the forwarder started over).
        var lastProgress = ContinuousClock.now
        while !stopRequested.withLock({ $0 }) {
            guard let p = producer else {
                Thread.sleep(forTimeInterval: backoff)
                backoff = min(backoff * 2, 5)
                producer = makeProducer()
                continue
            }
            p.pollEvents()
            // A watchdog over librdkafka: records outstanding and nothing acknowledged for 20 s
            // (twice the message timeout) means the producer is wedged; start over.
            if head < outstanding.count && ContinuousClock.now - lastProgress > .seconds(20) {
                shared.withLock { $0.fatal = $0.fatal ?? "no acknowledgement for 20 s" }
            }
            // 1. A failure: drain, then resend from the first unacknowledged record.
            let (failure, fatal) = shared.withLock { s in (s.failed.min { $0.key < $1.key }, s.fatal) }
            if failure != nil || fatal != nil {
                // The old producer is given up at once and destroyed elsewhere:
                // rd_kafka_destroy can block for long while brokers are unreachable, and the
                // forwarder must not wait for it (its later reports are never polled, so what it
                // still delivers is simply sent again).
                let old = p
                producer = nil
                DispatchQueue.global().async {
                    old.purgeOutstanding()
                    old.close()
                }
                let reason = fatal ?? failure.map { "record \($0.key): \($0.value)" } ?? ""
                // What was acknowledged contiguously still counts.
                if let last = advance(outstanding, &head) { acknowledged = last }
                let resent = outstanding.count - head
                resends.withLock { $0 += resent }
                logger.warning(
                    "spool forwarding failed: resending in order from the first unacknowledged record",
                    metadata: [
                        "error": "\(reason)", "spool.resend_from": "\(acknowledged + 1)", "spool.resent": "\(resent)",
                    ]
                )
                if (try? log.acknowledge(through: acknowledged)) != nil { checkpointed = acknowledged }
                shared.withLock { $0 = Shared() }
                outstanding = []
                head = 0
                waiting = []
                reader.rewind(after: acknowledged)
                lastProgress = ContinuousClock.now
                Thread.sleep(forTimeInterval: backoff)
                backoff = min(backoff * 2, 5)
                producer = makeProducer()
                continue
            }
            // 2. Advance over the contiguous acknowledged prefix.
            let last = advance(outstanding, &head)
            let advanced = last != nil
            if let last {
                acknowledged = last
                backoff = 0.2
                lastProgress = ContinuousClock.now
                shared.withLock { s in s.acknowledged = s.acknowledged.filter { $0 > acknowledged } }
                if head > 4096 {
                    outstanding.removeFirst(head)
                    head = 0
                }
            }
            // Checkpointed at most every 100 ms, and always eventually: an acknowledged tail that
            // arrives just after a checkpoint is written on a later pass, advancing or not.
            if acknowledged > checkpointed && ContinuousClock.now - lastCheckpoint > .milliseconds(100) {
                lastCheckpoint = ContinuousClock.now
                do {
                    try log.acknowledge(through: acknowledged)
                    checkpointed = acknowledged
                } catch {
                    logger.error("spool checkpoint failed", metadata: ["error": "\(error)"])
                }
            }
            if head == outstanding.count { lastProgress = ContinuousClock.now }
            // 3. Send more, within the in-flight bound.
            let room = maxInFlight - (outstanding.count - head) - waiting.count
            if room > 0 { waiting += reader.next(maxRecords: room) }
            var sent = 0
            while let r = waiting.first {
                do {
                    try p.produce(
                        topic: r.topic,
                        key: r.key,
                        value: r.value,
                        headers: r.headers.map { KafkaHeader(name: $0.name, value: $0.value) },
                        token: r.sequence
                    )
                } catch {
                    if error.isQueueFull { break }
                    shared.withLock { $0.failed[r.sequence] = error.message }
                    break
                }
                outstanding.append(r.sequence)
                waiting.removeFirst()
                sent += 1
            }
            if sent == 0 {
                // Nothing to do: wait for new durable records or reports.
                _ = wake.wait(timeout: .now() + .milliseconds(advanced ? 1 : 10))
            }
        }
        // Stopping: give outstanding deliveries a moment, checkpoint what was acknowledged.
        if let p = producer {
            _ = p.flush(timeoutMilliseconds: 3000)
            p.pollEvents()
            if let last = advance(outstanding, &head) { acknowledged = last }
            try? log.acknowledge(through: acknowledged)
            // Bounded: a destroy that blocks on unreachable brokers must not hold up shutdown.
            let closed = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                p.purgeOutstanding()
                p.close()
                closed.signal()
            }
            _ = closed.wait(timeout: .now() + 3)
        }
    }
}
