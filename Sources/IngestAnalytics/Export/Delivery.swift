import Foundation
import IngestCore
import IngestHTTPClient
import Logging

/// How an HTTP delivery attempt ended, and what to do next.
enum DeliveryVerdict: Equatable {
    case delivered
    /// Try again after this many seconds (429 with `Retry-After`, 5xx, connection failure).
    case retry(after: Double)
    /// The receiver refused it for good (4xx other than 429): retrying cannot help.
    case refused(String)

    /// Classifies a response: 2xx delivered; 429 honours `Retry-After` (seconds, default
    /// `backoff`); 408/5xx and transport errors back off; other statuses are refusals.
    static func classify(status: Int?, retryAfter: String?, body: Data, backoff: Double) -> DeliveryVerdict {
        guard let status else { return .retry(after: backoff) }
        switch status {
        case 200..<300: return .delivered
        case 429:
            // Checked: a NaN or infinite Retry-After must neither trap nor stall delivery.
            let seconds = ResponseHeaderNumbers.retryAfterSeconds(retryAfter) ?? backoff
            return .retry(after: min(seconds, 300))
        case 408, 500...599: return .retry(after: backoff)
        default:
            return .refused("HTTP \(status): \(String(decoding: body.prefix(300), as: UTF8.self))")
        }
    }
}

/// One POST through the process's HTTP client; `nil` status means no response came back.
func post(
    _ http: HTTPClient,
    url: URL,
    body: Data,
    headers: [String: String]
) async -> (status: Int?, retryAfter: String?, body: Data, error: String?) {
    let request = HTTPClientRequest(
        method: "POST",
        url: url.absoluteString,
        headers: headers.map { ($0.key, $0.value) },
        body: Array(body),
        timeoutMilliseconds: 10_000
    )
    do {
        let response = try await http.execute(request)
        return (response.status, response.header("Retry-After"), Data(response.body), nil)
    } catch {
        return (nil, nil, Data(), "\(error)")
    }
}

/// Sends PagerDuty Events API v2 events (`trigger`/`resolve` with a stable `dedup_key`), one
/// at a time in order, retrying 429 (honouring `Retry-After`) and 5xx with back-off. Events
/// wait in a bounded queue; a notifier that cannot reach PagerDuty never blocks analytics.
public actor PagerDutyNotifier {
    public struct Event: Sendable, Equatable {
        public var transition: AlertTransition
        public var severity: String
        public var summary: String
        public var details: [String: String]
    }

    let url: URL
    let routingKey: String
    let source: String
    let logger: Logger
    let metrics: AnalyticsMetrics
    let maxAttempts: Int
    let baseBackoff: Double
    private let http: HTTPClient
    private var queue: [Event] = []
    private var sending = false
    private let capacity = 10_000

    public init(
        url: URL,
        routingKey: String,
        source: String,
        metrics: AnalyticsMetrics,
        logger: Logger,
        maxAttempts: Int = 8,
        baseBackoffSeconds: Double = 1,
        http: HTTPClient = .shared
    ) {
        self.url = url
        self.routingKey = routingKey
        self.source = source
        self.metrics = metrics
        self.logger = logger
        self.maxAttempts = maxAttempts
        self.baseBackoff = baseBackoffSeconds
        self.http = http
    }

    public func enqueue(_ event: Event) {
        if queue.count >= capacity {
            queue.removeFirst()
            metrics.pagerDutyFailures.increment()
            logger.error("PagerDuty queue full: oldest event dropped")
        }
        queue.append(event)
        if !sending {
            sending = true
            Task { await self.drain() }
        }
    }

    /// Events not yet delivered.
    public var pending: Int { queue.count + (sending ? 1 : 0) }

    private func drain() async {
        while !queue.isEmpty {
            let event = queue.removeFirst()
            await deliver(event)
        }
        sending = false
    }

    /// The Events API v2 body of `event`.
    func body(_ event: Event) -> Data {
        var json: [String: Any] = [
            "routing_key": routingKey, "event_action": event.transition.action.rawValue,
            "dedup_key": event.transition.dedupKey,
        ]
        if event.transition.action == .trigger {
            json["payload"] = [
                "summary": event.summary, "source": source, "severity": event.severity,
                "component": event.transition.queueID, "group": event.transition.mediaType,
                "class": event.transition.rule, "custom_details": event.details,
            ]
        }
        return (try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])) ?? Data()
    }

    private func deliver(_ event: Event) async {
        let data = body(event)
        var backoff = baseBackoff
        for attempt in 1...maxAttempts {
            let r = await post(http, url: url, body: data, headers: ["Content-Type": "application/json"])
            switch DeliveryVerdict.classify(status: r.status, retryAfter: r.retryAfter, body: r.body, backoff: backoff)
            {
            case .delivered:
                logger.info(
                    "PagerDuty event delivered",
                    metadata: [
                        "alert.action": "\(event.transition.action.rawValue)",
                        "alert.dedup_key": "\(event.transition.dedupKey)",
                    ]
                )
                return
            case .refused(let why):
                metrics.pagerDutyFailures.increment()
                logger.error(
                    "PagerDuty refused the event: fix the routing key or payload",
                    metadata: ["alert.dedup_key": "\(event.transition.dedupKey)", "error": "\(why)"]
                )
                return
            case .retry(let after):
                logger.warning(
                    "PagerDuty not reachable: retrying",
                    metadata: [
                        "attempt": "\(attempt)", "retry.after_s": "\(after)",
                        "status": "\(r.status.map(String.init) ?? r.error ?? "-")",
                    ]
                )
                if attempt < maxAttempts { try? await Task.sleep(for: .milliseconds(Int(after * 1000))) }
                backoff = min(backoff * 2, 60)
            }
        }
        metrics.pagerDutyFailures.increment()
        logger.error(
            "PagerDuty event given up after \(maxAttempts) attempts",
            metadata: ["alert.dedup_key": "\(event.transition.dedupKey)"]
        )
    }
}

/// Pushes points in InfluxDB line protocol to a time-series database. Points wait in a bounded
/// buffer (the oldest are dropped and counted when it is full); a flush loop writes batches,
/// honouring 429 `Retry-After` and backing off on 5xx, so a down database never blocks
/// consumption.
public actor TSDBExporter {
    let url: URL
    let token: String?
    let capacity: Int
    let batchSize: Int
    let metrics: AnalyticsMetrics
    let logger: Logger
    private let http: HTTPClient
    private var buffer: [String] = []
    private var head = 0
    /// The absolute sequence number of `buffer[0]` (batches in flight survive compaction).
    private var firstSequence = 0
    private var retryAt: ContinuousClock.Instant?
    private var backoff = 1.0

    public init(
        url: URL,
        token: String?,
        capacity: Int,
        metrics: AnalyticsMetrics,
        logger: Logger,
        batchSize: Int = 5000,
        http: HTTPClient = .shared
    ) {
        self.url = url
        self.token = token
        self.capacity = capacity
        self.batchSize = batchSize
        self.metrics = metrics
        self.logger = logger
        self.http = http
    }

    public var bufferedPoints: Int { buffer.count - head }

    public func add(_ lines: [String]) {
        buffer.append(contentsOf: lines)
        let overflow = bufferedPoints - capacity
        if overflow > 0 {
            head += overflow
            metrics.tsdbPointsDropped.increment(by: Int64(overflow))
        }
        compact()
        metrics.tsdbBufferedPoints.set(Double(bufferedPoints))
    }

    private func compact() {
        if head > 4096 && head * 2 > buffer.count {
            buffer.removeFirst(head)
            firstSequence += head
            head = 0
        }
    }

    /// Writes buffered points in batches until the buffer is empty or the database asks us
    /// to wait (then returns; the next flush tries again after the wait).
    public func flush() async {
        while bufferedPoints > 0 {
            if let retryAt, ContinuousClock.now < retryAt { return }
            let end = min(buffer.count, head + batchSize)
            let batch = Array(buffer[head..<end])
            let batchEnd = firstSequence + end
            var headers = ["Content-Type": "text/plain; charset=utf-8"]
            if let token { headers["Authorization"] = "Token \(token)" }
            let r = await post(http, url: url, body: Data(batch.joined(separator: "\n").utf8), headers: headers)
            switch DeliveryVerdict.classify(status: r.status, retryAfter: r.retryAfter, body: r.body, backoff: backoff)
            {
            case .delivered:
                advance(to: batchEnd)
                metrics.tsdbPointsWritten.increment(by: Int64(batch.count))
                backoff = 1
                retryAt = nil
            case .refused(let why):
                advance(to: batchEnd)
                metrics.tsdbPointsDropped.increment(by: Int64(batch.count))
                logger.error("time-series database refused points: dropped", metadata: ["error": "\(why)"])
            case .retry(let after):
                retryAt = ContinuousClock.now + .milliseconds(Int(after * 1000))
                backoff = min(backoff * 2, 60)
                logger.warning(
                    "time-series database not accepting points: keeping them buffered",
                    metadata: [
                        "retry.after_s": "\(after)", "tsdb.buffered": "\(bufferedPoints)",
                        "status": "\(r.status.map(String.init) ?? r.error ?? "-")",
                    ]
                )
                return
            }
        }
    }

    private func advance(to sequence: Int) {
        // Overflow while the batch was in flight may have dropped past it already.
        head = min(buffer.count, max(head, sequence - firstSequence))
        compact()
        metrics.tsdbBufferedPoints.set(Double(bufferedPoints))
    }
}
