import IngestCore
import Prometheus
import Synchronization

/// The analytics series on the worker's `/metrics`. Per-queue gauges are created once per label
/// set (queue × media × window × figure) and their number is bounded by the aggregator's
/// `maxQueues`; the other metrics are created at start.
///
/// Series:
/// - `genesys_queue_wait_seconds{queue,media,window,quantile}` — p50/p90/p95/p99
/// - `genesys_queue_interactions{queue,media,window,outcome}` — offered/answered/abandoned/flowed_out
/// - `genesys_queue_abandon_ratio{queue,media,window}`, `genesys_queue_service_level_ratio{…}`
/// - `genesys_queue_observed{queue,media,metric}` — oWaiting, oInteracting, oOnQueueUsers,
///   oLongestWaiting (seconds) from observation notifications
public final class AnalyticsMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    private let gauges = LockedValue<[String: Gauge]>([:])
    let lateEvents: Counter
    let rejectedQueues: Counter
    let countedWaits: Counter
    let alertsTriggered: Counter
    let alertsResolved: Counter
    let alertsFiring: Gauge
    let pagerDutyFailures: Counter
    let summariesPublished: Counter
    let tsdbPointsWritten: Counter
    let tsdbPointsDropped: Counter
    let tsdbBufferedPoints: Gauge
    let trackedQueues: Gauge

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        func counter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Counter {
            registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: name, unitName: "total", helpText: help),
                labels: labels
            )
        }
        func gauge(_ name: String, _ unit: String, _ help: String) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: unit, helpText: help))
        }
        lateEvents = counter(
            "genesys_analytics_late_events",
            "Waits older than the allowed lateness: not counted in any window."
        )
        rejectedQueues = counter(
            "genesys_analytics_rejected_events",
            "Waits of queues beyond the tracked-queue limit (INGEST_ANALYTICS_MAX_QUEUES)."
        )
        countedWaits = counter("genesys_analytics_waits", "Waits counted in the windows.")
        let alertHelp = "Alert transitions sent (or logged when PagerDuty is not configured)."
        alertsTriggered = counter("genesys_analytics_alerts", alertHelp, [("action", "trigger")])
        alertsResolved = counter("genesys_analytics_alerts", alertHelp, [("action", "resolve")])
        alertsFiring = gauge("genesys_analytics_alerts", "firing", "Alerts firing now.")
        pagerDutyFailures = counter(
            "genesys_analytics_pagerduty_failures",
            "PagerDuty events given up on after retries (or refused as invalid)."
        )
        summariesPublished = counter(
            "genesys_analytics_summaries",
            "Interval summary records published to the metrics topic."
        )
        tsdbPointsWritten = counter(
            "genesys_analytics_tsdb_points_written",
            "Points accepted by the time-series database."
        )
        tsdbPointsDropped = counter(
            "genesys_analytics_tsdb_points_dropped",
            "Points dropped: buffer full while the database was unreachable, or refused by it."
        )
        tsdbBufferedPoints = gauge("genesys_analytics_tsdb_buffered", "points", "Points waiting to be written.")
        trackedQueues = gauge("genesys_analytics_tracked", "queues", "Queue and media-type pairs tracked.")
    }

    /// Sets one per-queue gauge, creating it on first use.
    func set(_ name: String, _ labels: [(String, String)], _ value: Double) {
        let key = name + labels.map { "\u{0}\($0.0)=\($0.1)" }.joined()
        let gauge = gauges.withLock { cache in
            if let g = cache[key] { return g }
            let g = registry.makeGauge(
                descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: ""),
                labels: labels
            )
            cache[key] = g
            return g
        }
        gauge.set(value)
    }

    /// Removes every per-queue gauge of `queueID`/`mediaType` (the queue went quiet and was evicted).
    func remove(queueID: String, mediaType: String) {
        let marker = "\u{0}queue=\(queueID)\u{0}media=\(mediaType)"
        let removed = gauges.withLock { cache in
            let keys = cache.keys.filter { $0.contains(marker) }
            return keys.compactMap { cache.removeValue(forKey: $0) }
        }
        for g in removed { registry.unregisterGauge(g) }
    }
}
