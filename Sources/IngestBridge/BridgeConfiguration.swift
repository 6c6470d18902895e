import GenesysAPI
import IngestCore

/// Everything `ingest-bridge` needs, from `INGEST_*` environment variables (README: the bridge).
public struct BridgeConfiguration: Sendable {
    public var brokers = "127.0.0.1:9092"
    public var topicPrefix = "genesys.raw"
    public var gapsTopic = "genesys.ingest.gaps"
    public var createTopics = true
    public var topicPartitions = 6
    public var plan: ChannelPlan
    /// No message (heartbeat or other) for this long → the socket is taken as dead: reconnect.
    public var heartbeatTimeout: Duration = .seconds(75)
    /// A quiet socket is probed with `{"message":"ping"}` this often.
    public var pingInterval: Duration = .seconds(20)
    /// A channel is replaced by a fresh one this long before it expires (Genesys: 24 h).
    public var rotateBeforeExpiry: Duration = .seconds(600)
    /// Reconnect back-off bounds.
    public var reconnectMinimum: Duration = .milliseconds(500)
    public var reconnectMaximum: Duration = .seconds(30)
    public var spoolDirectory = "bridge-spool"
    /// `/healthz`, `/readyz`, `/metrics`.
    public var httpHost = "0.0.0.0"
    public var httpPort = 9095
    public var spoolMaxBytes: Int64 = 1 << 30
    public var genesys: GenesysClientConfiguration
    public var rateLimit = 300
    public var ratePeriodSeconds = 60

    public static let variableNames =
        [
            "INGEST_KAFKA_BROKERS", "INGEST_TOPIC_PREFIX", "INGEST_BRIDGE_GAPS_TOPIC", "INGEST_CREATE_TOPICS",
            "INGEST_TOPIC_PARTITIONS", "INGEST_BRIDGE_TOPICS", "INGEST_BRIDGE_QUEUE_IDS", "INGEST_BRIDGE_USER_IDS",
            "INGEST_BRIDGE_HEARTBEAT_TIMEOUT_MS", "INGEST_BRIDGE_PING_INTERVAL_MS",
            "INGEST_BRIDGE_ROTATE_BEFORE_EXPIRY_MS", "INGEST_SPOOL_DIR", "INGEST_BRIDGE_HTTP_HOST",
            "INGEST_BRIDGE_HTTP_PORT",
            "INGEST_SPOOL_MAX_BYTES", "INGEST_LOG_LEVEL", "INGEST_LOG_FORMAT",
        ] + GenesysClientConfiguration.variableNames

    public init(environment env: EnvironmentReader) throws(ConfigurationError) {
        func list(_ name: String) -> [String] {
            (env.string(name) ?? "").split(separator: ",").map { $0.trimmingASCIIWhitespace() }.filter { !$0.isEmpty }
        }
        do {
            plan = try ChannelPlan(
                templates: list("INGEST_BRIDGE_TOPICS"),
                queueIDs: list("INGEST_BRIDGE_QUEUE_IDS"),
                userIDs: list("INGEST_BRIDGE_USER_IDS")
            )
        } catch { throw ConfigurationError(error.description) }
        (genesys, rateLimit, ratePeriodSeconds) = try GenesysClientConfiguration.from(
            environment: env,
            purpose: "the notification bridge"
        )
        brokers = env.string("INGEST_KAFKA_BROKERS", default: brokers)
        topicPrefix = env.string("INGEST_TOPIC_PREFIX", default: topicPrefix)
        gapsTopic = env.string("INGEST_BRIDGE_GAPS_TOPIC", default: gapsTopic)
        createTopics = try env.bool("INGEST_CREATE_TOPICS", default: createTopics)
        topicPartitions = try env.int("INGEST_TOPIC_PARTITIONS", default: topicPartitions, range: 1...10_000)
        heartbeatTimeout = .milliseconds(
            try env.int("INGEST_BRIDGE_HEARTBEAT_TIMEOUT_MS", default: 75_000, range: 100...3_600_000)
        )
        pingInterval = .milliseconds(
            try env.int("INGEST_BRIDGE_PING_INTERVAL_MS", default: 20_000, range: 50...3_600_000)
        )
        rotateBeforeExpiry = .milliseconds(
            try env.int("INGEST_BRIDGE_ROTATE_BEFORE_EXPIRY_MS", default: 600_000, range: 0...86_400_000)
        )
        spoolDirectory = env.string("INGEST_SPOOL_DIR", default: spoolDirectory)
        httpHost = env.string("INGEST_BRIDGE_HTTP_HOST", default: httpHost)
        httpPort = try env.int("INGEST_BRIDGE_HTTP_PORT", default: httpPort, range: 0...65535)
        spoolMaxBytes = Int64(
            try env.int("INGEST_SPOOL_MAX_BYTES", default: Int(spoolMaxBytes), range: (1 << 20)...(1 << 50))
        )
    }
}
