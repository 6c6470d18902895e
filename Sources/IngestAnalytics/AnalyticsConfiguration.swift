import IngestCore

/// Configuration of the `analytics` handler (queue wait-time analytics), from `INGEST_ANALYTICS_*`,
/// `INGEST_PAGERDUTY_*` and `INGEST_TSDB_*` variables.
public struct AnalyticsConfiguration: Sendable {
    /// Where waits come from.
    public enum Source: String, Sendable {
        /// `acd.end` detail events (queueId, acdOutcome, connectedDurationMs): no API calls.
        case acdEnd = "acd-end"
        /// Enriched records (`tAcdMs` from conversation details) written by the enrich handler.
        case enriched
    }

    public var source = Source.acdEnd
    public var aggregator = QueueWaitAggregator.Configuration()
    /// Topic of the enriched records (source `enriched`).
    public var enrichedTopic = "genesys.conversations.enriched"
    /// Summary records per queue and interval.
    public var outputTopic = "genesys.queue.metrics"
    /// Waits re-keyed by queue id (written by the waits stage, read by the aggregation stage).
    public var waitsTopic = "genesys.queue.waits"
    /// Queue observation notifications, keyed by queue id: must have the waits topic's
    /// partition count, so that one instance owns a queue's waits and observations.
    public var observationsTopic = TopicNaming().topic(for: .queue)
    /// How often gauges are refreshed and alert rules evaluated.
    public var evaluateMilliseconds = 1000
    /// How often the open interval's running summary is published (the final one is published
    /// once the interval closes).
    public var publishMilliseconds = 60_000
    public var alertRules: [AlertRule] = []
    public var pagerDutyURL = "https://events.pagerduty.com/v2/enqueue"
    /// `nil`: alerts are logged and counted but not sent.
    public var pagerDutyRoutingKey: String?
    /// InfluxDB line-protocol write URL (InfluxDB `/api/v2/write?...&precision=ms`, or
    /// VictoriaMetrics `/write`); `nil` disables the push.
    public var tsdbURL: String?
    /// Sent as `Authorization: Token <token>` when set.
    public var tsdbToken: String?
    public var tsdbFlushMilliseconds = 10_000
    /// Points kept while the TSDB is unreachable; the oldest are dropped beyond this.
    public var tsdbBufferPoints = 100_000

    public init() {}

    public static let variableNames = [
        "INGEST_ANALYTICS_SOURCE", "INGEST_ANALYTICS_WINDOWS", "INGEST_ANALYTICS_INTERVAL_MINUTES",
        "INGEST_ANALYTICS_LATENESS_SECONDS", "INGEST_ANALYTICS_SL_THRESHOLD_SECONDS", "INGEST_ANALYTICS_MAX_QUEUES",
        "INGEST_ANALYTICS_ENRICHED_TOPIC", "INGEST_ANALYTICS_OUTPUT_TOPIC", "INGEST_ANALYTICS_WAITS_TOPIC",
        "INGEST_TOPIC_PREFIX", "INGEST_ANALYTICS_EVALUATE_MS",
        "INGEST_ANALYTICS_PUBLISH_MS", "INGEST_ANALYTICS_ALERTS", "INGEST_PAGERDUTY_URL",
        "INGEST_PAGERDUTY_ROUTING_KEY", "INGEST_PAGERDUTY_ROUTING_KEY_FILE", "INGEST_TSDB_URL", "INGEST_TSDB_TOKEN",
        "INGEST_TSDB_TOKEN_FILE", "INGEST_TSDB_FLUSH_MS", "INGEST_TSDB_BUFFER_POINTS",
    ]

    public init(environment env: EnvironmentReader) throws(ConfigurationError) {
        let sourceName = env.string("INGEST_ANALYTICS_SOURCE", default: source.rawValue)
        guard let source = Source(rawValue: sourceName) else {
            throw ConfigurationError("INGEST_ANALYTICS_SOURCE must be acd-end or enriched, not '\(sourceName)'")
        }
        self.source = source
        if let text = env.string("INGEST_ANALYTICS_WINDOWS") {
            var windows: [Int] = []
            for part in text.split(separator: ",") {
                let item = part.trimmingASCIIWhitespace()
                guard let m = Int(item), (1...5).contains(m) || (m > 5 && m % 5 == 0 && m <= 24 * 60) else {
                    throw ConfigurationError(
                        "INGEST_ANALYTICS_WINDOWS: '\(item)' must be 1–5 minutes or a multiple of 5 up to 1440"
                    )
                }
                windows.append(m)
            }
            guard !windows.isEmpty else { throw ConfigurationError("INGEST_ANALYTICS_WINDOWS is empty") }
            aggregator.windowMinutes = windows
        }
        let interval = try env.int("INGEST_ANALYTICS_INTERVAL_MINUTES", default: 30, range: 5...1440)
        guard interval % 5 == 0 else {
            throw ConfigurationError("INGEST_ANALYTICS_INTERVAL_MINUTES must be a multiple of 5 (Genesys uses 30)")
        }
        aggregator.intervalMinutes = interval
        aggregator.allowedLatenessMilliseconds =
            Int64(try env.int("INGEST_ANALYTICS_LATENESS_SECONDS", default: 120, range: 0...86_400)) * 1000
        aggregator.serviceLevelThresholdMilliseconds =
            Double(try env.int("INGEST_ANALYTICS_SL_THRESHOLD_SECONDS", default: 20, range: 1...86_400)) * 1000
        aggregator.maxQueues = try env.int("INGEST_ANALYTICS_MAX_QUEUES", default: 2000, range: 1...100_000)
        enrichedTopic = env.string("INGEST_ANALYTICS_ENRICHED_TOPIC", default: enrichedTopic)
        outputTopic = env.string("INGEST_ANALYTICS_OUTPUT_TOPIC", default: outputTopic)
        waitsTopic = env.string("INGEST_ANALYTICS_WAITS_TOPIC", default: waitsTopic)
        observationsTopic = TopicNaming(prefix: env.string("INGEST_TOPIC_PREFIX", default: "genesys.raw"))
            .topic(for: .queue)
        guard Set([waitsTopic, outputTopic, observationsTopic, enrichedTopic]).count == 4 else {
            throw ConfigurationError(
                "INGEST_ANALYTICS_WAITS_TOPIC, INGEST_ANALYTICS_OUTPUT_TOPIC, INGEST_ANALYTICS_ENRICHED_TOPIC and the queue topic must differ"
            )
        }
        evaluateMilliseconds = try env.int("INGEST_ANALYTICS_EVALUATE_MS", default: 1000, range: 50...600_000)
        publishMilliseconds = try env.int("INGEST_ANALYTICS_PUBLISH_MS", default: 60_000, range: 100...3_600_000)
        if let text = env.string("INGEST_ANALYTICS_ALERTS") {
            do {
                alertRules = try AlertRule.parseList(text, windows: aggregator.windowMinutes)
            } catch {
                throw ConfigurationError("INGEST_ANALYTICS_ALERTS: \(error.message)")
            }
        }
        pagerDutyURL = env.string("INGEST_PAGERDUTY_URL", default: pagerDutyURL)
        guard pagerDutyURL.hasPrefix("http://") || pagerDutyURL.hasPrefix("https://") else {
            throw ConfigurationError("INGEST_PAGERDUTY_URL must be an http(s) URL")
        }
        pagerDutyRoutingKey = try env.secret("INGEST_PAGERDUTY_ROUTING_KEY").map { String(decoding: $0, as: UTF8.self) }
        tsdbURL = env.string("INGEST_TSDB_URL")
        if let url = tsdbURL, !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
            throw ConfigurationError("INGEST_TSDB_URL must be an http(s) URL")
        }
        tsdbToken = try env.secret("INGEST_TSDB_TOKEN").map { String(decoding: $0, as: UTF8.self) }
        tsdbFlushMilliseconds = try env.int("INGEST_TSDB_FLUSH_MS", default: 10_000, range: 100...3_600_000)
        tsdbBufferPoints = try env.int("INGEST_TSDB_BUFFER_POINTS", default: 100_000, range: 10...10_000_000)
    }
}
