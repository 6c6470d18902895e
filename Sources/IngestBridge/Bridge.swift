import Foundation
import GenesysAPI
import IngestCore
import IngestCrypto
import IngestHTTP
import IngestKafka
import IngestSpool
import Logging

/// Where the bridge's records go: the durable spool (fsync'd, then forwarded to Kafka in
/// order by the spool's forwarder), so a Kafka outage does not lose what the socket
/// delivered — Genesys will not send it again. Raw notifications keep the gateway's routing,
/// keys and headers (``RawEventHeaders``), plus an event id for the workers' idempotency.
final class BridgeOutput: Sendable {
    let spool: SpoolLog
    let naming: TopicNaming
    let gapsTopic: String
    let logger: Logger
    let refused = LockedValue(0)

    init(spool: SpoolLog, naming: TopicNaming, gapsTopic: String, logger: Logger) {
        self.spool = spool
        self.naming = naming
        self.gapsTopic = gapsTopic
        self.logger = logger
    }

    /// `digest`: the SHA-256 (hex) of `message`. Notifications carry no id. The event id is the
    /// identity the worker would derive from the message itself (``DedupKey``): for a
    /// conversation detail event its composite (conversation + type + participant + session +
    /// eventTime), which the reconcile handler gives the same event rebuilt from details, so
    /// one that arrived at a gap's edge is not counted twice; for anything else the digest of
    /// the exact message (a redelivery is the same bytes, two distinct events never are).
    func publish(_ message: [UInt8], digest: String, info: EnvelopeInfo, channel: Int) {
        let eventID = (try? DedupKey.derive(from: message, digest: { _ in digest }).key) ?? "sha256:" + digest
        let headers = RawEventHeaders.make(
            info: info,
            contentType: "application/json",
            receivedAt: WallClock.nowMilliseconds(),
            source: "notifications",
            producedEventID: eventID
        )
        append(
            SpoolRecord(
                topic: naming.topic(for: info.family),
                key: info.key.map { Array($0.utf8) },
                value: message,
                headers: headers
            )
        )
    }

    func publish(gap: GapRecord) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let value = try? encoder.encode(gap) else { return }
        append(
            SpoolRecord(
                topic: gapsTopic,
                key: Array("channel-\(gap.channel)".utf8),
                value: Array(value),
                headers: [
                    (IngestHeader.contentType, Array("application/json".utf8)),
                    (IngestHeader.producedEventID, Array(gap.eventID.utf8)),
                ]
            )
        )
    }

    private func append(_ record: SpoolRecord) {
        do { try spool.append(record, token: 0) } catch {
            refused.withLock { $0 += 1 }
            logger.error(
                "the spool refused a notification: it is lost (a gap the reconciliation cannot see)",
                metadata: ["error": "\(error)", "kafka.topic": "\(record.topic)"]
            )
        }
    }
}

/// The notification bridge: one ``ChannelSession`` per planned channel, writing to one spool
/// forwarded to Kafka, and its HTTP endpoints. Start order: spool, forwarder, sessions,
/// endpoints; stop in reverse.
public final class Bridge: @unchecked Sendable {
    // @unchecked: written in start() before any session runs; read-only afterwards.
    public let configuration: BridgeConfiguration
    private let logger: Logger
    private var spool: SpoolLog?
    private var forwarder: SpoolForwarder?
    private var sessions: [ChannelSession] = []
    private var output: BridgeOutput?
    private var server: HTTPServer?

    public init(configuration: BridgeConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func start() throws {
        let kafka = KafkaClientConfiguration(bootstrapServers: configuration.brokers)
        let naming = TopicNaming(prefix: configuration.topicPrefix)
        if configuration.createTopics {
            let specs = (naming.allTopics + [configuration.gapsTopic]).map {
                KafkaAdmin.TopicSpec(name: $0, partitions: Int32(configuration.topicPartitions))
            }
            KafkaAdmin.ensureTopics(specs, kafka: kafka, logger: logger)
        }
        var spoolConfiguration = SpoolConfiguration(directory: configuration.spoolDirectory)
        spoolConfiguration.maxBytes = configuration.spoolMaxBytes
        let spool = try SpoolLog(configuration: spoolConfiguration, logger: logger) { _, error in
            if let error { self.logger.error("spool write failed", metadata: ["error": "\(error)"]) }
        }
        let forwarder = SpoolForwarder(log: spool, kafka: kafka, logger: logger)
        forwarder.start()
        let output = BridgeOutput(spool: spool, naming: naming, gapsTopic: configuration.gapsTopic, logger: logger)
        let api = NotificationsAPI(client: genesysClient)
        self.spool = spool
        self.forwarder = forwarder
        self.output = output
        sessions = configuration.plan.channels.enumerated().map { i, topics in
            ChannelSession(
                index: i,
                topics: topics,
                configuration: configuration,
                api: api,
                output: output,
                logger: logger
            )
        }
        logger.info(
            "bridge started",
            metadata: [
                "bridge.channels": "\(sessions.count)",
                "bridge.topics": "\(configuration.plan.channels.reduce(0) { $0 + $1.count })",
                "spool.dir": "\(configuration.spoolDirectory)",
            ]
        )
        for s in sessions { s.start() }
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(
                host: configuration.httpHost,
                port: configuration.httpPort,
                eventLoopCount: 1,
                maxConnections: 64
            ),
            handler: BridgeEndpoints(bridge: self),
            logger: logger
        )
        let port = try server.start()
        self.server = server
        logger.info("bridge HTTP endpoints listening", metadata: ["bridge.http.port": "\(port)"])
    }

    /// Reads the org's `availabletopics` and warns about configured topics it does not offer
    /// on WebSockets (their subscriptions would never deliver). Never fatal: a failed read is
    /// logged and the bridge runs.
    public func warnAboutTopicsNotOffered() async {
        do {
            let available = try await NotificationsAPI(client: genesysClient).availableTopics()
            for (topic, why) in configuration.plan.notOfferedOnWebSockets(
                available.map { ($0.id, $0.isOfferedOnWebSockets) }
            ) {
                logger.warning(
                    "a configured topic is not offered on WebSockets: it will deliver nothing",
                    metadata: ["genesys.topic": "\(topic)", "reason": "\(why)"]
                )
            }
        } catch {
            logger.warning("could not read the org's available topics", metadata: ["error": "\(error)"])
        }
    }

    public func stop() async {
        await server?.shutdown(deadline: .seconds(1))
        for s in sessions.reversed() { s.stop() }
        spool?.close()
        forwarder?.stop()
        logger.info("bridge stopped")
    }

    /// Counters for health output and tests.
    public struct Status: Sendable, Equatable {
        public var connectedChannels: Int
        public var messages: Int
        public var heartbeats: Int
        public var gaps: Int
        public var reconnects: Int
        public var rotations: Int
        public var duplicates: Int
        public var spoolRefused: Int
        public var pendingRecords: UInt64
        /// Each subscribed topic's latest outcome (true: Permitted, false: Rejected).
        public var permitted: [String: Bool]
        /// Topics Genesys rejected.
        public var rejectedTopics: Int { permitted.values.filter { !$0 }.count }
    }

    /// The process's one Genesys client for this OAuth client (token cache, rate budget).
    private var genesysClient: GenesysClient {
        GenesysClient.shared(
            configuration.genesys,
            limit: configuration.rateLimit,
            periodSeconds: configuration.ratePeriodSeconds,
            budgetStore: nil,
            logger: logger
        )
    }

    public var plannedChannels: Int { configuration.plan.channels.count }

    public var status: Status {
        let c = sessions.map { $0.counters.withLock { $0 } }
        return Status(
            connectedChannels: c.filter(\.connected).count,
            messages: c.reduce(0) { $0 + $1.messages },
            heartbeats: c.reduce(0) { $0 + $1.heartbeats },
            gaps: c.reduce(0) { $0 + $1.gaps },
            reconnects: c.reduce(0) { $0 + $1.reconnects },
            rotations: c.reduce(0) { $0 + $1.rotations },
            duplicates: c.reduce(0) { $0 + $1.duplicates },
            spoolRefused: output?.refused.withLock { $0 } ?? 0,
            pendingRecords: forwarder?.lag ?? 0,
            permitted: c.reduce(into: [:]) { all, session in all.merge(session.permitted) { $1 } }
        )
    }
}
