import Foundation
import IngestCore
import IngestKafka
import IngestWorker
import Logging
import ServiceLifecycle

/// The aggregation stage (`analytics`): counts the waits of the waits topic and takes the
/// queue observations, for the queues this instance owns (the partitions of both topics
/// assigned to it). Waits become side effects committed with their ids, so each is counted
/// exactly once: the engine takes them only after they are committed, and takes the ones
/// another instance committed just before a rebalance when they are re-read.
public struct AnalyticsHandler: EventHandler {
    public let name = AnalyticsEngine.handlerName
    let engine: AnalyticsEngine
    let waitsTopic: String
    let observationsTopic: String

    public init(engine: AnalyticsEngine, configuration: AnalyticsConfiguration) {
        self.engine = engine
        self.waitsTopic = configuration.waitsTopic
        self.observationsTopic = configuration.observationsTopic
    }

    public func accepts(_ event: WorkerEvent) -> Bool {
        if event.record.topic == waitsTopic { return true }
        guard let topic = event.topicName else { return false }
        return topic.hasPrefix("v2.analytics.queues.") && topic.hasSuffix(".observations")
    }

    public func handle(_ event: WorkerEvent) async throws(HandlerFailure) -> [SideEffect] {
        try await checkPartition(event.record)
        do {
            if event.record.topic == waitsTopic {
                return [
                    SideEffect(
                        handler: name,
                        dedupKey: event.dedupKey,
                        payload: try AnalyticsInput.wait(event.body).encoded
                    )
                ]
            }
            await engine.observe(try AnalyticsInput.observations(event.body))
            return []
        } catch {
            throw .poison("analytics cannot read the event: \(error)")
        }
    }

    /// A keyed record must sit in the partition the product's partitioner gives its key:
    /// otherwise a queue's waits and observations reach different instances.
    private func checkPartition(_ record: KafkaRecord) async throws(HandlerFailure) {
        guard let key = record.key, !key.isEmpty, let expected = await engine.expectedPartition(key: key),
            expected != record.partition
        else { return }
        throw .fatal(
            "\(record.topic) holds a record keyed '\(String(decoding: key, as: UTF8.self))' in partition "
                + "\(record.partition), but \(KafkaPartitioner.propertyValue) puts that key in partition \(expected): "
                + "every producer of \(observationsTopic) and \(waitsTopic) must use partitioner="
                + "\(KafkaPartitioner.propertyValue) (the product's default; check INGEST_KAFKA_PRODUCER_PROPERTIES)"
        )
    }

    public func didCommit(_ effects: [SideEffect]) async {
        await engine.apply(effects)
    }

    public func didSkipDuplicates(_ events: [WorkerEvent]) async {
        let waits = events.compactMap { event -> (id: String, wait: WaitObservation)? in
            guard event.record.topic == waitsTopic, let o = try? AnalyticsInput.wait(event.body) else { return nil }
            return (event.claimKey(handler: name), o)
        }
        if !waits.isEmpty { await engine.applyCommitted(waits) }
    }

    public func assignmentChanged(_ event: RebalanceEvent) async throws(HandlerFailure) {
        try await engine.follow(event, nowMilliseconds: WallClock.nowMilliseconds())
    }
}

/// Runs the engine's evaluation ticks and the TSDB flushes until graceful shutdown, then
/// evaluates once more, flushes, and gives queued PagerDuty events a few seconds to go out.
public struct AnalyticsService: Service {
    let engine: AnalyticsEngine
    let configuration: AnalyticsConfiguration
    let logger: Logger

    public init(engine: AnalyticsEngine, configuration: AnalyticsConfiguration, logger: Logger) {
        self.engine = engine
        self.configuration = configuration
        self.logger = logger
    }

    static func now() -> Int64 { WallClock.nowMilliseconds() }

    public func run() async throws {
        let engine = engine
        let configuration = configuration
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !Task.isCancelled {
                        await engine.tick(nowMilliseconds: Self.now())
                        try? await Task.sleep(for: .milliseconds(configuration.evaluateMilliseconds))
                    }
                }
                if let tsdb = engine.tsdb {
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .milliseconds(configuration.tsdbFlushMilliseconds))
                            await tsdb.flush()
                        }
                    }
                }
            }
        }
        // The consumer has stopped (it stops first): everything committed is in the engine.
        await engine.tick(nowMilliseconds: Self.now(), final: true)
        await engine.tsdb?.flush()
        if let pagerDuty = engine.pagerDuty {
            let deadline = ContinuousClock.now + .seconds(5)
            while await pagerDuty.pending > 0 && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        logger.info("analytics stopped")
    }
}
