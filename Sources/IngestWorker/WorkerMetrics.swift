import CoreMetrics
import IngestCore
import Metrics
import Prometheus
import Synchronization

/// The worker's metrics, created once per label set and rendered by its `/metrics`.
public final class WorkerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    static let outcomes = ["processed", "duplicate", "dead_lettered", "retried", "delayed", "fatal"]
    private let events: [String: [String: CoreMetrics.Counter]]
    private let handlerLatencies: [String: CoreMetrics.Timer]
    private let storeLatencies: [String: CoreMetrics.Timer]
    let dedupHits: CoreMetrics.Counter
    let dlqWrites: CoreMetrics.Counter
    let paused: CoreMetrics.Gauge
    /// Lag gauges per assigned partition (bounded by the partitions of the consumed topics).
    private let lagGauges = LockedValue<[String: CoreMetrics.Gauge]>([:])

    public init(handlers: [String], registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(20),
            .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10),
        ]
        self.factory = factory
        var events: [String: [String: CoreMetrics.Counter]] = [:]
        var latencies: [String: CoreMetrics.Timer] = [:]
        for h in handlers + ["runtime"] {
            var byOutcome: [String: CoreMetrics.Counter] = [:]
            for o in Self.outcomes {
                byOutcome[o] = CoreMetrics.Counter(
                    label: "ingest_worker_events_total",
                    dimensions: [("handler", h), ("outcome", o)],
                    factory: factory
                )
            }
            events[h] = byOutcome
            latencies[h] = CoreMetrics.Timer(
                label: "ingest_worker_handler_latency_seconds",
                dimensions: [("handler", h)],
                factory: factory
            )
        }
        self.events = events
        self.handlerLatencies = latencies
        var store: [String: CoreMetrics.Timer] = [:]
        for op in ["claim", "complete"] {
            store[op] = CoreMetrics.Timer(
                label: "ingest_worker_store_latency_seconds",
                dimensions: [("operation", op)],
                factory: factory
            )
        }
        self.storeLatencies = store
        self.dedupHits = CoreMetrics.Counter(label: "ingest_worker_dedup_hits_total", dimensions: [], factory: factory)
        self.dlqWrites = CoreMetrics.Counter(label: "ingest_worker_dlq_writes_total", dimensions: [], factory: factory)
        self.paused = CoreMetrics.Gauge(label: "ingest_worker_paused", dimensions: [], factory: factory)
    }

    func count(handler: String, outcome: String) { events[handler]?[outcome]?.increment() }

    func handlerLatency(handler: String, nanoseconds: UInt64) {
        handlerLatencies[handler]?.recordNanoseconds(Int64(nanoseconds))
    }

    func storeLatency(operation: String, nanoseconds: UInt64) {
        storeLatencies[operation]?.recordNanoseconds(Int64(nanoseconds))
    }

    func recordLag(topic: String, partition: Int32, lag: Int64) {
        let key = "\(topic)/\(partition)"
        let gauge = lagGauges.withLock { gauges in
            if let g = gauges[key] { return g }
            let g = CoreMetrics.Gauge(
                label: "ingest_worker_consumer_lag",
                dimensions: [("topic", topic), ("partition", String(partition))],
                factory: factory
            )
            gauges[key] = g
            return g
        }
        gauge.record(lag)
    }
}
