import Foundation
import GenesysAPI
import IngestCore
import IngestKafka
import IngestStore
import IngestWorker
import Logging

/// Enrichment settings (environment variables in the README's worker section).
public struct EnrichmentConfiguration: Sendable {
    /// Topic types that trigger a fetch (default: `customer.end`).
    public var topicTypes: Set<String> = ["customer.end"]
    public var outputTopic = "genesys.conversations.enriched"
    /// How long ids are collected before a partial multi-get.
    public var batchWindowMilliseconds = 250
    /// Ids per multi-get (Genesys's maximum is undocumented; 100 is safe).
    public var batchSize = 100
    /// Retry delay while details are not available yet.
    public var notAvailableRetryMilliseconds = 3000
    /// A fetched conversation is served from memory for this long.
    public var cacheSeconds = 120.0
    /// When set, enriched conversations are also upserted into `enriched_conversations` here.
    public var tableURL: String?
    public var tableSchema = "public"

    public init() {}

    /// Every variable the enrich handler reads (its own and the Genesys client's).
    public static let variableNames =
        [
            "INGEST_ENRICH_TOPIC_TYPES", "INGEST_ENRICH_OUTPUT_TOPIC", "INGEST_ENRICH_BATCH_WINDOW_MS",
            "INGEST_ENRICH_RETRY_DELAY_MS", "INGEST_ENRICH_TABLE_URL", "INGEST_ENRICH_TABLE_SCHEMA",
            "INGEST_ENRICH_BATCH_SIZE",
        ] + GenesysClientConfiguration.variableNames

    /// Reads the enrichment settings and the Genesys client from the environment.
    public static func from(
        environment env: EnvironmentReader
    ) throws(ConfigurationError)
        -> (EnrichmentConfiguration, GenesysClientConfiguration, rateLimit: Int, ratePeriodSeconds: Int)
    {
        var config = EnrichmentConfiguration()
        if let types = env.string("INGEST_ENRICH_TOPIC_TYPES") {
            config.topicTypes = Set(types.split(separator: ",").map { $0.trimmingASCIIWhitespace() })
        }
        config.outputTopic = env.string("INGEST_ENRICH_OUTPUT_TOPIC", default: config.outputTopic)
        config.batchWindowMilliseconds = try env.int("INGEST_ENRICH_BATCH_WINDOW_MS", default: 250, range: 0...10_000)
        config.batchSize = try env.int("INGEST_ENRICH_BATCH_SIZE", default: 100, range: 1...100)
        config.tableURL = env.string("INGEST_ENRICH_TABLE_URL")
        config.tableSchema = env.string("INGEST_ENRICH_TABLE_SCHEMA", default: "public")
        config.notAvailableRetryMilliseconds = try env.int(
            "INGEST_ENRICH_RETRY_DELAY_MS",
            default: 3000,
            range: 10...600_000
        )
        let (client, limit, period) = try GenesysClientConfiguration.from(
            environment: env,
            purpose: "the enrich handler"
        )
        return (config, client, limit, period)
    }
}

/// Fetches conversation details for ended conversations (batched multi-gets) and publishes
/// them with derived fields to `genesys.conversations.enriched`, keyed by conversation id.
/// Not-yet-available details are retried through the runtime's delay class.
public final class EnrichmentHandler: EventHandler {
    public let name = "enrich"
    let configuration: EnrichmentConfiguration
    let fetcher: DetailsBatcher
    let output: AcknowledgedProducer
    let table: EnrichedConversationTable?

    public init(
        configuration: EnrichmentConfiguration,
        client: GenesysClient,
        output: AcknowledgedProducer,
        table: EnrichedConversationTable? = nil
    ) {
        self.configuration = configuration
        self.table = table
        self.fetcher = DetailsBatcher(
            client: client,
            batchSize: configuration.batchSize,
            windowMilliseconds: configuration.batchWindowMilliseconds,
            cacheSeconds: configuration.cacheSeconds
        )
        self.output = output
    }

    public func accepts(_ event: WorkerEvent) -> Bool {
        guard event.conversationID != nil, let topic = event.topicName,
            topic.hasPrefix("v2.detail.events.conversation.")
        else { return false }
        return configuration.topicTypes.contains { topic.hasSuffix("." + $0) }
    }

    public func handle(_ event: WorkerEvent) async throws(HandlerFailure) -> [SideEffect] {
        guard let id = event.conversationID else { throw .poison("no conversation id") }
        let details: JSONValue?
        do {
            details = try await fetcher.details(for: id).value
        } catch let error as GenesysAPIError {
            switch error {
            case .authentication: throw .fatal(error.description)
            case .client: throw .poison(error.description)
            case .notFound: details = nil
            case .rateLimited, .unavailable: throw .retryable(error.description)
            }
        } catch {
            throw .retryable("\(error)")
        }
        guard let details, let end = details["conversationEnd"]?.stringValue else {
            throw .delay(
                "details of \(id) not available yet",
                afterMilliseconds: configuration.notAvailableRetryMilliseconds
            )
        }
        let record = EnrichedConversation(
            conversationId: id,
            derived: DerivedFields(details: details),
            details: details,
            enrichedAt: ISO8601DateFormatter().string(from: Date())
        )
        let body: Data
        do { body = try EnrichedConversation.encoder.encode(record) } catch {
            throw .poison("details are not serializable: \(error)")
        }
        do {
            try await output.send(
                topic: configuration.outputTopic,
                key: Array(id.utf8),
                value: Array(body),
                headers: [
                    KafkaHeader(name: IngestHeader.contentType, string: "application/json"),
                    // Deterministic: a re-publication after a crash is the same event downstream.
                    KafkaHeader(name: IngestHeader.producedEventID, string: "enriched|" + event.dedupKey),
                ]
            )
        } catch {
            throw .retryable("publishing enriched record failed: \(error.message)")
        }
        if let table {
            do {
                try await table.upsertEnrichedConversation(
                    id: id,
                    conversationEnd: end,
                    recordJSON: String(decoding: body, as: UTF8.self)
                )
            } catch {
                throw .retryable("upserting the enriched conversation failed: \(error)")
            }
        }
        return [SideEffect(handler: name, dedupKey: event.dedupKey, payload: id)]
    }
}

/// A record of `genesys.conversations.enriched`: the details as Genesys sent them, with the
/// fields derived from them.
struct EnrichedConversation: Encodable {
    var conversationId: String
    var derived: DerivedFields
    var details: JSONValue
    var enrichedAt: String

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
}

/// Fields derived from conversation details (absent metrics are left out of the record).
public struct DerivedFields: Codable, Equatable, Sendable {
    public var queueIds: [String]
    public var agentIds: [String]
    public var abandoned: Bool
    public var tAcdMs: Int?
    public var talkMs: Int?
    public var holdMs: Int?
    public var handleMs: Int?
    public var mediaType: String?
    public var direction: String?

    public init(details: JSONValue) {
        var metrics: [String: Double] = [:]
        var queueIDs = Set<String>()
        var agentIDs = Set<String>()
        var mediaType: String?
        for participant in details["participants"]?.elements ?? [] {
            if participant["purpose"]?.stringValue == "agent", let user = participant["userId"]?.stringValue {
                agentIDs.insert(user)
            }
            for session in participant["sessions"]?.elements ?? [] {
                if mediaType == nil { mediaType = session["mediaType"]?.stringValue }
                for segment in session["segments"]?.elements ?? [] {
                    if let q = segment["queueId"]?.stringValue { queueIDs.insert(q) }
                }
                for metric in session["metrics"]?.elements ?? [] {
                    guard let name = metric["name"]?.stringValue, let value = metric["value"]?.numberValue,
                        value.isFinite
                    else { continue }
                    metrics[name, default: 0] += value
                }
            }
        }
        /// Milliseconds from the wire: whole and within range, or left out.
        func milliseconds(_ name: String) -> Int? {
            metrics[name].flatMap { Int(exactly: $0.rounded()) }
        }
        self.queueIds = queueIDs.sorted()
        self.agentIds = agentIDs.sorted()
        self.abandoned = metrics["tAbandon"] != nil
        self.tAcdMs = milliseconds("tAcd")
        self.talkMs = milliseconds("tTalk")
        self.holdMs = milliseconds("tHeld")
        self.handleMs = milliseconds("tHandle")
        self.mediaType = mediaType
        self.direction = details["originatingDirection"]?.stringValue
    }
}

/// Collects conversation ids and fetches them with multi-gets of up to 100 ids, falling back
/// to single GETs when a multi-get is refused; recently fetched complete conversations are
/// served from memory.
///
/// At most `maxInFlight` multi-gets run at once. While they wait for the rate budget, new ids
/// accumulate, so under load every request carries close to 100 ids; a partial batch goes out
/// once the collection window has passed.
public actor DetailsBatcher {
    /// A fetch result: the conversation's details, or none when Genesys does not have them yet.
    public struct Details: Sendable {
        public var value: JSONValue?
    }

    private let client: GenesysClient
    private let window: Int
    private let cacheSeconds: Double
    private let maxInFlight = 4
    private var waiting: [String: [CheckedContinuation<Details, Error>]] = [:]
    private var order: [String] = []
    private var inFlight = 0
    private var windowTimer: Task<Void, Never>?
    private var cache: [String: (details: Details, at: ContinuousClock.Instant)] = [:]

    private let batchSize: Int

    init(client: GenesysClient, batchSize: Int, windowMilliseconds: Int, cacheSeconds: Double) {
        self.client = client
        self.batchSize = batchSize
        self.window = windowMilliseconds
        self.cacheSeconds = cacheSeconds
    }

    func details(for id: String) async throws -> Details {
        if let hit = cache[id], ContinuousClock.now - hit.at < .seconds(cacheSeconds) { return hit.details }
        return try await withCheckedThrowingContinuation { continuation in
            if waiting[id] == nil { order.append(id) }
            waiting[id, default: []].append(continuation)
            pump()
        }
    }

    /// Starts full batches while there is room; arms the window timer for a partial one.
    private func pump() {
        while inFlight < maxInFlight && order.count >= batchSize { launch() }
        if !order.isEmpty && inFlight < maxInFlight && windowTimer == nil {
            let window = self.window
            windowTimer = Task {
                try? await Task.sleep(for: .milliseconds(window))
                await self.windowElapsed()
            }
        }
    }

    private func windowElapsed() {
        windowTimer = nil
        if !order.isEmpty && inFlight < maxInFlight { launch() }
        pump()
    }

    private func launch() {
        let ids = Array(order.prefix(batchSize))
        order.removeFirst(ids.count)
        var continuations: [String: [CheckedContinuation<Details, Error>]] = [:]
        for id in ids { continuations[id] = waiting.removeValue(forKey: id) }
        inFlight += 1
        Task {
            let result = await self.fetch(ids)
            self.finish(ids, continuations, result)
        }
    }

    private func fetch(_ ids: [String]) async -> Result<[String: Details], Error> {
        do {
            var found: [String: Details] = [:]
            do {
                for c in try await client.conversationDetails(ids: ids) {
                    if let id = c["conversationId"]?.stringValue { found[id] = Details(value: c) }
                }
            } catch GenesysAPIError.client {
                // The multi-get was refused: fetch one by one.
                for id in ids {
                    if let c = try? await client.conversationDetails(id: id) { found[id] = Details(value: c) }
                }
            }
            return .success(found)
        } catch {
            return .failure(error)
        }
    }

    private func finish(
        _ ids: [String],
        _ continuations: [String: [CheckedContinuation<Details, Error>]],
        _ result: Result<[String: Details], Error>
    ) {
        inFlight -= 1
        let now = ContinuousClock.now
        switch result {
        case .success(let found):
            for id in ids {
                let details = found[id] ?? Details(value: nil)
                if details.value?["conversationEnd"] != nil { cache[id] = (details, now) }
                continuations[id]?.forEach { $0.resume(returning: details) }
            }
            if cache.count > 50_000 { cache = cache.filter { now - $0.value.at < .seconds(cacheSeconds) } }
        case .failure(let error):
            for id in ids { continuations[id]?.forEach { $0.resume(throwing: error) } }
        }
        pump()
    }
}
