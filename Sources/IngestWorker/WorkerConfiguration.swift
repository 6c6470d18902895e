import IngestCore

/// Everything `ingest-worker` needs, from environment variables (README: worker configuration).
public struct WorkerConfiguration: Sendable {
    public var brokers = "127.0.0.1:9092"
    public var groupID = "genesys-ingest-worker"
    public var topics: [String] = TopicNaming().allTopics
    public var handlers: [String] = ["noop"]
    /// Different Kafka keys handled at once.
    public var concurrency = 16
    public var batchSize = 500
    public var pollMilliseconds = 100
    /// `sqlite:<path>` or `postgres://…`.
    public var storeURL = "sqlite:ingest-worker.sqlite"
    /// PostgreSQL schema for the store's tables.
    public var storeSchema = "public"
    public var retentionMilliseconds: Int64 = 96 * 3_600_000
    public var leaseMilliseconds: Int64 = 30_000
    public var retry = RetryPolicy()
    public var httpHost = "0.0.0.0"
    public var httpPort = 9090
    public var consumerProperties: [String: String] = [:]
    /// Consumer properties set by features (``adopt(_:)``), to detect conflicts between them.
    public var featureProperties: [String: String] = [:]
    public var workerID = "worker"
    /// Options of the `record` handler (tests and demos).
    public var recordHandler = RecordHandlerOptions()

    public init() {}

    public static let variableNames = [
        "INGEST_KAFKA_BROKERS", "INGEST_TOPIC_PREFIX", "INGEST_WORKER_GROUP", "INGEST_WORKER_TOPICS",
        "INGEST_WORKER_HANDLERS", "INGEST_WORKER_CONCURRENCY", "INGEST_WORKER_BATCH_SIZE", "INGEST_WORKER_POLL_MS",
        "INGEST_STORE_URL", "INGEST_STORE_SCHEMA", "INGEST_DEDUP_RETENTION_HOURS", "INGEST_CLAIM_LEASE_MS",
        "INGEST_RETRY_ATTEMPTS",
        "INGEST_RETRY_BACKOFF_MS", "INGEST_DELAY_MAX_AGE_MS", "INGEST_WORKER_HTTP_HOST", "INGEST_WORKER_HTTP_PORT",
        "INGEST_KAFKA_CONSUMER_PROPERTIES", "INGEST_WORKER_ID", "INGEST_RECORD_WORK_MS", "INGEST_RECORD_POISON_MARKER",
        "INGEST_RECORD_RETRYABLE_MARKER", "INGEST_RECORD_FATAL_MARKER", "INGEST_LOG_LEVEL",
        "INGEST_LOG_FORMAT",
    ]

    public init(environment env: EnvironmentReader, defaultWorkerID: String) throws(ConfigurationError) {
        brokers = env.string("INGEST_KAFKA_BROKERS", default: brokers)
        let naming = TopicNaming(prefix: env.string("INGEST_TOPIC_PREFIX", default: "genesys.raw"))
        groupID = env.string("INGEST_WORKER_GROUP", default: groupID)
        topics = Self.list(env.string("INGEST_WORKER_TOPICS")) ?? naming.allTopics
        handlers = Self.list(env.string("INGEST_WORKER_HANDLERS")) ?? handlers
        for h in handlers where !Self.knownHandlers.contains(h) {
            throw ConfigurationError(
                "INGEST_WORKER_HANDLERS names '\(h)'; known handlers: \(Self.knownHandlers.joined(separator: ", "))"
            )
        }
        concurrency = try env.int("INGEST_WORKER_CONCURRENCY", default: concurrency, range: 1...10_000)
        batchSize = try env.int("INGEST_WORKER_BATCH_SIZE", default: batchSize, range: 1...100_000)
        pollMilliseconds = try env.int("INGEST_WORKER_POLL_MS", default: pollMilliseconds, range: 1...60_000)
        storeURL = env.string("INGEST_STORE_URL", default: storeURL)
        guard storeURL.hasPrefix("sqlite:") || storeURL.hasPrefix("postgres://") || storeURL.hasPrefix("postgresql://")
        else {
            throw ConfigurationError("INGEST_STORE_URL must be sqlite:<path> or postgres://user@host/db")
        }
        storeSchema = env.string("INGEST_STORE_SCHEMA", default: storeSchema)
        retentionMilliseconds =
            Int64(try env.int("INGEST_DEDUP_RETENTION_HOURS", default: 96, range: 1...24 * 365)) * 3_600_000
        leaseMilliseconds = Int64(try env.int("INGEST_CLAIM_LEASE_MS", default: 30_000, range: 100...86_400_000))
        retry.maxAttempts = try env.int("INGEST_RETRY_ATTEMPTS", default: retry.maxAttempts, range: 1...100)
        retry.baseBackoffMilliseconds = try env.int(
            "INGEST_RETRY_BACKOFF_MS",
            default: retry.baseBackoffMilliseconds,
            range: 0...600_000
        )
        retry.maxDelayAgeMilliseconds = Int64(
            try env.int("INGEST_DELAY_MAX_AGE_MS", default: Int(retry.maxDelayAgeMilliseconds), range: 0...Int.max)
        )
        httpHost = env.string("INGEST_WORKER_HTTP_HOST", default: httpHost)
        httpPort = try env.int("INGEST_WORKER_HTTP_PORT", default: httpPort, range: 0...65535)
        consumerProperties = try EnvironmentReader.keyValueList(
            env.string("INGEST_KAFKA_CONSUMER_PROPERTIES") ?? "",
            variable: "INGEST_KAFKA_CONSUMER_PROPERTIES"
        )
        workerID = env.string("INGEST_WORKER_ID", default: defaultWorkerID)
        recordHandler.workMilliseconds = try env.int("INGEST_RECORD_WORK_MS", default: 0, range: 0...60_000)
        recordHandler.randomWork = try env.bool("INGEST_RECORD_WORK_RANDOM", default: false)
        // Set to an empty value to disable a failure class.
        if let v = env.values["INGEST_RECORD_POISON_MARKER"] { recordHandler.poisonMarker = v }
        if let v = env.values["INGEST_RECORD_RETRYABLE_MARKER"] { recordHandler.retryableMarker = v }
        if let v = env.values["INGEST_RECORD_FATAL_MARKER"] { recordHandler.fatalMarker = v }
    }

    public static let knownHandlers = ["noop", "record", "enrich", "analytics", "overflow", "reconcile"]

    static func list(_ text: String?) -> [String]? {
        guard let text else { return nil }
        let items = text.split(separator: ",").map { $0.trimmingASCIIWhitespace() }.filter { !$0.isEmpty }
        return items.isEmpty ? nil : items
    }
}

/// The `record` handler records every event as a side effect in the idempotency store. Events
/// whose body contains one of the markers fail on purpose, to exercise the failure classes.
public struct RecordHandlerOptions: Sendable {
    public var poisonMarker = #""ingest-test":"poison""#
    public var retryableMarker = #""ingest-test":"fail""#
    public var fatalMarker = #""ingest-test":"fatal""#
    /// Simulated work per event.
    public var workMilliseconds = 0
    /// Each event works a random 0…`workMilliseconds` instead (tests of ordering under load).
    public var randomWork = false

    public init() {}
}

/// How a handler's failures are retried.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts for a retryable failure before the event is dead-lettered.
    public var maxAttempts = 3
    /// Back-off before retry n (1-based) is `base × 2^(n-1)`, with ±50 % jitter.
    public var baseBackoffMilliseconds = 200
    /// A "not yet available" event is retried without spending attempts until it is this old.
    public var maxDelayAgeMilliseconds: Int64 = 3_600_000

    public init() {}

    /// The back-off before retry `attempt` (1-based), jittered with `random` in 0..<1.
    public func backoffMilliseconds(attempt: Int, random: Double) -> Int {
        let base = Double(baseBackoffMilliseconds) * Double(1 << min(max(attempt - 1, 0), 20))
        return Int(base * (0.5 + random))
    }
}
