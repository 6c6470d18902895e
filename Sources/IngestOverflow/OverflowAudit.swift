import Foundation
import IngestCore
import IngestHTTPClient
import IngestKafka
import IngestWorker
import Logging
import Prometheus

/// One audit record: a decision, an API call and its result, or a state change.
public struct OverflowAuditRecord: Sendable, Codable, Equatable {
    public var time: String
    public var queueId: String
    public var activationId: String?
    public var state: String
    /// `detected`, `verify`, `state`, `api`, `conflict`, `human-change-kept`, `dry-run`, `failed`, …
    public var event: String
    public var detail: String
    public var result: String
    public var durationMs: Int?
    public var instance: String
    public var dryRun: Bool
}

/// Writes audit records to `genesys.overflow.audit` (keyed by queue id, acknowledged) and,
/// when configured, POSTs them to a webhook. An unreachable audit sink is logged; it never
/// stops the controller.
public final class OverflowAudit: Sendable {
    let producer: AcknowledgedProducer?
    let topic: String
    let webhook: URL?
    let logger: Logger
    private let http: HTTPClient

    public init(
        producer: AcknowledgedProducer?,
        topic: String,
        webhook: URL?,
        logger: Logger,
        http: HTTPClient = .shared
    ) {
        self.producer = producer
        self.topic = topic
        self.webhook = webhook
        self.logger = logger
        self.http = http
    }

    func write(_ record: OverflowAuditRecord) async {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let body = try? encoder.encode(record) else { return }
        logger.info(
            "overflow \(record.event)",
            metadata: [
                "queue.id": "\(record.queueId)", "overflow.state": "\(record.state)",
                "overflow.detail": "\(record.detail)", "overflow.result": "\(record.result)",
            ]
        )
        if let producer {
            do {
                try await producer.send(
                    topic: topic,
                    key: Array(record.queueId.utf8),
                    value: Array(body),
                    headers: [KafkaHeader(name: "content-type", string: "application/json")]
                )
            } catch {
                logger.warning("cannot write an overflow audit record", metadata: ["error": "\(error.message)"])
            }
        }
        if let webhook {
            let request = HTTPClientRequest(
                method: "POST",
                url: webhook.absoluteString,
                headers: [("Content-Type", "application/json")],
                body: Array(body),
                timeoutMilliseconds: 5000
            )
            let http = http
            let logger = logger
            Task {
                do {
                    let response = try await http.execute(request)
                    if !(200..<300).contains(response.status) {
                        logger.warning(
                            "overflow audit webhook refused a record",
                            metadata: ["status": "\(response.status)"]
                        )
                    }
                } catch {
                    logger.warning("overflow audit webhook failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

/// The controller's metrics, created once for the configured queues.
public final class OverflowMetrics: Sendable {
    let activations: Counter
    let reverts: Counter
    let conflicts: Counter
    let failures: Counter
    let ignoredTriggers: Counter
    private let inOverflow: [String: Gauge]
    private let secondsInOverflow: [String: Counter]

    public init(registry: PrometheusCollectorRegistry, queueIDs: [String]) {
        func counter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Counter {
            registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: name, unitName: "total", helpText: help),
                labels: labels
            )
        }
        activations = counter("genesys_overflow_activations", "Overflow activations that reached active.")
        reverts = counter("genesys_overflow_reverts", "Activations reverted.")
        conflicts = counter(
            "genesys_overflow_conflicts",
            "Concurrent edits of a queue met while planning, applying or reverting."
        )
        failures = counter("genesys_overflow_failures", "Steps that failed (retried on the next check).")
        ignoredTriggers = counter(
            "genesys_overflow_ignored_triggers",
            "Detections while an activation was already under way (duplicates, redeliveries, other instances)."
        )
        var gauges: [String: Gauge] = [:]
        var seconds: [String: Counter] = [:]
        for q in queueIDs {
            gauges[q] = registry.makeGauge(
                descriptor: MetricNameDescriptor(
                    metricName: "genesys_overflow_active",
                    unitName: "",
                    helpText: "1 while the queue's overflow actions are applied."
                ),
                labels: [("queue", q)]
            )
            seconds[q] = registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    metricName: "genesys_overflow_time_in_overflow",
                    unitName: "seconds_total",
                    helpText: "Time queues spent with overflow actions applied."
                ),
                labels: [("queue", q)]
            )
        }
        inOverflow = gauges
        secondsInOverflow = seconds
    }

    func setActive(_ queueID: String, _ active: Bool) { inOverflow[queueID]?.set(active ? 1.0 : 0.0) }
    func addTimeInOverflow(_ queueID: String, seconds: Double) {
        if seconds > 0 { secondsInOverflow[queueID]?.increment(by: seconds) }
    }
}
