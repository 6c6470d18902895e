import IngestCore

/// One configured event source: where it posts and how it authenticates.
public struct SourceConfiguration: Sendable {
    public var name: String
    /// The request path, e.g. `/events/genesys`.
    public var path: String
    public var scheme: AuthScheme
    /// One or two live secrets (two during rotation).
    public var secrets: [SourceSecret]
    /// Header carrying the key for the `api-key` scheme.
    public var apiKeyHeader: String
    /// Replay window for `standard-webhooks`.
    public var webhookToleranceSeconds: Int64

    public init(
        name: String,
        path: String,
        scheme: AuthScheme,
        secrets: [SourceSecret],
        apiKeyHeader: String = "x-api-key",
        webhookToleranceSeconds: Int64 = 300
    ) {
        self.name = name
        self.path = path
        self.scheme = scheme
        self.secrets = secrets
        self.apiKeyHeader = apiKeyHeader
        self.webhookToleranceSeconds = webhookToleranceSeconds
    }
}

/// Everything the gateway needs, built from environment variables (see the README's
/// configuration reference) or directly in tests.
public struct GatewayConfiguration: Sendable {
    public var host: String = "0.0.0.0"
    public var port: Int = 8080
    public var eventLoopCount: Int = 2
    public var maxConnections: Int = 10_000
    public var maxBodyBytes: Int = 512_000
    /// Request bytes all connections together may hold in memory; bodies beyond it get 503.
    public var bodyBudgetBytes: Int = 256 << 20
    public var headerReadTimeoutMilliseconds: Int = 10_000
    public var bodyReadTimeoutMilliseconds: Int = 30_000
    public var idleTimeoutMilliseconds: Int = 75_000
    public var brokers: String = "127.0.0.1:9092"
    public var topicPrefix: String = "genesys.raw"
    /// How long a request waits for the broker's acknowledgement before a 503.
    public var ackDeadlineMilliseconds: Int = 2000
    /// The `Retry-After` value (seconds) sent with 503s.
    public var retryAfterSeconds: Int = 5
    /// Graceful-shutdown budget: in-flight requests and outstanding acknowledgements.
    public var shutdownTimeoutMilliseconds: Int = 10_000
    /// A producer whose deliveries fail with none succeeding for this long, while the broker
    /// answers, is replaced by a new one.
    public var producerStallMilliseconds: Int = 10_000
    /// Create the raw topics at start-up when missing.
    public var createTopics: Bool = true
    public var topicPartitions: Int = 6
    public var topicReplicationFactor: Int = 1
    /// Extra librdkafka producer properties (override the durable defaults at your own risk).
    public var kafkaProperties: [String: String] = [:]
    public var sources: [SourceConfiguration] = []

    /// When a 202 is sent.
    public enum DeliveryMode: String, Sendable {
        /// After the broker acknowledged the record (`acks=all`); 503 while Kafka is down.
        case kafka
        /// After the local spool's `fdatasync` covering the record; a forwarder sends the
        /// spool to Kafka in order, so Kafka outages are ridden out up to the spool's size.
        case spool
    }

    public var deliveryMode = DeliveryMode.kafka
    public var spoolDirectory = "spool"
    public var spoolMaxBytes: Int64 = 1 << 30
    public var spoolSegmentBytes: Int64 = 64 << 20

    public init() {}

    /// Environment variable names read by ``init(environment:)`` (documented in the README;
    /// `docker-compose.yml` may use only these and the per-source ones).
    public static let variableNames = [
        "INGEST_HTTP_HOST", "INGEST_HTTP_PORT", "INGEST_EVENT_LOOPS", "INGEST_MAX_CONNECTIONS",
        "INGEST_MAX_BODY_BYTES", "INGEST_BODY_BUDGET_BYTES", "INGEST_HEADER_TIMEOUT_MS", "INGEST_BODY_TIMEOUT_MS",
        "INGEST_IDLE_TIMEOUT_MS",
        "INGEST_KAFKA_BROKERS", "INGEST_TOPIC_PREFIX", "INGEST_ACK_DEADLINE_MS", "INGEST_RETRY_AFTER_SECONDS",
        "INGEST_SHUTDOWN_TIMEOUT_MS", "INGEST_PRODUCER_STALL_MS", "INGEST_CREATE_TOPICS", "INGEST_TOPIC_PARTITIONS",
        "INGEST_TOPIC_REPLICATION", "INGEST_KAFKA_PROPERTIES", "INGEST_SOURCES", "INGEST_LOG_LEVEL",
        "INGEST_LOG_FORMAT", "INGEST_DELIVERY_MODE", "INGEST_SPOOL_DIR", "INGEST_SPOOL_MAX_BYTES",
        "INGEST_SPOOL_SEGMENT_BYTES",
    ]

    /// Per-source variable suffixes: `INGEST_SOURCE_<NAME>_<SUFFIX>`.
    public static let sourceVariableSuffixes = [
        "PATH", "AUTH", "SECRET", "SECRET_FILE", "SECRET_ID", "SECRET_2", "SECRET_2_FILE", "SECRET_2_ID",
        "API_KEY_HEADER", "TOLERANCE_SECONDS",
    ]

    /// `INGEST_SOURCE_<NAME>_` for a source name (upper-cased, non-alphanumerics as `_`).
    public static func sourceVariablePrefix(_ name: String) -> String {
        let upper = name.uppercased().unicodeScalars.map { scalar -> String in
            (("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar))
                ? String(scalar) : "_"
        }
        return "INGEST_SOURCE_" + upper.joined() + "_"
    }

    /// Reads the configuration; every problem names the variable to fix.
    public init(environment env: EnvironmentReader, defaultEventLoops: Int) throws(ConfigurationError) {
        host = env.string("INGEST_HTTP_HOST", default: host)
        port = try env.int("INGEST_HTTP_PORT", default: port, range: 0...65535)
        eventLoopCount = try env.int("INGEST_EVENT_LOOPS", default: defaultEventLoops, range: 1...256)
        maxConnections = try env.int("INGEST_MAX_CONNECTIONS", default: maxConnections, range: 1...1_000_000)
        maxBodyBytes = try env.int("INGEST_MAX_BODY_BYTES", default: maxBodyBytes, range: 1...64 * 1024 * 1024)
        bodyBudgetBytes = try env.int(
            "INGEST_BODY_BUDGET_BYTES",
            default: bodyBudgetBytes,
            range: (1 << 20)...(1 << 40)
        )
        headerReadTimeoutMilliseconds = try env.int(
            "INGEST_HEADER_TIMEOUT_MS",
            default: headerReadTimeoutMilliseconds,
            range: 1...3_600_000
        )
        bodyReadTimeoutMilliseconds = try env.int(
            "INGEST_BODY_TIMEOUT_MS",
            default: bodyReadTimeoutMilliseconds,
            range: 1...3_600_000
        )
        idleTimeoutMilliseconds = try env.int(
            "INGEST_IDLE_TIMEOUT_MS",
            default: idleTimeoutMilliseconds,
            range: 1...3_600_000
        )
        brokers = env.string("INGEST_KAFKA_BROKERS", default: brokers)
        topicPrefix = env.string("INGEST_TOPIC_PREFIX", default: topicPrefix)
        ackDeadlineMilliseconds = try env.int(
            "INGEST_ACK_DEADLINE_MS",
            default: ackDeadlineMilliseconds,
            range: 1...600_000
        )
        retryAfterSeconds = try env.int("INGEST_RETRY_AFTER_SECONDS", default: retryAfterSeconds, range: 0...3600)
        shutdownTimeoutMilliseconds = try env.int(
            "INGEST_SHUTDOWN_TIMEOUT_MS",
            default: shutdownTimeoutMilliseconds,
            range: 0...600_000
        )
        let mode = env.string("INGEST_DELIVERY_MODE", default: deliveryMode.rawValue)
        guard let deliveryMode = DeliveryMode(rawValue: mode) else {
            throw ConfigurationError("INGEST_DELIVERY_MODE must be kafka or spool, not '\(mode)'")
        }
        self.deliveryMode = deliveryMode
        spoolDirectory = env.string("INGEST_SPOOL_DIR", default: spoolDirectory)
        spoolMaxBytes = Int64(
            try env.int("INGEST_SPOOL_MAX_BYTES", default: Int(spoolMaxBytes), range: 1 << 20...(1 << 50))
        )
        spoolSegmentBytes = Int64(
            try env.int("INGEST_SPOOL_SEGMENT_BYTES", default: Int(spoolSegmentBytes), range: 64 << 10...(1 << 32))
        )
        producerStallMilliseconds = try env.int(
            "INGEST_PRODUCER_STALL_MS",
            default: producerStallMilliseconds,
            range: 1000...600_000
        )
        createTopics = try env.bool("INGEST_CREATE_TOPICS", default: createTopics)
        topicPartitions = try env.int("INGEST_TOPIC_PARTITIONS", default: topicPartitions, range: 1...10_000)
        topicReplicationFactor = try env.int(
            "INGEST_TOPIC_REPLICATION",
            default: topicReplicationFactor,
            range: 1...32
        )
        kafkaProperties = try EnvironmentReader.keyValueList(
            env.string("INGEST_KAFKA_PROPERTIES") ?? "",
            variable: "INGEST_KAFKA_PROPERTIES"
        )

        let names = (env.string("INGEST_SOURCES") ?? "genesys").split(separator: ",").map {
            $0.trimmingASCIIWhitespace()
        }.filter { !$0.isEmpty }
        if names.isEmpty { throw ConfigurationError("INGEST_SOURCES names no source") }
        sources = []
        for name in names {
            sources.append(try Self.readSource(name: name, env: env))
        }
        try validate()
    }

    private static func readSource(
        name: String,
        env: EnvironmentReader
    ) throws(ConfigurationError)
        -> SourceConfiguration
    {
        let p = sourceVariablePrefix(name)
        let schemeName = env.string(p + "AUTH", default: AuthScheme.genesysHMAC.rawValue)
        guard let scheme = AuthScheme(rawValue: schemeName) else {
            let known = AuthScheme.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigurationError("\(p)AUTH=\(schemeName) is not one of: \(known)")
        }
        var secrets: [SourceSecret] = []
        if let s = try env.secret(p + "SECRET") {
            secrets.append(SourceSecret(id: env.string(p + "SECRET_ID", default: "primary"), bytes: s))
        }
        if let s = try env.secret(p + "SECRET_2") {
            secrets.append(SourceSecret(id: env.string(p + "SECRET_2_ID", default: "secondary"), bytes: s))
        }
        if secrets.isEmpty {
            throw ConfigurationError(
                "source '\(name)' has no secret: set \(p)SECRET or \(p)SECRET_FILE"
                    + (scheme == .basic ? " (as user:password)" : "")
            )
        }
        if scheme == .basic, let bad = secrets.first(where: { !$0.bytes.contains(UInt8(ascii: ":")) }) {
            throw ConfigurationError("source '\(name)' secret '\(bad.id)' must be user:password for basic auth")
        }
        let tolerance = try env.int(p + "TOLERANCE_SECONDS", default: 300, range: 1...86_400)
        return SourceConfiguration(
            name: name,
            path: env.string(p + "PATH", default: "/events/\(name)"),
            scheme: scheme,
            secrets: secrets,
            apiKeyHeader: env.string(p + "API_KEY_HEADER", default: "x-api-key"),
            webhookToleranceSeconds: Int64(tolerance)
        )
    }

    public static let reservedPaths: Set<String> = ["/healthz", "/readyz", "/metrics"]

    /// Checks cross-field rules: unique names and paths, paths that do not shadow the
    /// operational endpoints.
    public func validate() throws(ConfigurationError) {
        var paths = Set<String>()
        var names = Set<String>()
        for s in sources {
            guard s.path.hasPrefix("/") else { throw ConfigurationError("source '\(s.name)' path must start with /") }
            if Self.reservedPaths.contains(s.path) {
                throw ConfigurationError("source '\(s.name)' path \(s.path) is reserved")
            }
            if !paths.insert(s.path).inserted {
                throw ConfigurationError("two sources use the path \(s.path)")
            }
            if !names.insert(s.name).inserted { throw ConfigurationError("source '\(s.name)' is listed twice") }
            if s.secrets.isEmpty || s.secrets.count > 2 {
                throw ConfigurationError("source '\(s.name)' needs one or two secrets")
            }
        }
    }
}
