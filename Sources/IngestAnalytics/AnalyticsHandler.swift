import Foundation
import IngestCore
import IngestWorker
import Logging
import ServiceLifecycle

/// The `analytics` handler: turns `acd.end` events (or enriched records) into committed waits
/// and queue observation notifications into live gauges. Waits become side effects, so they
/// are counted exactly once: the engine takes them only after they are committed.
public struct AnalyticsHandler: EventHandler {
    public let name = AnalyticsEngine.handlerName
    let engine: AnalyticsEngine
    let source: AnalyticsConfiguration.Source
    let enrichedTopic: String

    public init(engine: AnalyticsEngine, configuration: AnalyticsConfiguration) {
        self.engine = engine
        self.source = configuration.source
        self.enrichedTopic = configuration.enrichedTopic
    }

    public func accepts(_ event: WorkerEvent) -> Bool {
        if let topic = event.topicName {
            if topic.hasPrefix("v2.analytics.queues.") && topic.hasSuffix(".observations") { return true }
            return source == .acdEnd && topic.hasPrefix("v2.detail.events.conversation.") && topic.hasSuffix(".acd.end")
        }
        return source == .enriched && event.record.topic == enrichedTopic
    }

    public func handle(_ event: WorkerEvent) async throws(HandlerFailure) -> [SideEffect] {
        do {
            if let topic = event.topicName, topic.hasSuffix(".observations") {
                await engine.observe(try AnalyticsInput.observations(event.body))
                return []
            }
            let waits =
                source == .enriched ? try AnalyticsInput.enriched(event.body) : [try AnalyticsInput.acdEnd(event.body)]
            return waits.map { SideEffect(handler: name, dedupKey: event.dedupKey, payload: $0.encoded) }
        } catch {
            throw .poison("analytics cannot read the event: \(error)")
        }
    }

    public func didCommit(_ effects: [SideEffect]) async {
        await engine.apply(effects)
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
