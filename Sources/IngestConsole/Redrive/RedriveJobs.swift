import Foundation
import IngestCore
import IngestKafka
import IngestWorker
import Logging

/// Where a redrive publishes: the broker in production, a list in handler tests.
public protocol RedrivePublisher: Sendable {
    /// Queues one record; delivery is confirmed by ``flush()``.
    func publish(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader]) throws
    /// Waits for every queued record; throws when any was not acknowledged.
    func flush() throws
}

/// A librdkafka producer with delivery reports counted (one per redrive job).
public final class KafkaRedrivePublisher: RedrivePublisher, @unchecked Sendable {
    // @unchecked: `producer` is thread-safe (librdkafka), `failures` is locked, `next` atomic-free
    // but only the job's own thread produces.
    private let producer: KafkaProducer
    private let failures = LockedValue<[String]>([])
    private var next: UInt64 = 0

    public init(kafka: KafkaClientConfiguration, logger: Logger) throws {
        let failures = self.failures
        producer = try KafkaProducer(
            configuration: kafka,
            logger: logger,
            onDeliveryReports: { reports in
                for r in reports where r.error != nil {
                    failures.withLock { $0.append(r.error!.message) }
                }
            }
        )
    }

    deinit { producer.close() }

    public func publish(topic: String, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader]) throws {
        next += 1
        try producer.produce(topic: topic, key: key, value: value, headers: headers, token: next)
    }

    public func flush() throws {
        let flushed = producer.flush(timeoutMilliseconds: 30_000)
        let failed = failures.withLock { $0 }
        guard flushed, failed.isEmpty else {
            throw RedriveError("not every record was acknowledged: \(failed.count) failed, flushed=\(flushed)")
        }
    }
}

public struct RedriveError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

/// Redrive plans and the background jobs that carry them out.
///
/// A plan is made first: the exact positions of the dead letters the query matches *now*
/// (at most ``maximumPlanSize``), shown with a sample before anything happens. Running it
/// replays exactly those positions — a dead letter that arrives later is not in the plan, one
/// replayed is taken out of it, so nothing is sent twice by one job — to their origin topics
/// through ``DeadLetterRedrive``, at most `rate` records a second, on a thread of its own,
/// cancellable between records. Every run ends with an audit record (who, when, the query, how
/// many were planned and replayed, which positions, how it ended) on the audit topic.
public final class RedriveJobs: Sendable {
    public static let maximumPlanSize = 100_000

    public enum State: String, Sendable {
        case planned, running, cancelling, cancelled, done, failed
    }

    public struct Job: Sendable {
        public var id: String
        public var planner: String
        public var createdAt: Int64
        public var query: DeadLetterQuery
        public var topics: [String]
        public var positions: [RecordPosition]
        public var state: State = .planned
        public var runner: String?
        public var replayed = 0
        public var rate: Double = 0
        public var error: String?
        public var finishedAt: Int64?
    }

    let source: any DeadLetterSource
    let publisher: @Sendable () throws -> any RedrivePublisher
    let auditTopic: String
    let logger: Logger
    private let jobs = LockedValue<[String: Job]>([:])
    private let cancelled = LockedValue<Set<String>>([])

    public init(
        source: any DeadLetterSource,
        publisher: @escaping @Sendable () throws -> any RedrivePublisher,
        auditTopic: String,
        logger: Logger
    ) {
        self.source = source
        self.publisher = publisher
        self.auditTopic = auditTopic
        self.logger = logger
    }

    public func job(_ id: String) -> Job? { jobs.withLock { $0[id] } }

    public var all: [Job] { jobs.withLock { Array($0.values) }.sorted { $0.createdAt > $1.createdAt } }

    /// Reads the matching dead letters' positions into a new plan.
    public func plan(_ query: DeadLetterQuery, topics: [String], by user: String) throws -> Job {
        var positions: [RecordPosition] = []
        var tooMany = false
        _ = try source.scan(topics: topics, limit: Int.max) { r in
            guard query.matches(r), r.header(DeadLetterHeader.originTopic) != nil else { return true }
            guard positions.count < Self.maximumPlanSize else {
                tooMany = true
                return false
            }
            positions.append(RecordPosition(r))
            return true
        }
        if tooMany {
            throw RedriveError(
                "more than \(Self.maximumPlanSize) dead letters match: narrow the filter (time range, class, topic)"
            )
        }
        let job = Job(
            id: ByteEncoding.encodeHex((0..<8).map { _ in UInt8.random(in: 0...255) }),
            planner: user,
            createdAt: WallClock.nowMilliseconds(),
            query: query,
            topics: topics,
            positions: positions.sorted()
        )
        jobs.withLock { $0[job.id] = job }
        return job
    }

    /// Narrows a fresh plan to `positions` (a single dead letter's redrive).
    func replacePositions(_ id: String, _ positions: [RecordPosition]) {
        update(id) { if $0.state == .planned { $0.positions = positions } }
    }

    /// Starts the plan's job on its own thread. Throws when it is not a fresh plan.
    public func run(_ id: String, by user: String, rate: Double) throws {
        try jobs.withLock { all in
            guard var job = all[id] else { throw RedriveError("no such plan") }
            guard job.state == .planned else { throw RedriveError("this plan was already run (\(job.state.rawValue))") }
            job.state = .running
            job.runner = user
            job.rate = rate
            all[id] = job
        }
        let thread = Thread { [self] in self.execute(id) }
        thread.name = "redrive-\(id)"
        thread.start()
    }

    /// Asks a running job to stop before its next record.
    public func cancel(_ id: String) throws {
        try jobs.withLock { all in
            guard var job = all[id] else { throw RedriveError("no such job") }
            guard job.state == .running else { throw RedriveError("the job is not running (\(job.state.rawValue))") }
            job.state = .cancelling
            all[id] = job
        }
        cancelled.withLock { _ = $0.insert(id) }
    }

    /// Cancels every running job and waits (at most `timeout`) until each has stopped and
    /// written its audit record — the console's shutdown, so no run goes unaudited.
    public func stopAll(timeout: Duration) {
        let running = jobs.withLock { all -> [String] in
            let ids = all.values.filter { $0.state == .running }.map(\.id)
            for id in ids { all[id]?.state = .cancelling }
            return ids
        }
        cancelled.withLock { $0.formUnion(running) }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline
            && jobs.withLock({ all in all.values.contains { $0.state == .running || $0.state == .cancelling } })
        {
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    private func update(_ id: String, _ change: (inout Job) -> Void) {
        jobs.withLock { all in
            if var j = all[id] {
                change(&j)
                all[id] = j
            }
        }
    }

    private func execute(_ id: String) {
        guard let job = job(id) else { return }
        var remaining = Set(job.positions)
        var replayed: [RecordPosition] = []
        var failure: String?
        do {
            let out = try publisher()
            let pacer = RatePacer(perSecond: job.rate)
            _ = try source.scan(topics: job.topics, limit: Int.max) { r in
                if cancelled.withLock({ $0.contains(id) }) { return false }
                let position = RecordPosition(r)
                guard remaining.remove(position) != nil, let replay = DeadLetterRedrive.replay(of: r) else {
                    return !remaining.isEmpty
                }
                let wait = pacer.delay(before: replayed.count)
                if wait > .zero { Thread.sleep(forTimeInterval: wait.inSeconds) }
                do {
                    try out.publish(topic: replay.topic, key: replay.key, value: replay.value, headers: replay.headers)
                } catch {
                    failure = "\(error)"
                    return false
                }
                replayed.append(position)
                update(id) { $0.replayed = replayed.count }
                return !remaining.isEmpty
            }
            try out.flush()
        } catch {
            failure = failure ?? "\(error)"
        }
        let wasCancelled = cancelled.withLock { $0.remove(id) != nil }
        let state: State = failure != nil ? .failed : wasCancelled ? .cancelled : .done
        if failure == nil && !wasCancelled && !remaining.isEmpty {
            // Positions gone from the topic (retention) are reported, not silently skipped.
            failure = "\(remaining.count) planned dead letter(s) were no longer in their topic"
        }
        update(id) {
            $0.state = state
            $0.error = failure
            $0.finishedAt = WallClock.nowMilliseconds()
        }
        audit(job, replayed: replayed, state: state, error: failure)
    }

    private func audit(_ job: Job, replayed: [RecordPosition], state: State, error: String?) {
        var record: [String: JSONValue] = [
            "action": "redrive", "job": .string(job.id), "planner": .string(job.planner),
            "actor": .string(job.runner ?? job.planner),
            "at": .string(EventFields.isoString(milliseconds: WallClock.nowMilliseconds())),
            "planned": .number(Double(job.positions.count)), "replayed": .number(Double(replayed.count)),
            "count": .number(Double(replayed.count)), "result": .string(state.rawValue),
            "filters": .object(Dictionary(job.query.parameters.map { ($0.0, JSONValue.string($0.1)) }) { a, _ in a }),
            "records": .array(replayed.map { .string($0.description) }),
        ]
        if let error { record["error"] = .string(error) }
        do {
            let out = try publisher()
            try out.publish(
                topic: auditTopic,
                key: Array((job.runner ?? job.planner).utf8),
                value: Array(JSONValue.object(record).jsonData),
                headers: [KafkaHeader(name: IngestHeader.contentType, string: "application/json")]
            )
            try out.flush()
        } catch {
            logger.error(
                "the redrive's audit record could not be written",
                metadata: ["redrive.job": "\(job.id)", "error": "\(error)"]
            )
        }
        logger.notice(
            "redrive finished",
            metadata: [
                "redrive.job": "\(job.id)", "redrive.actor": "\(job.runner ?? "-")",
                "redrive.planned": "\(job.positions.count)", "redrive.replayed": "\(replayed.count)",
                "redrive.result": "\(state.rawValue)",
            ]
        )
    }
}
