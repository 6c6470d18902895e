import Foundation
import GenesysAPI
import IngestCore
import IngestKafka
import IngestStore
import IngestWorker
import Logging

/// Builds the enrichment feature of a worker process (`INGEST_WORKER_HANDLERS=enrich`).
public enum EnrichmentFeature {
    /// The enrich handler: a Genesys client whose rate budget is shared through the store.
    public static func make(_ context: WorkerFeatureContext) async throws -> WorkerFeature {
        let (environment, store, producer, logger) = (
            context.environment, context.store, context.producer, context.logger
        )
        let (enrichment, clientConfig, limit, period) = try EnrichmentConfiguration.from(environment: environment)
        let client = GenesysClient.shared(
            clientConfig,
            limit: limit,
            periodSeconds: period,
            budgetStore: store as? any RateBudgetStore,
            logger: logger
        )
        let output = producer
        var table: EnrichedConversationTable?
        if let url = enrichment.tableURL {
            table = try await EnrichedConversationTable(url: url, schema: enrichment.tableSchema)
        }
        return WorkerFeature(
            handler: EnrichmentHandler(configuration: enrichment, client: client, output: output, table: table)
        )
    }
}
