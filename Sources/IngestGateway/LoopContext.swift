import Dispatch
import IngestCore
import IngestCrypto
import IngestHTTP
import IngestKafka
import IngestSpool

#if canImport(Glibc)
import Glibc
#endif

/// The gateway's per-event-loop state.
///
/// **Confinement:** every member is confined to `loop.queue`: authenticators hold keyed
/// `EVP_MAC_CTX`s that must not be shared between threads, and `pending` is the table of
/// requests waiting for their broker acknowledgement.
final class LoopContext: @unchecked Sendable {
    // @unchecked: confined to `loop.queue` (see above); it is only captured to hop onto that queue.
    private struct Pending {
        var responder: HTTPResponder
        var source: Int
        var requestID: String
        var bodyBytes: Int
        var startedAt: UInt64
        var deadline: UInt64
    }

    let loop: EventLoop
    /// The producer this loop produces with (replaced by the gateway when one stalls).
    var producer: KafkaProducer?
    private unowned let gateway: Gateway
    private let authenticators: [RequestAuthenticator]
    private var pending: [UInt64: Pending] = [:]
    /// Tokens in creation order; deadlines are monotonic, so expiry scans from the front.
    private var tokenOrder: [UInt64] = []
    private var tokenOrderHead = 0
    private var nextCounter: UInt64 = 1
    private let tokenBase: UInt64
    private let requestIDPrefix: String
    private let deadlineNanos: UInt64
    private let retryAfter: String

    init(gateway: Gateway, loop: EventLoop) throws {
        self.gateway = gateway
        self.loop = loop
        self.tokenBase = UInt64(loop.index + 1) << 48
        self.requestIDPrefix = "\(gateway.requestIDPrefix)-\(loop.index)-"
        self.deadlineNanos = UInt64(gateway.configuration.ackDeadlineMilliseconds) * 1_000_000
        self.retryAfter = String(gateway.configuration.retryAfterSeconds)
        var authenticators: [RequestAuthenticator] = []
        for source in gateway.configuration.sources {
            var failure: Error?
            let authenticator = RequestAuthenticator(
                scheme: source.scheme,
                secrets: source.secrets,
                apiKeyHeader: source.apiKeyHeader,
                webhookToleranceSeconds: source.webhookToleranceSeconds
            ) { key in
                do { return try OpenSSLHMACSHA256(key: key) } catch {
                    failure = error
                    return FailingHMAC()
                }
            }
            if let failure { throw failure }
            authenticators.append(authenticator)
        }
        self.authenticators = authenticators
    }

    /// Authenticates, inspects and produces one event; the response follows the broker's ack.
    func ingest(_ request: HTTPRequest, source index: Int, responder: HTTPResponder) {
        dispatchPrecondition(condition: .onQueue(loop.queue))
        let source = gateway.sources[index]
        let name = source.name
        let bodyBytes = request.body.count
        guard request.method == "POST" else {
            return gateway.respond(responder, .methodNotAllowed(allow: "POST"), source: name)
        }
        let now = Self.wallClock()
        let keyID: String
        switch authenticators[index].verify(headers: request.headers, body: request.body, nowSeconds: now.seconds) {
        case .success(let id):
            keyID = id
        case .failure(let failure):
            gateway.metrics.countAuthFailure(source: name, reason: failure.reason)
            return gateway.respond(
                responder,
                .json(
                    .unauthorized,
                    "{\"error\":\(JSONString.quote(failure.message)),\"reason\":\"\(failure.reason)\"}"
                ),
                source: name
            )
        }
        let info: EnvelopeInfo
        do { info = try gateway.envelopeInspector.inspect(request.body) } catch {
            return gateway.respond(
                responder,
                .error(.badRequest, error.description),
                source: name,
                bodyBytes: bodyBytes
            )
        }
        let counter = nextCounter
        nextCounter += 1
        let requestID = requestIDPrefix + String(counter, radix: 16)
        if info.isHeartbeat {
            gateway.metrics.heartbeatsDropped.increment()
            return gateway.respond(
                responder,
                .json(.accepted, "{\"status\":\"ignored\",\"reason\":\"heartbeat\",\"requestId\":\"\(requestID)\"}"),
                source: name,
                bodyBytes: bodyBytes
            )
        }
        if let spool = gateway.spool {
            return spoolEvent(
                request,
                info: info,
                spool: spool,
                source: index,
                keyID: keyID,
                requestID: requestID,
                counter: counter,
                receivedAt: now.milliseconds,
                responder: responder
            )
        }
        guard gateway.isBrokerReachable, let producer else {
            gateway.metrics.countBrokerError("broker_unreachable")
            return gateway.respond(
                responder,
                unavailable("broker unreachable", requestID),
                source: name,
                bodyBytes: bodyBytes
            )
        }
        let headers = recordHeaders(
            request,
            info: info,
            source: name,
            keyID: keyID,
            requestID: requestID,
            receivedAt: now.milliseconds
        )
        let token = tokenBase | counter
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            try producer.produce(
                topic: gateway.topic(for: info.family),
                key: info.key.map { Array($0.utf8) },
                value: request.body,
                headers: headers,
                token: token
            )
        } catch {
            gateway.metrics.countBrokerError(error.isQueueFull ? "queue_full" : "client_error")
            gateway.logger.warning(
                "produce refused",
                metadata: ["request.id": "\(requestID)", "kafka.error": "\(error.message)"]
            )
            let reason = error.isQueueFull ? "producer queue full" : "broker unavailable"
            return gateway.respond(responder, unavailable(reason, requestID), source: name, bodyBytes: bodyBytes)
        }
        pending[token] = Pending(
            responder: responder,
            source: index,
            requestID: requestID,
            bodyBytes: bodyBytes,
            startedAt: started,
            deadline: started + deadlineNanos
        )
        tokenOrder.append(token)
        gateway.metrics.inFlight.increment()
    }

    /// The record headers of an accepted event (the same in both delivery modes).
    private func recordHeaders(
        _ request: HTTPRequest,
        info: EnvelopeInfo,
        source: String,
        keyID: String,
        requestID: String,
        receivedAt: Int64
    ) -> [KafkaHeader] {
        RawEventHeaders.make(
            info: info,
            contentType: request.headers["content-type"] ?? "application/json",
            receivedAt: receivedAt,
            source: source,
            requestID: requestID,
            keyID: keyID
        ).map { KafkaHeader(name: $0.name, value: $0.value) }
    }

    /// Spool mode: writes the event to the spool; the 202 follows the sync that covers it.
    private func spoolEvent(
        _ request: HTTPRequest,
        info: EnvelopeInfo,
        spool: SpoolLog,
        source index: Int,
        keyID: String,
        requestID: String,
        counter: UInt64,
        receivedAt: Int64,
        responder: HTTPResponder
    ) {
        let name = gateway.sources[index].name
        let bodyBytes = request.body.count
        let headers = recordHeaders(
            request,
            info: info,
            source: name,
            keyID: keyID,
            requestID: requestID,
            receivedAt: receivedAt
        )
        let token = tokenBase | counter
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            try spool.append(
                SpoolRecord(
                    topic: gateway.topic(for: info.family),
                    key: info.key.map { Array($0.utf8) },
                    value: request.body,
                    headers: headers.map { ($0.name, $0.value) }
                ),
                token: token
            )
        } catch {
            let full: Bool
            if case .full = error { full = true } else { full = false }
            gateway.metrics.countBrokerError(full ? "spool_full" : "spool_write_failed")
            return gateway.respond(
                responder,
                unavailable(error.description, requestID),
                source: name,
                bodyBytes: bodyBytes
            )
        }
        pending[token] = Pending(
            responder: responder,
            source: index,
            requestID: requestID,
            bodyBytes: bodyBytes,
            startedAt: started,
            deadline: started + deadlineNanos
        )
        tokenOrder.append(token)
        gateway.metrics.inFlight.increment()
    }

    /// Spool mode: answers the requests whose records are on disk (202) or failed to be (503).
    func completeDurable(_ tokens: [UInt64], error: SpoolError?) {
        dispatchPrecondition(condition: .onQueue(loop.queue))
        let now = DispatchTime.now().uptimeNanoseconds
        for token in tokens {
            guard let p = pending.removeValue(forKey: token) else { continue }  // already answered 503
            gateway.metrics.inFlight.decrement()
            if let error {
                gateway.metrics.countBrokerError("spool_write_failed")
                gateway.logger.warning(
                    "spool write failed",
                    metadata: ["request.id": "\(p.requestID)", "error": "\(error)"]
                )
                answer(p, unavailable(error.description, p.requestID))
            } else {
                gateway.metrics.spoolSyncLatency.recordNanoseconds(Int64(now &- p.startedAt))
                answer(p, accepted(p.requestID))
            }
        }
        compactTokenOrder()
    }

    /// Answers a waiting request (its source and body size go to the metrics).
    private func answer(_ p: Pending, _ response: HTTPResponse) {
        gateway.respond(p.responder, response, source: gateway.sources[p.source].name, bodyBytes: p.bodyBytes)
    }

    private func accepted(_ requestID: String) -> HTTPResponse {
        .json(.accepted, "{\"status\":\"accepted\",\"requestId\":\"\(requestID)\"}")
    }

    /// Answers the requests whose records were acknowledged (or failed).
    func complete(_ reports: [DeliveryReport]) {
        dispatchPrecondition(condition: .onQueue(loop.queue))
        let now = DispatchTime.now().uptimeNanoseconds
        for report in reports {
            guard let p = pending.removeValue(forKey: report.token) else { continue }  // already answered 503
            gateway.metrics.inFlight.decrement()
            if let error = report.error {
                gateway.noteDeliveryFailure()
                gateway.metrics.countBrokerError("delivery_failed")
                gateway.logger.warning(
                    "delivery failed",
                    metadata: ["request.id": "\(p.requestID)", "kafka.error": "\(error.message)"]
                )
                answer(p, unavailable("broker did not acknowledge", p.requestID))
            } else {
                gateway.metrics.produceLatency.recordNanoseconds(Int64(now &- p.startedAt))
                answer(p, accepted(p.requestID))
            }
        }
        compactTokenOrder()
    }

    /// Answers 503 to requests whose acknowledgement did not come within the deadline. The
    /// record may still be delivered later (at-least-once; consumers deduplicate).
    func expireDeadlines() {
        dispatchPrecondition(condition: .onQueue(loop.queue))
        let now = DispatchTime.now().uptimeNanoseconds
        while tokenOrderHead < tokenOrder.count {
            let token = tokenOrder[tokenOrderHead]
            guard let p = pending[token] else {
                tokenOrderHead += 1
                continue
            }
            if p.deadline > now { break }
            tokenOrderHead += 1
            pending[token] = nil
            gateway.metrics.inFlight.decrement()
            gateway.metrics.countBrokerError("deadline_exceeded")
            gateway.noteDeliveryFailure()
            answer(p, unavailable("broker acknowledgement deadline passed", p.requestID))
        }
        compactTokenOrder()
    }

    private func compactTokenOrder() {
        while tokenOrderHead < tokenOrder.count, pending[tokenOrder[tokenOrderHead]] == nil { tokenOrderHead += 1 }
        if tokenOrderHead == tokenOrder.count {
            tokenOrder.removeAll(keepingCapacity: true)
            tokenOrderHead = 0
        } else if tokenOrderHead > 4096 {
            tokenOrder.removeFirst(tokenOrderHead)
            tokenOrderHead = 0
        }
    }

    private func unavailable(_ reason: String, _ requestID: String) -> HTTPResponse {
        .json(
            .serviceUnavailable,
            "{\"error\":\(JSONString.quote(reason)),\"requestId\":\"\(requestID)\"}",
            headers: [("Retry-After", retryAfter)]
        )
    }

    static func wallClock() -> (seconds: Int64, milliseconds: Int64) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int64(ts.tv_sec), Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }
}

/// Stands in when OpenSSL could not build a context; never matches (start-up then fails anyway).
private final class FailingHMAC: HMACSHA256 {
    func authenticationCode(_ parts: [UnsafeRawBufferPointer]) -> [UInt8] { [] }
}
