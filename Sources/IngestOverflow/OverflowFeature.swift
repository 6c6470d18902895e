import Foundation
import GenesysAPI
import IngestCore
import IngestKafka
import IngestWorker
import Logging

/// Builds the overflow feature of a worker process (`INGEST_WORKER_HANDLERS=overflow`).
public enum OverflowFeature {
    /// The overflow handler and the controller's service; the configuration is validated (no
    /// overflow loop, enough target capacity) before anything starts.
    public static func make(_ context: WorkerFeatureContext) throws -> WorkerFeature {
        let (environment, config, store, producer, logger) = (
            context.environment, context.configuration, context.store, context.producer, context.logger
        )
        let registry = context.registry
        let settings = try OverflowSettings(environment: environment)
        let overflow = try settings.load { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        let (clientConfig, limit, period) = try GenesysClientConfiguration.from(
            environment: environment,
            purpose: "the overflow handler"
        )
        guard let documents = store as? any DocumentStore else {
            throw ConfigurationError("the overflow handler needs a SQLite or PostgreSQL store (INGEST_STORE_URL)")
        }
        let client = GenesysClient.shared(
            clientConfig,
            limit: limit,
            periodSeconds: period,
            budgetStore: store as? any RateBudgetStore,
            logger: logger
        )
        let controller = OverflowController(
            configuration: overflow,
            api: RoutingAPI(client: client),
            store: documents,
            audit: OverflowAudit(
                producer: producer,
                topic: settings.auditTopic,
                webhook: settings.auditWebhookURL.flatMap(URL.init(string:)),
                logger: logger
            ),
            metrics: OverflowMetrics(registry: registry, queueIDs: overflow.queues.map(\.queueId)),
            owner: config.workerID,
            logger: logger,
            stepDelay: .milliseconds(settings.stepDelayMilliseconds)
        )
        logger.info(
            "overflow controller configured",
            metadata: [
                "overflow.queues": "\(overflow.queues.map(\.label))", "overflow.dry_run": "\(overflow.dryRun)",
            ]
        )
        return WorkerFeature(
            handler: OverflowHandler(controller: controller, metricsTopic: settings.metricsTopic),
            service: OverflowService(controller: controller, logger: logger)
        )
    }
}
