import IngestCore
import IngestHTTP
import Prometheus

/// The bridge's HTTP endpoints on our own server: `/healthz` (the process answers), `/readyz`
/// (every planned channel subscribed and connected, else 503 naming how many are not), and
/// `/metrics` (Prometheus: channels, messages, heartbeats, gaps, reconnects, rotations,
/// repeats dropped, rejected topics, spool lag and refusals).
final class BridgeEndpoints: HTTPRequestHandler, @unchecked Sendable {
    // @unchecked: `last` is confined to the server's single loop (asserted by the server's
    // confinement: requests are handled on its queue); the rest is immutable or thread-safe.
    private let bridge: Bridge
    private let registry: PrometheusCollectorRegistry
    private let planned: Gauge
    private let connected: Gauge
    private let rejected: Gauge
    private let pending: Gauge
    private let counters: [(Counter, (Bridge.Status) -> Int)]
    private var last: [Int]
    /// `ingest_bridge_topic_permitted{topic=…}`, created as topics appear.
    private var topicGauges: [String: Gauge] = [:]

    init(bridge: Bridge) {
        self.bridge = bridge
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        func gauge(_ name: String, _ unit: String, _ help: String) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: unit, helpText: help))
        }
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "total", helpText: help))
        }
        planned = gauge("ingest_bridge_channels_planned", "", "Channels the configuration needs.")
        connected = gauge("ingest_bridge_channels_connected", "", "Channels subscribed and connected now.")
        rejected = gauge("ingest_bridge_rejected_topics", "", "Topics Genesys refused (missing permissions).")
        pending = gauge("ingest_bridge_spool_pending_records", "", "Spooled records not yet acknowledged by Kafka.")
        counters = [
            (counter("ingest_bridge_messages", "Notifications written to the spool."), { $0.messages }),
            (counter("ingest_bridge_heartbeats", "Heartbeats received (not produced)."), { $0.heartbeats }),
            (counter("ingest_bridge_gaps", "Gap records published."), { $0.gaps }),
            (counter("ingest_bridge_reconnects", "Reconnections after a socket ended or failed."), { $0.reconnects }),
            (counter("ingest_bridge_rotations", "Channels replaced before they expired."), { $0.rotations }),
            (counter("ingest_bridge_duplicates_dropped", "Repeated notifications dropped."), { $0.duplicates }),
            (counter("ingest_bridge_spool_refused", "Notifications the spool refused (lost)."), { $0.spoolRefused }),
        ]
        last = Array(repeating: 0, count: counters.count)
    }

    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let status = bridge.status
        switch (request.method, String(request.path)) {
        case ("GET", "/healthz"):
            responder.respond(.json(.ok, "{\"status\":\"ok\"}"))
        case ("GET", "/readyz"):
            let missing = bridge.plannedChannels - status.connectedChannels
            if missing == 0 {
                responder.respond(.json(.ok, "{\"status\":\"ready\",\"channels\":\(status.connectedChannels)}"))
            } else {
                responder.respond(
                    .json(
                        .serviceUnavailable,
                        "{\"status\":\"not ready\",\"reason\":\"\(missing) of \(bridge.plannedChannels) channels not connected\"}"
                    )
                )
            }
        case ("GET", "/metrics"):
            planned.set(Int64(bridge.plannedChannels))
            connected.set(Int64(status.connectedChannels))
            rejected.set(Int64(status.rejectedTopics))
            pending.set(Int64(status.pendingRecords))
            for (topic, ok) in status.permitted {
                let g =
                    topicGauges[topic]
                    ?? registry.makeGauge(
                        descriptor: MetricNameDescriptor(
                            metricName: "ingest_bridge_topic_permitted",
                            unitName: "",
                            helpText: "1 when Genesys permitted the topic's subscription, 0 when it rejected it."
                        ),
                        labels: [("topic", topic)]
                    )
                topicGauges[topic] = g
                g.set(Int64(ok ? 1 : 0))
            }
            for (i, (counter, value)) in counters.enumerated() {
                let now = value(status)
                if now > last[i] { counter.increment(by: Int64(now - last[i])) }
                last[i] = now
            }
            responder.respond(
                HTTPResponse(
                    status: .ok,
                    headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                    body: registry.emitToBuffer()
                )
            )
        case (_, "/healthz"), (_, "/readyz"), (_, "/metrics"):
            responder.respond(.error(.methodNotAllowed, "method not allowed", headers: [("Allow", "GET")]))
        default:
            responder.respond(.error(.notFound, "not found"))
        }
    }
}
