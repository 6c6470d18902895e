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

/// A feature's contribution to a worker process: its handlers, a service that runs beside
/// the consumer (started before it, stopped after it), topics it consumes besides
/// `INGEST_WORKER_TOPICS` (its own internal topics) and consumer properties it needs.
public struct WorkerFeature: Sendable {
    public var handlers: [any EventHandler]
    public var service: (any Service)?
    public var topics: [String]
    /// Properties the feature depends on (e.g. a co-partitioning assignment strategy); they
    /// override `INGEST_KAFKA_CONSUMER_PROPERTIES`, and two features may not disagree.
    public var consumerProperties: [String: String]

    public init(
        handlers: [any EventHandler],
        service: (any Service)? = nil,
        topics: [String] = [],
        consumerProperties: [String: String] = [:]
    ) {
        self.handlers = handlers
        self.service = service
        self.topics = topics
        self.consumerProperties = consumerProperties
    }

    public init(handler: any EventHandler, service: (any Service)? = nil) {
        self.init(handlers: [handler], service: service)
    }
}

extension WorkerConfiguration {
    /// Adds `feature`'s topics to the subscription and its consumer properties to the
    /// consumer's; fails when a property conflicts with one another feature already set.
    public mutating func adopt(_ feature: WorkerFeature) throws(ConfigurationError) {
        for topic in feature.topics where !topics.contains(topic) { topics.append(topic) }
        for (key, value) in feature.consumerProperties.sorted(by: { $0.key < $1.key }) {
            if let set = featureProperties[key], set != value {
                throw ConfigurationError(
                    "two handlers need different Kafka consumer property \(key) (\(set), \(value)): run them in separate worker groups"
                )
            }
            featureProperties[key] = value
            consumerProperties[key] = value
        }
    }
}
