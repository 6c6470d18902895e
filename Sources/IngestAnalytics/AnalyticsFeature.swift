import Foundation
import IngestCore
import IngestKafka
import IngestWorker
import Logging

/// Builds the analytics feature of a worker process (`INGEST_WORKER_HANDLERS=analytics`).
public enum AnalyticsFeature {
    /// The analytics handler and the service that evaluates it; its state is rebuilt from the
    /// store before consumption starts.
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
        _ = try await engine.rebuild(nowMilliseconds: WallClock.nowMilliseconds())
        return WorkerFeature(
            handler: AnalyticsHandler(engine: engine, configuration: analytics),
            service: AnalyticsService(engine: engine, configuration: analytics, logger: logger)
        )
    }
}
