import Dispatch
import IngestCore
import IngestCrypto
import IngestHTTP
import IngestKafka
import Logging
import Prometheus
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Kafka header names the gateway writes on every record.
public enum IngestHeader {
    public static let contentType = "content-type"
    public static let receivedAt = "ingest-received-at"
    public static let source = "ingest-source"
    public static let requestID = "ingest-request-id"
    public static let keyID = "ingest-key-id"
    public static let topicName = "genesys-topic-name"
    public static let eventID = "genesys-event-id"
}

/// The ingest gateway: authenticates signed Genesys events, routes them to raw Kafka topics
/// untouched, and answers 202 only once the broker acknowledged the record.
///
/// Request handling runs on the HTTP server's event loops. Each loop has a ``LoopContext``
/// (its own keyed HMAC contexts and its own table of requests waiting for acknowledgements),
/// so the hot path takes no locks. Delivery reports arrive in batches on the producer's queue
/// and are handed to each loop with one hop per loop per batch.
public final class Gateway: HTTPRequestHandler, HTTPServerObserver, @unchecked Sendable {
    // @unchecked: `server`, `producer`, `contexts` and `readinessTimer` are written once in
    // `start()` before any request or report can arrive and only read afterwards; each
    // LoopContext is confined to its loop's queue; flags are atomics.

    public let configuration: GatewayConfiguration
    let logger: Logger
    let metrics: GatewayMetrics
    private let naming: TopicNaming
    private let sourcesByPath: [String: Int]
    private var server: HTTPServer?
    private var producer: KafkaProducer?
    private var contexts: [LoopContext] = []
    private let brokerReachable = Atomic<Bool>(false)
    private var readinessTimer: DispatchSourceTimer?
    private let readinessQueue = DispatchQueue(label: "genesys-ingest.gateway.readiness")
    private let inspector = EnvelopeInspector()
    let requestIDPrefix: String

    /// - Parameter registry: where metrics are registered (a fresh one by default).
    public init(
        configuration: GatewayConfiguration,
        logger: Logger,
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()
    ) throws(ConfigurationError) {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        self.metrics = GatewayMetrics(sources: configuration.sources.map(\.name), registry: registry)
        self.naming = TopicNaming(prefix: configuration.topicPrefix)
        var byPath: [String: Int] = [:]
        for (i, s) in configuration.sources.enumerated() { byPath[s.path] = i }
        self.sourcesByPath = byPath
        self.requestIDPrefix = ByteEncoding.encodeHex(SecureRandom.bytes(6))
    }

    /// The bound HTTP port (after ``start()``).
    public var port: Int { server?.port ?? 0 }

    /// Whether the broker answered the latest probe.
    public var isBrokerReachable: Bool { brokerReachable.load(ordering: .relaxed) }

    /// Creates the producer, optionally the raw topics, and starts serving.
    /// - Returns: the bound port.
    @discardableResult
    public func start() throws -> Int {
        try LibrdkafkaVersion.check()
        let kafka = KafkaClientConfiguration(bootstrapServers: configuration.brokers, properties: configuration.kafkaProperties)
        if configuration.createTopics { ensureTopics(kafka) }
        let producer = try KafkaProducer(
            configuration: kafka,
            logger: logger,
            reportDriver: .external,
            onDeliveryReports: { [weak self] reports in self?.routeDeliveryReports(reports) },
            onError: { [weak self] error in self?.clientError(error) }
        )
        self.producer = producer
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(
                host: configuration.host,
                port: configuration.port,
                eventLoopCount: configuration.eventLoopCount,
                maxConnections: configuration.maxConnections,
                limits: .init(maxHeaderBytes: 16 * 1024, maxBodyBytes: configuration.maxBodyBytes),
                headerReadTimeout: .milliseconds(configuration.headerReadTimeoutMilliseconds),
                bodyReadTimeout: .milliseconds(configuration.bodyReadTimeoutMilliseconds),
                idleTimeout: .milliseconds(configuration.idleTimeoutMilliseconds)
            ),
            handler: self,
            observer: self,
            logger: logger
        )
        self.server = server
        contexts = try server.loops.map { loop in try LoopContext(gateway: self, loop: loop) }
        for context in contexts {
            context.loop.queue.sync {
                context.loop.scheduleRepeating(every: .milliseconds(50)) { context.expireDeadlines() }
            }
        }
        // Delivery reports are drained on loop 0, inside its epoll batch: no thread hop for
        // loop 0's requests, one hop per batch for each other loop.
        let reportLoop = server.loops[0]
        try reportLoop.queue.sync {
            try reportLoop.watch(fileDescriptor: producer.eventFileDescriptor) { [unowned producer] in producer.pollEvents() }
        }
        updateReadiness(producer.probeBroker(timeoutMilliseconds: 2000))
        startReadinessProbe(producer)
        let port = try server.start()
        logger.info(
            "gateway started",
            metadata: [
                "kafka.brokers": "\(configuration.brokers)", "http.port": "\(port)",
                "gateway.sources": "\(configuration.sources.map { "\($0.name)=\($0.path) (\($0.scheme.rawValue))" })",
                "librdkafka.version": "\(LibrdkafkaVersion.runtime)",
            ]
        )
        return port
    }

    /// Graceful stop: refuse new connections, finish in-flight requests, wait for outstanding
    /// acknowledgements (up to the shutdown timeout), flush and close the producer.
    public func shutdown() async {
        let budget = Duration.milliseconds(configuration.shutdownTimeoutMilliseconds)
        let clock = ContinuousClock()
        let start = clock.now
        logger.info("gateway stopping")
        await server?.shutdown(deadline: budget)
        readinessTimer?.cancel()
        // The event loops are stopped now: flush's own polling serves the remaining reports.
        if let producer {
            let remaining = max(Duration.zero, budget - (clock.now - start))
            let ms = Int32(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000)
            let flushed = await withCheckedContinuation { continuation in
                DispatchQueue.global().async { continuation.resume(returning: producer.flush(timeoutMilliseconds: max(ms, 100))) }
            }
            if !flushed {
                logger.warning("records still unacknowledged at shutdown", metadata: ["kafka.outstanding": "\(producer.outstandingCount)"])
            }
            producer.close()
        }
        logger.info("gateway stopped")
    }

    private func ensureTopics(_ kafka: KafkaClientConfiguration) {
        do {
            let admin = try KafkaAdmin(configuration: kafka)
            let specs = naming.allTopics.map {
                KafkaAdmin.TopicSpec(
                    name: $0, partitions: Int32(configuration.topicPartitions),
                    replicationFactor: Int32(configuration.topicReplicationFactor))
            }
            let created = try admin.createTopics(specs, timeoutMilliseconds: 5000)
            if !created.isEmpty { logger.info("created raw topics", metadata: ["kafka.topics": "\(created)"]) }
        } catch {
            logger.warning(
                "could not ensure raw topics exist; they will be auto-created if the broker allows it",
                metadata: ["error": "\(error)"])
        }
    }

    private func startReadinessProbe(_ producer: KafkaProducer) {
        let timer = DispatchSource.makeTimerSource(queue: readinessQueue)
        timer.schedule(deadline: .now() + .seconds(1), repeating: .seconds(1))
        timer.setEventHandler { [weak self, unowned producer] in
            self?.updateReadiness(producer.probeBroker(timeoutMilliseconds: 900))
        }
        readinessTimer = timer
        timer.resume()
    }

    private func updateReadiness(_ reachable: Bool) {
        let was = brokerReachable.exchange(reachable, ordering: .relaxed)
        metrics.brokerUp.record(reachable ? 1 : 0)
        if was != reachable {
            if reachable {
                logger.info("broker reachable")
            } else {
                logger.warning("broker unreachable", metadata: ["kafka.brokers": "\(configuration.brokers)"])
            }
        }
    }

    private func clientError(_ error: KafkaError) {
        metrics.countBrokerError("client_error")
        if error.isAllBrokersDown { updateReadiness(false) }
    }

    /// On loop 0's queue: split a batch of reports by loop, complete loop 0's at once and hand
    /// each other loop its part in one hop.
    private func routeDeliveryReports(_ reports: [DeliveryReport]) {
        var byLoop = Array(repeating: [DeliveryReport](), count: contexts.count)
        for r in reports {
            let loop = Int(r.token >> 48) - 1
            if loop >= 0 && loop < byLoop.count { byLoop[loop].append(r) }
        }
        for (i, batch) in byLoop.enumerated() where !batch.isEmpty {
            let context = contexts[i]
            if i == 0 {
                context.complete(batch)
            } else {
                context.loop.execute { context.complete(batch) }
            }
        }
    }

    // MARK: - HTTPRequestHandler (on event-loop queues)

    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let context = contexts[responder.loop.index]
        let path = String(request.path)
        switch path {
        case "/healthz":
            guard request.method == "GET" || request.method == "HEAD" else {
                return respond(responder, .methodNotAllowed(allow: "GET, HEAD"), source: GatewayMetrics.noSource)
            }
            respond(responder, .json(.ok, "{\"status\":\"ok\"}"), source: GatewayMetrics.noSource)
        case "/readyz":
            guard request.method == "GET" || request.method == "HEAD" else {
                return respond(responder, .methodNotAllowed(allow: "GET, HEAD"), source: GatewayMetrics.noSource)
            }
            if isBrokerReachable {
                respond(responder, .json(.ok, "{\"status\":\"ready\"}"), source: GatewayMetrics.noSource)
            } else {
                respond(
                    responder,
                    .json(.serviceUnavailable, "{\"status\":\"not ready\",\"reason\":\"broker unreachable\"}"),
                    source: GatewayMetrics.noSource)
            }
        case "/metrics":
            guard request.method == "GET" else {
                return respond(responder, .methodNotAllowed(allow: "GET"), source: GatewayMetrics.noSource)
            }
            let body = metrics.registry.emitToBuffer()
            respond(
                responder,
                HTTPResponse(status: .ok, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: body),
                source: GatewayMetrics.noSource)
        default:
            guard let sourceIndex = sourcesByPath[path] else {
                return respond(responder, .error(.notFound, "no event source at \(path)"), source: GatewayMetrics.noSource)
            }
            context.ingest(request, source: sourceIndex, responder: responder)
        }
    }

    public func serverResponded(status: HTTPStatus) {
        metrics.countRequest(source: GatewayMetrics.noSource, status: status.code, bodyBytes: 0)
    }

    func respond(_ responder: HTTPResponder, _ response: HTTPResponse, source: String, bodyBytes: Int = 0) {
        metrics.countRequest(source: source, status: response.status.code, bodyBytes: bodyBytes)
        responder.respond(response)
    }

    // MARK: - Accessors for LoopContext

    var sources: [SourceConfiguration] { configuration.sources }
    var kafkaProducer: KafkaProducer? { producer }
    var envelopeInspector: EnvelopeInspector { inspector }
    func topic(for family: TopicFamily) -> String { naming.topic(for: family) }
}

extension HTTPResponse {
    static func methodNotAllowed(allow: String) -> HTTPResponse {
        .error(.methodNotAllowed, "method not allowed", headers: [("Allow", allow)])
    }
}
