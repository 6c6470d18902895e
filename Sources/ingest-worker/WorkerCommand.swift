import ArgumentParser
import Foundation
import GenesysAPI
import IngestAnalytics
import IngestCore
import IngestEnrichment
import IngestHTTPClient
import IngestKafka
import IngestLogging
import IngestOverflow
import IngestStore
import IngestWorker
import Logging
import Prometheus
import ServiceLifecycle

/// `ingest-worker`: parse configuration, bootstrap logging and metrics, run the worker until
/// SIGTERM/SIGINT (finish the batch in hand, store offsets, leave the group).
@main
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest-worker",
        abstract:
            "Consumes raw Genesys events from Kafka and runs handlers with idempotency, retries and dead letters.",
        discussion: "Configuration comes from INGEST_* environment variables (see README.md); flags override them."
    )

    @Option(help: "Kafka bootstrap servers (INGEST_KAFKA_BROKERS).") var brokers: String?
    @Option(help: "Consumer group (INGEST_WORKER_GROUP).") var group: String?
    @Option(help: "Comma-separated handlers (INGEST_WORKER_HANDLERS): noop, record, enrich, analytics, overflow.")
    var handlers: String?
    @Option(help: "Idempotency store: sqlite:<path> (INGEST_STORE_URL).") var store: String?
    @Option(help: "Port for /healthz, /readyz, /metrics (INGEST_WORKER_HTTP_PORT).") var httpPort: Int?
    @Option(help: "Log level (INGEST_LOG_LEVEL).") var logLevel: String?
    @Option(help: "Log format: text or json (INGEST_LOG_FORMAT).") var logFormat: String?

    func run() async throws {
        var env = ProcessInfo.processInfo.environment
        if let brokers { env["INGEST_KAFKA_BROKERS"] = brokers }
        if let group { env["INGEST_WORKER_GROUP"] = group }
        if let handlers { env["INGEST_WORKER_HANDLERS"] = handlers }
        if let store { env["INGEST_STORE_URL"] = store }
        if let httpPort { env["INGEST_WORKER_HTTP_PORT"] = String(httpPort) }
        let environment = EnvironmentReader(env) { path in Array(try Data(contentsOf: URL(fileURLWithPath: path))) }
        let levelName = logLevel ?? environment.string("INGEST_LOG_LEVEL", default: "info")
        guard let level = Logger.Level(rawValue: levelName) else {
            throw ValidationError("unknown log level '\(levelName)'")
        }
        guard let format = LogFormat(rawValue: logFormat ?? environment.string("INGEST_LOG_FORMAT", default: "text"))
        else {
            throw ValidationError("log format must be text or json")
        }
        LoggingBootstrap.bootstrap(format: format, level: level)
        let logger = Logger(label: "ingest-worker")
        try LibrdkafkaVersion.check()

        let config: WorkerConfiguration
        do {
            config = try WorkerConfiguration(
                environment: environment,
                defaultWorkerID: "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
            )
            // The shared outbound client reads the same variables; report mistakes now.
            _ = try HTTPClientConfiguration(environment: environment)
        } catch {
            throw ValidationError("configuration error: \(error.message)")
        }
        let store = try WorkerService.openStore(config.storeURL, schema: config.storeSchema)
        // One producer for the whole process (dead letters and every feature's output); it is
        // closed last, after every service has stopped.
        let producer = try AcknowledgedProducer(
            configuration: KafkaClientConfiguration(bootstrapServers: config.brokers),
            logger: logger
        )
        defer { producer.close() }
        let registry = PrometheusCollectorRegistry()
        var handlers: [any EventHandler] = []
        var extraServices: [any Service] = []
        // What every feature of this process shares.
        let context = FeatureContext(
            environment: environment,
            config: config,
            store: store,
            producer: producer,
            registry: registry,
            logger: logger
        )
        for name in config.handlers {
            let feature: (handler: any EventHandler, service: (any Service)?)
            switch name {
            case "enrich": feature = (try await makeEnrichmentHandler(context), nil)
            case "analytics": feature = try await makeAnalytics(context)
            case "overflow": feature = try makeOverflow(context)
            default:
                // WorkerConfiguration accepts only known names; the rest are built in.
                guard let builtIn = WorkerService.makeBuiltInHandler(name, config) else { continue }
                feature = (builtIn, nil)
            }
            handlers.append(feature.handler)
            if let service = feature.service { extraServices.append(service) }
        }
        let runtime = WorkerRuntime(
            configuration: config,
            handlers: handlers,
            store: store,
            logger: logger,
            metrics: WorkerMetrics(handlers: handlers.map(\.name), registry: registry),
            producer: producer
        )
        let service = WorkerService(runtime: runtime, configuration: config, logger: logger)
        // Start order: the handlers' services (analytics, overflow), then the consumer that
        // feeds them. ServiceGroup shuts down in reverse start order, so on SIGTERM the
        // consumer stops (finishing and committing its batch) before analytics evaluates,
        // flushes and publishes for the last time, and before overflow stops driving.
        let group = ServiceGroup(
            configuration: .init(
                services: extraServices.map { .init(service: $0) } + [.init(service: service)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }

    /// The analytics handler and the service that evaluates it; its state is rebuilt from the
    /// store before consumption starts.
    private func makeAnalytics(_ context: FeatureContext) async throws -> (any EventHandler, any Service) {
        let (environment, config, store, producer, logger) = (
            context.environment, context.config, context.store, context.producer, context.logger
        )
        let registry = context.registry
        let analytics: AnalyticsConfiguration
        do {
            analytics = try AnalyticsConfiguration(environment: environment)
        } catch {
            throw ValidationError("configuration error: \(error.message)")
        }
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
        return (
            AnalyticsHandler(engine: engine, configuration: analytics),
            AnalyticsService(engine: engine, configuration: analytics, logger: logger)
        )
    }

    /// The overflow handler and the controller's service; the configuration is validated (no
    /// overflow loop, enough target capacity) before anything starts.
    private func makeOverflow(_ context: FeatureContext) throws -> (any EventHandler, any Service) {
        let (environment, config, store, producer, logger) = (
            context.environment, context.config, context.store, context.producer, context.logger
        )
        let registry = context.registry
        let settings: OverflowSettings
        let overflow: OverflowConfiguration
        let clientConfig: GenesysClientConfiguration
        let limit: Int
        let period: Int
        do {
            settings = try OverflowSettings(environment: environment)
            overflow = try settings.load { try Data(contentsOf: URL(fileURLWithPath: $0)) }
            (clientConfig, limit, period) = try GenesysClientConfiguration.from(
                environment: environment,
                purpose: "the overflow handler"
            )
        } catch {
            throw ValidationError("configuration error: \(error.message)")
        }
        guard let documents = store as? any DocumentStore else {
            throw ValidationError("the overflow handler needs a SQLite or PostgreSQL store (INGEST_STORE_URL)")
        }
        let client = Self.makeGenesysClient(clientConfig, limit: limit, period: period, store: store, logger: logger)
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
        return (
            OverflowHandler(controller: controller, metricsTopic: settings.metricsTopic),
            OverflowService(controller: controller, logger: logger)
        )
    }

    /// One Genesys client per OAuth client in this process (one token cache, one rate budget),
    /// whichever handlers use it; the budget is counted in the store, so it is shared with
    /// every other instance using the same OAuth client too.
    static let genesysClients = LockedValue<[String: GenesysClient]>([:])

    static func makeGenesysClient(
        _ configuration: GenesysClientConfiguration,
        limit: Int,
        period: Int,
        store: any IdempotencyStore,
        logger: Logger
    ) -> GenesysClient {
        let key = "\(configuration.apiBaseURL)|\(configuration.clientID)"
        return genesysClients.withLock { clients in
            if let existing = clients[key] { return existing }
            let client = newGenesysClient(configuration, limit: limit, period: period, store: store, logger: logger)
            clients[key] = client
            return client
        }
    }

    private static func newGenesysClient(
        _ configuration: GenesysClientConfiguration,
        limit: Int,
        period: Int,
        store: any IdempotencyStore,
        logger: Logger
    ) -> GenesysClient {
        GenesysClient(
            configuration: configuration,
            budget: SharedRateBudget(
                store: (store as? any RateBudgetStore) ?? InMemoryRateBudgetStore(),
                bucket: configuration.clientID,
                limit: limit,
                periodSeconds: Double(period)
            ),
            logger: logger
        )
    }

    /// The enrich handler: a Genesys client whose rate budget is shared through the store.
    private func makeEnrichmentHandler(_ context: FeatureContext) async throws -> any EventHandler {
        let (environment, store, producer, logger) = (
            context.environment, context.store, context.producer, context.logger
        )
        let (enrichment, clientConfig, limit, period): (EnrichmentConfiguration, GenesysClientConfiguration, Int, Int)
        do {
            (enrichment, clientConfig, limit, period) = try EnrichmentConfiguration.from(environment: environment)
        } catch {
            throw ValidationError("configuration error: \(error.message)")
        }
        let client = Self.makeGenesysClient(clientConfig, limit: limit, period: period, store: store, logger: logger)
        let output = producer
        var table: EnrichedConversationTable?
        if let url = enrichment.tableURL {
            table = try await EnrichedConversationTable(url: url, schema: enrichment.tableSchema)
        }
        return EnrichmentHandler(configuration: enrichment, client: client, output: output, table: table)
    }
}

/// What the features of one worker process share: its configuration, its store, its one
/// producer and its metrics registry.
struct FeatureContext {
    let environment: EnvironmentReader
    let config: WorkerConfiguration
    let store: any IdempotencyStore
    let producer: AcknowledgedProducer
    let registry: PrometheusCollectorRegistry
    let logger: Logger
}
