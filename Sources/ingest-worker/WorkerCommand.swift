import ArgumentParser
import Foundation
import IngestAnalytics
import IngestCore
import IngestEnrichment
import IngestHTTPClient
import IngestKafka
import IngestLogging
import IngestOverflow
import IngestReconciliation
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
        let context = WorkerFeatureContext(
            environment: environment,
            configuration: config,
            store: store,
            producer: producer,
            registry: registry,
            logger: logger
        )
        // The runtime consumes the features' own topics too, with the properties they need.
        var runtimeConfig = config
        for name in config.handlers {
            let feature: WorkerFeature
            do {
                switch name {
                case "enrich": feature = try await EnrichmentFeature.make(context)
                case "analytics": feature = try await AnalyticsFeature.make(context)
                case "overflow": feature = try OverflowFeature.make(context)
                case "reconcile": feature = try ReconciliationFeature.make(context)
                default:
                    // WorkerConfiguration accepts only known names; the rest are built in.
                    guard let builtIn = WorkerService.makeBuiltInHandler(name, config) else { continue }
                    feature = WorkerFeature(handler: builtIn)
                }
            } catch let error as ConfigurationError {
                throw ValidationError("configuration error: \(error.message)")
            }
            handlers += feature.handlers
            if let service = feature.service { extraServices.append(service) }
            do {
                try runtimeConfig.adopt(feature)
            } catch {
                throw ValidationError("configuration error: \(error.message)")
            }
        }
        let runtime = WorkerRuntime(
            configuration: runtimeConfig,
            handlers: handlers,
            store: store,
            logger: logger,
            metrics: WorkerMetrics(handlers: handlers.map(\.name), registry: registry),
            producer: producer
        )
        let service = WorkerService(runtime: runtime, configuration: runtimeConfig, logger: logger)
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
}
