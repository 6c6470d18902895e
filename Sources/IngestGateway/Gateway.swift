import Dispatch
import IngestCore
import IngestCrypto
import IngestHTTP
import IngestKafka
import IngestSpool
import Logging
import Prometheus
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The ingest gateway: authenticates signed Genesys events, routes them to raw Kafka topics
/// untouched, and answers 202 only once the broker acknowledged the record.
///
/// Request handling runs on the HTTP server's event loops. Each loop has a ``LoopContext``
/// (its own keyed HMAC contexts and its own table of requests waiting for acknowledgements),
/// so the hot path takes no locks. Delivery reports arrive in batches on the producer's queue
/// and are handed to each loop with one hop per loop per batch.
public final class Gateway: HTTPRequestHandler, HTTPServerObserver, @unchecked Sendable {
    // @unchecked: `server`, `contexts` and `readinessTimer` are written once in `start()`
    // before any request or report can arrive and only read afterwards; the current producer
    // is behind a lock (LockedValue) (each LoopContext keeps its own confined reference); flags and
    // counters are atomics; stall tracking is confined to `readinessQueue`.

    public let configuration: GatewayConfiguration
    let logger: Logger
    let metrics: GatewayMetrics
    private let naming: TopicNaming
    private let sourcesByPath: [String: Int]
    private var server: HTTPServer?
    private let producerLock = LockedValue<KafkaProducer?>(nil)
    private var kafkaClient: KafkaClientConfiguration
    private let producerHealthy = Atomic<Bool>(true)
    private let stopping = Atomic<Bool>(false)
    /// Successful acknowledgements and failed deliveries (deadline passed, delivery error), for stall detection.
    private let acknowledgedCount = Atomic<Int>(0)
    private let failedCount = Atomic<Int>(0)
    /// Confined to `readinessQueue`.
    private var stall = StallTracker()
    private var consecutiveProbeFailures = 0
    /// Set once start-up has created the topics: from then on, a broker seen reachable again
    /// gets them created before the first record (on `readinessQueue`).
    private var ensuresTopicsOnReturn = false
    /// The admin client that creates the raw topics (at start, then on `readinessQueue`).
    private var topicAdmin: KafkaAdmin?

    private var contexts: [LoopContext] = []
    private let brokerReachable = Atomic<Bool>(false)
    private var readinessTimer: DispatchSourceTimer?
    private let readinessQueue = DispatchQueue(label: "genesys-ingest.gateway.readiness")
    private let inspector = EnvelopeInspector()
    let requestIDPrefix: String
    /// Spool mode: the log every accepted event is written to, and its forwarder to Kafka.
    private(set) var spool: SpoolLog?
    private var forwarder: SpoolForwarder?

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
        var properties = configuration.kafkaProperties
        // Back within a second of the broker: librdkafka's reconnect back-off grows to 10 s by
        // default, which kept 202s away for up to 9 s after an outage ended.
        for (key, value) in Self.reconnectDefaults where properties[key] == nil { properties[key] = value }
        self.kafkaClient = KafkaClientConfiguration(bootstrapServers: configuration.brokers, properties: properties)
    }

    /// librdkafka settings the gateway's clients get unless `INGEST_KAFKA_PROPERTIES` sets them.
    static let reconnectDefaults = ["reconnect.backoff.ms": "50", "reconnect.backoff.max.ms": "250"]

    /// The bound HTTP port (after ``start()``).
    public var port: Int { server?.port ?? 0 }

    /// Whether the broker answered the latest probe.
    public var isBrokerReachable: Bool { brokerReachable.load(ordering: .relaxed) }

    /// Whether the producer is delivering (not stalled since its last successful acknowledgement).
    public var isProducerHealthy: Bool { producerHealthy.load(ordering: .relaxed) }

    private var currentProducer: KafkaProducer? { producerLock.withLock { $0 } }

    /// Creates the producer, optionally the raw topics, and starts serving.
    /// - Returns: the bound port.
    @discardableResult
    public func start() throws -> Int {
        try LibrdkafkaVersion.check()
        // Process-wide: memory used by a burst of large bodies goes back when it is freed.
        HTTPServer.configureAllocatorForBursts()
        if configuration.createTopics { ensureTopics(kafkaClient) }
        if configuration.deliveryMode == .spool { try openSpool() }
        let producer = try makeProducer()
        producerLock.withLock { $0 = producer }
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(
                host: configuration.host,
                port: configuration.port,
                eventLoopCount: configuration.eventLoopCount,
                maxConnections: configuration.maxConnections,
                limits: .init(maxHeaderBytes: 16 * 1024, maxBodyBytes: configuration.maxBodyBytes),
                headerReadTimeout: .milliseconds(configuration.headerReadTimeoutMilliseconds),
                bodyReadTimeout: .milliseconds(configuration.bodyReadTimeoutMilliseconds),
                idleTimeout: .milliseconds(configuration.idleTimeoutMilliseconds),
                bodyBudgetBytes: configuration.bodyBudgetBytes,
                overBudgetRetryAfterSeconds: configuration.retryAfterSeconds
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
        try install(producer, replacing: nil)
        let reachable = producer.probeBroker(timeoutMilliseconds: 2000)
        consecutiveProbeFailures = reachable ? 0 : 1
        updateReadiness(reachable)
        ensuresTopicsOnReturn = true
        startReadinessProbe()
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
        stopping.store(true, ordering: .relaxed)
        await server?.shutdown(deadline: budget)
        readinessTimer?.cancel()
        // A producer replacement in progress finishes first; the topic admin client goes.
        readinessQueue.sync { topicAdmin = nil }
        if let spool {
            // Everything answered is on disk; what Kafka has not acknowledged yet stays in the
            // spool and is forwarded after the next start.
            spool.close()
            let forwarder = forwarder
            await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    forwarder?.stop()
                    continuation.resume()
                }
            }
            logger.info(
                "spool closed",
                metadata: ["spool.pending_records": "\(spool.durableSequence - spool.acknowledgedSequence)"]
            )
        }
        // The event loops are stopped now: flush's own polling serves the remaining reports.
        if let producer = currentProducer {
            let remaining = max(Duration.zero, budget - (clock.now - start))
            let ms = Int32(
                remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000
            )
            let flushed = await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    continuation.resume(returning: producer.flush(timeoutMilliseconds: max(ms, 100)))
                }
            }
            if !flushed {
                logger.warning(
                    "records still unacknowledged at shutdown",
                    metadata: ["kafka.outstanding": "\(producer.outstandingCount)"]
                )
            }
            producer.close()
        }
        logger.info("gateway stopped")
    }

    /// Opens (and recovers) the spool and starts forwarding it.
    private func openSpool() throws {
        var spoolConfiguration = SpoolConfiguration(directory: configuration.spoolDirectory)
        spoolConfiguration.maxBytes = configuration.spoolMaxBytes
        spoolConfiguration.segmentBytes = configuration.spoolSegmentBytes
        let spool = try SpoolLog(configuration: spoolConfiguration, logger: logger) { [weak self] tokens, error in
            self?.routeDurable(tokens, error)
        }
        let r = spool.recovery
        metrics.spoolCorruptBytes.record(r.corruptBytes)
        logger.info(
            "spool opened",
            metadata: [
                "spool.dir": "\(configuration.spoolDirectory)", "spool.pending_records": "\(r.pendingRecords)",
                "spool.torn_bytes": "\(r.tornBytes)", "spool.quarantined": "\(r.quarantinedSegments)",
            ]
        )
        let forwarder = SpoolForwarder(log: spool, kafka: kafkaClient, logger: logger)
        forwarder.start()
        self.spool = spool
        self.forwarder = forwarder
    }

    /// On the spool's writer thread: a batch is durable (or failed); each loop answers its part.
    private func routeDurable(_ tokens: [UInt64], _ error: SpoolError?) {
        forwarder?.notify()
        var byLoop = Array(repeating: [UInt64](), count: contexts.count)
        for t in tokens {
            let loop = Int(t >> 48) - 1
            if loop >= 0 && loop < byLoop.count { byLoop[loop].append(t) }
        }
        for (i, part) in byLoop.enumerated() where !part.isEmpty {
            let context = contexts[i]
            context.loop.queue.async { context.completeDurable(part, error: error) }
        }
    }

    /// Why spool mode cannot take events now, if it cannot.
    var spoolProblem: String? {
        guard let spool else { return nil }
        if let e = spool.writeError { return "spool write failing: \(e)" }
        let s = spool.stats
        if s.bytes >= configuration.spoolMaxBytes * 95 / 100 { return "spool nearly full (\(s.bytes) bytes)" }
        return nil
    }

    private func ensureTopics(_ kafka: KafkaClientConfiguration) {
        let specs = naming.allTopics.map {
            KafkaAdmin.TopicSpec(
                name: $0,
                partitions: Int32(configuration.topicPartitions),
                replicationFactor: Int32(configuration.topicReplicationFactor)
            )
        }
        if topicAdmin == nil { topicAdmin = try? KafkaAdmin(configuration: kafka) }
        if let topicAdmin {
            topicAdmin.ensureTopics(specs, logger: logger)
        } else {
            KafkaAdmin.ensureTopics(specs, kafka: kafka, logger: logger)
        }
    }

    private func startReadinessProbe() {
        let timer = DispatchSource.makeTimerSource(queue: readinessQueue)
        timer.schedule(deadline: .now() + .seconds(1), repeating: .seconds(1))
        timer.setEventHandler { [weak self] in self?.checkHealth() }
        readinessTimer = timer
        timer.resume()
    }

    /// On `readinessQueue`, every second: probe the broker and look for a stalled producer —
    /// deliveries failing with none succeeding for `producerStallMilliseconds` while the broker
    /// answers (e.g. the cluster lost the idempotent producer's state). A stalled or fatally
    /// failed producer is replaced; requests meanwhile get 503s and `/readyz` says why.
    private func checkHealth() {
        guard !stopping.load(ordering: .relaxed), let producer = currentProducer else { return }
        if let spool, let forwarder {
            let s = spool.stats
            metrics.spoolBytes.record(s.bytes)
            metrics.spoolSegments.record(s.segments)
            metrics.spoolSyncs.record(s.syncs)
            metrics.spoolPendingRecords.record(Int(s.durableSequence - s.acknowledgedSequence))
            metrics.spoolResends.record(forwarder.resends.withLock { $0 })
        }
        if let budget = server?.bodyBudget {
            metrics.bodyBudgetUsed.record(budget.usedBytes)
            metrics.bodyBudgetRefused.record(budget.refusedCount)
        }
        let reachable = producer.probeBroker(timeoutMilliseconds: 900)
        updateReadiness(reachable)
        if !brokerReachable.load(ordering: .relaxed) { probeUntilReachable(producer) }
        let now = DispatchTime.now().uptimeNanoseconds
        let verdict = stall.observe(
            acknowledged: acknowledgedCount.load(ordering: .relaxed),
            failed: failedCount.load(ordering: .relaxed),
            now: now,
            threshold: UInt64(configuration.producerStallMilliseconds) * 1_000_000
        )
        producerHealthy.store(verdict != .stalled, ordering: .relaxed)
        if verdict == .stalled && reachable {
            replaceProducer(
                reason: "no acknowledgement for \(configuration.producerStallMilliseconds) ms while the broker answers"
            )
        }
    }

    private func makeProducer() throws(KafkaError) -> KafkaProducer {
        try KafkaProducer(
            configuration: kafkaClient,
            logger: logger,
            reportDriver: .external,
            onDeliveryReports: { [weak self] reports in self?.routeDeliveryReports(reports) },
            onError: { [weak self] error in self?.clientError(error) }
        )
    }

    /// Makes `producer` the one every loop uses. Delivery reports are drained on loop 0, inside
    /// its epoll batch: no thread hop for loop 0's requests, one hop per batch for each other loop.
    private func install(_ producer: KafkaProducer, replacing old: KafkaProducer?) throws {
        let reportLoop = contexts[0].loop
        try reportLoop.queue.sync {
            if let old {
                reportLoop.unwatch(fileDescriptor: old.eventFileDescriptor)
                // Purged records report failure now; their requests (if still waiting) get 503s.
                old.purgeOutstanding()
                old.pollEvents()
            }
            try reportLoop.watch(fileDescriptor: producer.eventFileDescriptor) { [unowned producer] in
                producer.pollEvents()
            }
        }
        for context in contexts {
            context.loop.queue.sync { context.producer = producer }
        }
    }

    /// On `readinessQueue`: swaps in a fresh producer (new producer id) and destroys the old one.
    private func replaceProducer(reason: String) {
        guard !stopping.load(ordering: .relaxed), let old = currentProducer else { return }
        logger.warning("replacing the Kafka producer", metadata: ["reason": "\(reason)"])
        do {
            let fresh = try makeProducer()
            try install(fresh, replacing: old)
            producerLock.withLock { $0 = fresh }
            old.close()
            metrics.producerRestarts.increment()
            stall = StallTracker()
            producerHealthy.store(true, ordering: .relaxed)
        } catch {
            logger.error("cannot create a new Kafka producer", metadata: ["error": "\(error)"])
        }
    }

    /// On `readinessQueue`, while the broker is unreachable: probes again and again (each probe
    /// waits up to 250 ms for an answer) instead of once a second, so 202s resume as soon as the
    /// broker answers — at most one second of probing before the next health check.
    private func probeUntilReachable(_ producer: KafkaProducer) {
        dispatchPrecondition(condition: .onQueue(readinessQueue))
        let until = DispatchTime.now() + .milliseconds(900)
        while !stopping.load(ordering: .relaxed) && !brokerReachable.load(ordering: .relaxed)
            && DispatchTime.now() < until
        {
            updateReadiness(producer.probeBroker(timeoutMilliseconds: 250))
        }
    }

    /// Records a probe result (on `readinessQueue`, or during start-up before the timer runs).
    /// The broker counts as unreachable after two failed probes in a row, so one dropped
    /// connection (librdkafka reports "all brokers down" while it reconnects) fails no request.
    private func updateReadiness(_ probeSucceeded: Bool) {
        consecutiveProbeFailures = probeSucceeded ? 0 : consecutiveProbeFailures + 1
        let reachable = probeSucceeded || consecutiveProbeFailures < 2
        if reachable && !brokerReachable.load(ordering: .relaxed) && configuration.createTopics && ensuresTopicsOnReturn
        {
            // After an outage (or a start without a broker): it may have come back without its topics (a fresh
            // cluster, memory storage): create them before the first record goes to it, with
            // the configured partitions rather than whatever auto-creation would pick.
            ensureTopics(kafkaClient)
        }
        let was = brokerReachable.exchange(reachable, ordering: .relaxed)
        metrics.brokerUp.record(reachable ? 1 : 0)
        if was && !reachable && ensuresTopicsOnReturn {
            // Records still queued would go out the moment the broker is back — before the
            // topics are checked (a producer's metadata request auto-creates a missing topic
            // with the broker's default partitions) and through an idempotent producer whose
            // state a restarted broker may have lost (it then stalls for seconds). Their
            // requests have no 202 and get 503; a fresh producer starts clean.
            replaceProducer(reason: "broker unreachable: queued records dropped, their requests answered 503")
        }
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
        if error.isFatal {
            // librdkafka: a producer that raised a fatal error must be replaced.
            readinessQueue.async { [weak self] in self?.replaceProducer(reason: "fatal error: \(error.message)") }
            return
        }
        // librdkafka reports "all brokers down" on transient disconnects too: check at once
        // rather than failing requests on the strength of one event.
        if error.isAllBrokersDown {
            readinessQueue.async { [weak self] in
                guard let self, let producer = self.currentProducer else { return }
                self.updateReadiness(producer.probeBroker(timeoutMilliseconds: 500))
            }
        }
    }

    /// On loop 0's queue: split a batch of reports by loop, complete loop 0's at once and hand
    /// each other loop its part in one hop.
    private func routeDeliveryReports(_ reports: [DeliveryReport]) {
        var byLoop = Array(repeating: [DeliveryReport](), count: contexts.count)
        var acknowledged = 0
        for r in reports {
            if r.error == nil { acknowledged += 1 }
            let loop = Int(r.token >> 48) - 1
            if loop >= 0 && loop < byLoop.count { byLoop[loop].append(r) }
        }
        if acknowledged > 0 { acknowledgedCount.add(acknowledged, ordering: .relaxed) }
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
            if spool != nil {
                // Spool mode: ready while the spool takes events, whatever Kafka is doing.
                if let problem = spoolProblem {
                    respond(
                        responder,
                        .json(
                            .serviceUnavailable,
                            "{\"status\":\"not ready\",\"reason\":\(JSONString.quote(problem))}"
                        ),
                        source: GatewayMetrics.noSource
                    )
                } else {
                    respond(
                        responder,
                        .json(.ok, "{\"status\":\"ready\",\"mode\":\"spool\"}"),
                        source: GatewayMetrics.noSource
                    )
                }
            } else if !isBrokerReachable || !isProducerHealthy {
                let reason = isBrokerReachable ? "producer not delivering" : "broker unreachable"
                respond(
                    responder,
                    .json(.serviceUnavailable, "{\"status\":\"not ready\",\"reason\":\"\(reason)\"}"),
                    source: GatewayMetrics.noSource
                )
            } else {
                respond(responder, .json(.ok, "{\"status\":\"ready\"}"), source: GatewayMetrics.noSource)
            }
        case "/metrics":
            guard request.method == "GET" else {
                return respond(responder, .methodNotAllowed(allow: "GET"), source: GatewayMetrics.noSource)
            }
            let body = metrics.registry.emitToBuffer()
            respond(
                responder,
                HTTPResponse(
                    status: .ok,
                    headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                    body: body
                ),
                source: GatewayMetrics.noSource
            )
        default:
            guard let sourceIndex = sourcesByPath[path] else {
                return respond(
                    responder,
                    .error(.notFound, "no event source at \(path)"),
                    source: GatewayMetrics.noSource
                )
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
    /// Called by loop contexts when a request's record was not acknowledged in time or failed.
    func noteDeliveryFailure() { failedCount.add(1, ordering: .relaxed) }
    var envelopeInspector: EnvelopeInspector { inspector }
    func topic(for family: TopicFamily) -> String { naming.topic(for: family) }
}

extension HTTPResponse {
    static func methodNotAllowed(allow: String) -> HTTPResponse {
        .error(.methodNotAllowed, "method not allowed", headers: [("Allow", allow)])
    }
}

/// Detects a producer that stopped delivering: failures keep coming, no acknowledgement since
/// the first of them, for longer than a threshold.
struct StallTracker {
    enum Verdict { case healthy, suspect, stalled }

    private var lastAcknowledged = 0
    private var lastFailed = 0
    private var failingSince: UInt64?

    mutating func observe(acknowledged: Int, failed: Int, now: UInt64, threshold: UInt64) -> Verdict {
        defer {
            lastAcknowledged = acknowledged
            lastFailed = failed
        }
        if acknowledged > lastAcknowledged {
            failingSince = nil
            return .healthy
        }
        if failed > lastFailed && failingSince == nil { failingSince = now }
        guard let since = failingSince else { return .healthy }
        return now - since >= threshold ? .stalled : .suspect
    }
}
