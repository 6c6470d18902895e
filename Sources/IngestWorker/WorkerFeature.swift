import IngestCore
import IngestKafka
import Logging
import Prometheus
import ServiceLifecycle

/// What the features of one worker process share: its environment and configuration, its
/// store, its one producer and its metrics registry. Each feature module builds its handler
/// (and, if it has one, its service) from this, so the executable only picks features by name.
public struct WorkerFeatureContext: Sendable {
    public let environment: EnvironmentReader
    public let configuration: WorkerConfiguration
    public let store: any IdempotencyStore
    public let producer: AcknowledgedProducer
    public let registry: PrometheusCollectorRegistry
    public let logger: Logger

    public init(
        environment: EnvironmentReader,
        configuration: WorkerConfiguration,
        store: any IdempotencyStore,
        producer: AcknowledgedProducer,
        registry: PrometheusCollectorRegistry,
        logger: Logger
    ) {
        self.environment = environment
        self.configuration = configuration
        self.store = store
        self.producer = producer
        self.registry = registry
        self.logger = logger
    }
}

/// A feature's contribution to a worker process: its handler, and a service that runs beside
/// the consumer (started before it, stopped after it).
public struct WorkerFeature: Sendable {
    public var handler: any EventHandler
    public var service: (any Service)?

    public init(handler: any EventHandler, service: (any Service)? = nil) {
        self.handler = handler
        self.service = service
    }
}
