import CoreMetrics
import IngestCore
import Metrics
import Prometheus

/// The gateway's metrics, created once at start-up with bounded label sets and rendered by
/// `/metrics` from `registry`.
final class GatewayMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    /// Statuses the gateway answers with; anything else is counted under "other".
    static let statuses = [200, 202, 400, 401, 404, 405, 408, 413, 431, 500, 501, 503, 505]
    /// The `source` label for requests that matched no source (parse errors, unknown paths).
    static let noSource = "-"

    private let requests: [String: [Int: CoreMetrics.Counter]]
    private let requestBytes: [String: CoreMetrics.Counter]
    private let authFailures: [String: [String: CoreMetrics.Counter]]
    let produceLatency: CoreMetrics.Timer
    let inFlight: CoreMetrics.Meter
    let heartbeatsDropped: CoreMetrics.Counter
    let brokerUp: CoreMetrics.Gauge
    let producerRestarts: CoreMetrics.Counter
    /// Spool mode: sizes and positions, refreshed every second; sync latency per batch.
    let spoolBytes: CoreMetrics.Gauge
    let spoolPendingRecords: CoreMetrics.Gauge
    let spoolSegments: CoreMetrics.Gauge
    let spoolSyncs: CoreMetrics.Gauge
    let spoolResends: CoreMetrics.Gauge
    let spoolCorruptBytes: CoreMetrics.Gauge
    let spoolSyncLatency: CoreMetrics.Timer
    /// Request bytes held in memory now, and requests refused because they did not fit.
    let bodyBudgetUsed: CoreMetrics.Gauge
    let bodyBudgetRefused: CoreMetrics.Gauge
    private let brokerErrors: [String: CoreMetrics.Counter]
    static let brokerErrorKinds = [
        "queue_full", "delivery_failed", "deadline_exceeded", "broker_unreachable",
        "client_error", "spool_full", "spool_write_failed",
    ]

    init(sources: [String], registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(3), .milliseconds(5),
            .milliseconds(8), .milliseconds(12), .milliseconds(20), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
        ]
        let labels = sources + [Self.noSource]
        var requests: [String: [Int: CoreMetrics.Counter]] = [:]
        var bytes: [String: CoreMetrics.Counter] = [:]
        var auth: [String: [String: CoreMetrics.Counter]] = [:]
        for source in labels {
            var byStatus: [Int: CoreMetrics.Counter] = [:]
            for status in Self.statuses {
                byStatus[status] = CoreMetrics.Counter(
                    label: "ingest_http_requests_total",
                    dimensions: [("source", source), ("status", String(status))],
                    factory: factory
                )
            }
            byStatus[0] = CoreMetrics.Counter(
                label: "ingest_http_requests_total",
                dimensions: [("source", source), ("status", "other")],
                factory: factory
            )
            requests[source] = byStatus
            bytes[source] = CoreMetrics.Counter(
                label: "ingest_http_request_body_bytes_total",
                dimensions: [("source", source)],
                factory: factory
            )
            var byReason: [String: CoreMetrics.Counter] = [:]
            for reason in AuthFailure.allReasons {
                byReason[reason] = CoreMetrics.Counter(
                    label: "ingest_auth_failures_total",
                    dimensions: [("source", source), ("reason", reason)],
                    factory: factory
                )
            }
            auth[source] = byReason
        }
        self.requests = requests
        self.requestBytes = bytes
        self.authFailures = auth
        self.produceLatency = CoreMetrics.Timer(
            label: "ingest_produce_ack_latency_seconds",
            dimensions: [],
            factory: factory
        )
        self.inFlight = CoreMetrics.Meter(label: "ingest_requests_in_flight", dimensions: [], factory: factory)
        self.heartbeatsDropped = CoreMetrics.Counter(
            label: "ingest_heartbeats_dropped_total",
            dimensions: [],
            factory: factory
        )
        self.brokerUp = CoreMetrics.Gauge(label: "ingest_broker_reachable", dimensions: [], factory: factory)
        self.producerRestarts = CoreMetrics.Counter(
            label: "ingest_producer_restarts_total",
            dimensions: [],
            factory: factory
        )
        func gauge(_ name: String) -> CoreMetrics.Gauge {
            CoreMetrics.Gauge(label: name, dimensions: [], factory: factory)
        }
        self.spoolBytes = gauge("ingest_spool_bytes")
        self.spoolPendingRecords = gauge("ingest_spool_pending_records")
        self.spoolSegments = gauge("ingest_spool_segments")
        self.spoolSyncs = gauge("ingest_spool_syncs")
        self.spoolResends = gauge("ingest_spool_forward_resends")
        self.spoolCorruptBytes = gauge("ingest_spool_corrupt_bytes")
        self.bodyBudgetUsed = gauge("ingest_http_body_budget_used_bytes")
        self.bodyBudgetRefused = gauge("ingest_http_body_budget_refused")
        self.spoolSyncLatency = CoreMetrics.Timer(
            label: "ingest_spool_sync_latency_seconds",
            dimensions: [],
            factory: factory
        )
        var errors: [String: CoreMetrics.Counter] = [:]
        for kind in Self.brokerErrorKinds {
            errors[kind] = CoreMetrics.Counter(
                label: "ingest_broker_errors_total",
                dimensions: [("kind", kind)],
                factory: factory
            )
        }
        self.brokerErrors = errors
    }

    func countRequest(source: String, status: Int, bodyBytes: Int) {
        let bySource = requests[source] ?? requests[Self.noSource]!
        (bySource[status] ?? bySource[0]!).increment()
        if bodyBytes > 0 { (requestBytes[source] ?? requestBytes[Self.noSource]!).increment(by: bodyBytes) }
    }

    func countAuthFailure(source: String, reason: String) {
        authFailures[source]?[reason]?.increment()
    }

    func countBrokerError(_ kind: String) {
        brokerErrors[kind]?.increment()
    }
}
