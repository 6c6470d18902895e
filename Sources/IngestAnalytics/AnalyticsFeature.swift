import Foundation
import IngestCore
import IngestKafka
import IngestWorker
import Logging

/// Builds the analytics feature of a worker process (`INGEST_WORKER_HANDLERS=analytics`).
public enum AnalyticsFeature {
    /// The two analytics stages (waits re-keyed by queue; aggregation of the queues this
    /// instance owns) and the service that evaluates them. The waits and observations topics
    /// are checked for equal partition counts first.
    public static func make(_ context: WorkerFeatureContext) async throws -> WorkerFeature {
        let (environment, config, store, producer, logger) = (
            context.environment, context.configuration, context.store, context.producer, context.logger
        )
        let registry = context.registry
        let analytics = try AnalyticsConfiguration(environment: environment)
        let metrics = AnalyticsMetrics(registry: registry)
        var pagerDuty: PagerDutyNotifier?
        if let key = analytics.pagerDutyRoutingKey, let url = URL(string: analytics.pagerDutyURL) {
            pagerDuty = PagerDutyNotifier(
                url: url,
                routingKey: key,
                source: "genesys-ingest/\(config.workerID)",
                metrics: metrics,
                logger: logger
            )
        } else if !analytics.alertRules.isEmpty {
            logger.warning("alert rules are configured but INGEST_PAGERDUTY_ROUTING_KEY is not: alerts are only logged")
        }
        var tsdb: TSDBExporter?
        if let text = analytics.tsdbURL, let url = URL(string: text) {
            tsdb = TSDBExporter(
                url: url,
                token: analytics.tsdbToken,
                capacity: analytics.tsdbBufferPoints,
                metrics: metrics,
                logger: logger
            )
        }
        let output = producer
        let engine = AnalyticsEngine(
            configuration: analytics,
            store: store,
            output: output,
            pagerDuty: pagerDuty,
            tsdb: tsdb,
            metrics: metrics,
            workerID: config.workerID,
            logger: logger
        )
        // Queues are owned per partition of the waits topic; state is rebuilt per assignment.
        let partitions = try await AnalyticsTopology.check(
            analytics,
            kafka: KafkaClientConfiguration(bootstrapServers: config.brokers),
            logger: logger
        )
        await engine.partitionQueues(waitsTopic: analytics.waitsTopic, partitionCount: partitions)
        return WorkerFeature(
            handlers: [
                WaitsStageHandler(producer: producer, configuration: analytics),
                AnalyticsHandler(engine: engine, configuration: analytics),
            ],
            service: AnalyticsService(engine: engine, configuration: analytics, logger: logger),
            topics: [analytics.waitsTopic, analytics.observationsTopic]
                + (analytics.source == .enriched ? [analytics.enrichedTopic] : []),
            // The range assignor gives partition p of every topic with the same count to the
            // same member: co-partitioning (cooperative-sticky does not promise it).
            consumerProperties: ["partition.assignment.strategy": "range"]
        )
    }
}
