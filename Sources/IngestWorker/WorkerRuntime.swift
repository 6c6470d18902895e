import Dispatch
import IngestCore
import IngestCrypto
import IngestKafka
import IngestStore
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Runs handlers over a consumer group with at-least-once delivery and exactly-once effects
/// for side effects recorded through the store.
///
/// A batch of records is processed as follows:
/// 1. each record gets its dedup key; one store round trip claims every (handler, key) pair;
/// 2. records are grouped by partition and Kafka key: a group runs in order, groups run
///    concurrently up to `concurrency`;
/// 3. each claimed event runs its handler with the retry policy; poison and exhausted events
///    go to `<topic>.dlq` (acknowledged before going on) and their claims are released, so a
///    replay is handled again; a fatal failure pauses the worker;
/// 4. one store round trip marks the handled keys done together with their side effects;
/// 5. offsets are stored for the contiguous prefix of finished records of each partition.
public final class WorkerRuntime: @unchecked Sendable {
    // @unchecked: `consumer` is used only on `pollQueue`; the state is behind a lock (LockedValue).

    public enum State: Sendable, Equatable {
        case starting
        case running
        case paused(reason: String)
        case stopped
    }

    let configuration: WorkerConfiguration
    let handlers: [any EventHandler]
    let store: any IdempotencyStore
    let deadLetters: DeadLetterWriter
    let logger: Logger
    let metrics: WorkerMetrics
    private let pollQueue = DispatchQueue(label: "genesys-ingest.worker.poll")
    private var consumer: KafkaGroupConsumer?
    private let stateLock = LockedValue<State>(.starting)
    private let stopRequested = Atomic<Bool>(false)
    private let resumeRequested = Atomic<Bool>(false)

    public init(
        configuration: WorkerConfiguration,
        handlers: [any EventHandler],
        store: any IdempotencyStore,
        logger: Logger,
        metrics: WorkerMetrics,
        producer: AcknowledgedProducer
    ) {
        self.configuration = configuration
        self.handlers = handlers
        self.store = store
        self.logger = logger
        self.metrics = metrics
        self.deadLetters = DeadLetterWriter(producer: producer, groupID: configuration.groupID)
    }

    public var state: State { stateLock.withLock { $0 } }

    private func setState(_ s: State) {
        stateLock.withLock { $0 = s }
        if case .paused = s { metrics.paused.record(1) } else { metrics.paused.record(0) }
    }

    /// Asks the loop to finish its current batch, store offsets and leave the group.
    public func requestStop() { stopRequested.store(true, ordering: .relaxed) }

    /// Leaves a fatal pause: rejoins the group and resumes from the committed offsets.
    public func requestResume() { resumeRequested.store(true, ordering: .relaxed) }

    /// Consumes until ``requestStop()``.
    public func run() async throws {
        var lastPurge = UInt64(0)
        var lastLag = UInt64(0)
        while !stopRequested.load(ordering: .relaxed) {
            if case .paused = state {
                guard resumeRequested.exchange(false, ordering: .relaxed) else {
                    try? await Task.sleep(for: .milliseconds(200))
                    continue
                }
                logger.notice("resuming after a pause")
            }
            if consumer == nil {
                try await onPollQueueThrowing { () throws(KafkaError) in
                    var props = self.configuration.consumerProperties
                    // A member that stops polling for 30 s (a stuck handler) is replaced; a crashed
                    // one is noticed after 10 s.
                    if props["session.timeout.ms"] == nil { props["session.timeout.ms"] = "10000" }
                    if props["max.poll.interval.ms"] == nil { props["max.poll.interval.ms"] = "30000" }
                    self.consumer = try KafkaGroupConsumer(
                        configuration: KafkaClientConfiguration(
                            bootstrapServers: self.configuration.brokers,
                            properties: props
                        ),
                        groupID: self.configuration.groupID,
                        topics: self.configuration.topics
                    )
                }
                setState(.running)
                logger.info(
                    "worker consuming",
                    metadata: [
                        "kafka.group": "\(configuration.groupID)", "kafka.topics": "\(configuration.topics)",
                        "worker.handlers": "\(handlers.map(\.name))", "worker.id": "\(configuration.workerID)",
                    ]
                )
            }
            var records = carryOver
            carryOver = []
            if records.isEmpty {
                let polled = await onPollQueue {
                    self.consumer!.poll(
                        maxRecords: self.configuration.batchSize,
                        timeoutMilliseconds: Int32(self.configuration.pollMilliseconds)
                    )
                }
                for e in polled.errors { logger.warning("consumer error", metadata: ["kafka.error": "\(e.message)"]) }
                records = polled.records
            }
            // Assignment changes reach the handlers before any record of a new partition.
            if let fatal = await deliverRebalanceEvents() {
                await pause(fatal)
                continue
            }
            if !records.isEmpty {
                let outcome = await processKeepingMembership(records)
                await onPollQueue { self.consumer?.store(outcome.offsets) }
                if let fatal = outcome.fatal ?? outcome.rebalanceFatal {
                    await pause(fatal)
                    continue
                }
            }
            let now = DispatchTime.now().uptimeNanoseconds
            if now - lastLag > 5_000_000_000 {
                lastLag = now
                await updateLag()
            }
            if now - lastPurge > 60_000_000_000 {
                lastPurge = now
                if let purged = try? await store.purge(nowMilliseconds: Self.nowMilliseconds()), purged > 0 {
                    logger.info("purged expired idempotency keys", metadata: ["store.purged": "\(purged)"])
                }
            }
        }
        await leaveGroup()
        setState(.stopped)
        logger.info("worker stopped")
    }

    /// Leaves the group and waits for ``requestResume()``.
    private func pause(_ fatal: String) async {
        logger.error(
            "handler reported a fatal error: consumption paused; fix the cause, then POST /resume or restart",
            metadata: ["error": "\(fatal)"]
        )
        carryOver = []
        await leaveGroup()
        setState(.paused(reason: fatal))
    }

    /// Hands the consumer's assignment changes to every handler, in order; the first fatal
    /// failure (the handler cannot own what it was given) is returned.
    private func deliverRebalanceEvents() async -> String? {
        let events = await onPollQueue { self.consumer?.takeRebalanceEvents() ?? [] }
        return await deliver(events)
    }

    private func deliver(_ events: [RebalanceEvent]) async -> String? {
        for event in events {
            logger.info(
                "partitions \(event.kind.rawValue)",
                metadata: [
                    "kafka.partitions": "\(event.partitions.map { "\($0.topic)/\($0.partition)" })",
                    "kafka.incremental": "\(event.incremental)",
                ]
            )
            for handler in handlers {
                do {
                    try await handler.assignmentChanged(event)
                } catch .fatal(let message) {
                    return "\(handler.name): \(message)"
                } catch {
                    logger.warning(
                        "handler could not follow an assignment change",
                        metadata: ["worker.handler": "\(handler.name)", "error": "\(error.message)"]
                    )
                }
            }
        }
        return nil
    }

    /// Records fetched while a batch was in progress (only from partitions assigned meanwhile);
    /// handled next. Confined to the `run()` task.
    private var carryOver: [KafkaRecord] = []

    /// Processes a batch while keeping the group membership alive: a long batch (slow
    /// handler, back-off, waiting for another worker's lease) would otherwise exceed
    /// `max.poll.interval.ms` and trigger a rebalance. Every second the assignment is paused
    /// and the consumer polled, which fetches nothing from paused partitions but counts as
    /// a poll; partitions are resumed afterwards.
    private func processKeepingMembership(_ records: [KafkaRecord]) async -> BatchOutcome {
        let keepAlive = KeepAliveState()
        let outcome = await withTaskGroup(of: BatchOutcome?.self) { group in
            group.addTask { await self.process(records) }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    if Task.isCancelled { break }
                    let fetched = await self.onPollQueue { () -> [KafkaRecord] in
                        guard let consumer = self.consumer else { return [] }
                        consumer.setPaused(true)
                        return consumer.poll(maxRecords: self.configuration.batchSize, timeoutMilliseconds: 0).records
                    }
                    keepAlive.paused.store(true, ordering: .relaxed)
                    if !fetched.isEmpty { keepAlive.fetched.withLock { $0 += fetched } }
                    // A rebalance during a long batch: handlers learn of it now (e.g. stop
                    // exporting what this member no longer owns); a fatal one ends the batch
                    // after it, like a handler's fatal failure.
                    if let fatal = await self.deliverRebalanceEvents() {
                        keepAlive.fatal.withLock { $0 = $0 ?? fatal }
                    }
                }
                return nil
            }
            var result: BatchOutcome?
            while let next = await group.next() {
                if let next {
                    result = next
                    group.cancelAll()
                }
            }
            return result ?? BatchOutcome(offsets: [], fatal: nil)
        }
        if keepAlive.paused.load(ordering: .relaxed) { await onPollQueue { self.consumer?.setPaused(false) } }
        carryOver += keepAlive.fetched.withLock { $0 }
        var result = outcome
        result.rebalanceFatal = keepAlive.fatal.withLock { $0 }
        return result
    }

    private final class KeepAliveState: Sendable {
        let fetched = LockedValue<[KafkaRecord]>([])
        let paused = Atomic<Bool>(false)
        let fatal = LockedValue<String?>(nil)
    }

    private func leaveGroup() async {
        let last = await onPollQueue { () -> [RebalanceEvent] in
            // Commits stored offsets and leaves the group so others take the partitions now
            // (the final revocation is served during close).
            self.consumer?.close()
            let events = self.consumer?.takeRebalanceEvents() ?? []
            self.consumer = nil
            return events
        }
        _ = await deliver(last)
    }

    private func updateLag() async {
        let lag = await onPollQueue { self.consumer?.lag() ?? [] }
        for (p, value) in lag { metrics.recordLag(topic: p.topic, partition: p.partition, lag: value) }
    }

    // MARK: - Batch processing

    struct BatchOutcome {
        var offsets: [PartitionOffset]
        var fatal: String?
        /// A handler could not follow an assignment change during the batch.
        var rebalanceFatal: String? = nil
    }

    private struct WorkItem: Sendable {
        var index: Int
        var event: WorkerEvent
        var handler: Int
        var claimKey: String
    }

    /// Results of one batch's concurrent groups.
    private final class BatchShared: Sendable {
        let results = LockedValue<[Int: ItemResult]>([:])
        let fatalSeen = Atomic<Bool>(false)
    }

    private enum ItemResult: Sendable {
        case done([SideEffect])
        /// Completed before (`committed`), or a second copy within this batch.
        case duplicate(committed: Bool)
        case deadLettered
        case fatal(String)
        /// Not finished (pause or lost lease): neither completed nor its offset stored.
        case unfinished
    }

    func process(_ records: [KafkaRecord]) async -> BatchOutcome {
        // 1. Events and work items.
        var items: [WorkItem] = []
        var poison: [(Int, String)] = []
        for (i, record) in records.enumerated() {
            let derived: DedupKey.Derived
            do {
                derived = try DedupKey.derive(
                    from: record.value,
                    producedEventID: record.header(IngestHeader.producedEventID),
                    digest: SHA256Digest.hex
                )
            } catch {
                poison.append((i, error.description))
                continue
            }
            let automatic = WorkerEvent(
                record: record,
                dedupKey: derived.key,
                topicName: derived.topicName,
                conversationID: derived.conversationID
            )
            for (h, handler) in handlers.enumerated() where handler.accepts(automatic) {
                var event = automatic
                if handler.idempotency == .recordPosition {
                    event.dedupKey = DedupKey.position(
                        topic: record.topic,
                        partition: record.partition,
                        offset: record.offset
                    )
                }
                items.append(
                    WorkItem(index: i, event: event, handler: h, claimKey: event.claimKey(handler: handler.name))
                )
            }
        }
        var finished = Array(repeating: true, count: records.count)
        var fatal: String?

        // Malformed bodies can never be handled: dead-letter them at once.
        for (i, reason) in poison {
            let now = Self.nowMilliseconds()
            let written = await deadLetter(
                records[i],
                handler: "runtime",
                error: .poison(reason),
                attempts: 1,
                first: now
            )
            if !written { finished[i] = false }
        }

        // 2. Claim every key in one round trip.
        var claims: [String: ClaimOutcome] = [:]
        if !items.isEmpty {
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                claims = try await store.claim(
                    items.map(\.claimKey),
                    owner: configuration.workerID,
                    nowMilliseconds: Self.nowMilliseconds(),
                    leaseMilliseconds: configuration.leaseMilliseconds
                )
            } catch {
                logger.error(
                    "idempotency store unavailable: batch will be redelivered",
                    metadata: ["error": "\(error)"]
                )
                return BatchOutcome(offsets: [], fatal: nil)
            }
            metrics.storeLatency(operation: "claim", nanoseconds: DispatchTime.now().uptimeNanoseconds - started)
        }

        // 3. Groups by (handler, partition, key), run concurrently up to the bound.
        var groups: [[Int]] = []
        var groupIndex: [String: Int] = [:]
        for (n, item) in items.enumerated() {
            let r = records[item.index]
            let orderingKey = r.key.map { String(decoding: $0, as: UTF8.self) } ?? "offset:\(r.offset)"
            let g = "\(item.handler)|\(r.topic)|\(r.partition)|\(orderingKey)"
            if let existing = groupIndex[g] {
                groups[existing].append(n)
            } else {
                groupIndex[g] = groups.count
                groups.append([n])
            }
        }
        let shared = BatchShared()
        let limit = configuration.concurrency
        // Within a batch the same claim key can occur twice (a redelivered copy): only the
        // first occurrence runs; the other is a duplicate once the first completes.
        var firstOccurrence = Set<String>()
        var duplicatesInBatch = Set<Int>()
        for (n, item) in items.enumerated() where !firstOccurrence.insert(item.claimKey).inserted {
            duplicatesInBatch.insert(n)
        }
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for members in groups {
                if running >= limit {
                    await group.next()
                    running -= 1
                }
                running += 1
                let work = members.map { (n: $0, item: items[$0]) }
                let claimsCopy = claims
                let duplicates = duplicatesInBatch
                group.addTask {
                    for (n, item) in work {
                        if shared.fatalSeen.load(ordering: .relaxed) {
                            shared.results.withLock { $0[n] = .unfinished }
                            continue
                        }
                        if duplicates.contains(n) {
                            self.metrics.dedupHits.increment()
                            self.metrics.count(handler: self.handlers[item.handler].name, outcome: "duplicate")
                            shared.results.withLock { $0[n] = .duplicate(committed: false) }
                            continue
                        }
                        let result = await self.runItem(item, claim: claimsCopy[item.claimKey] ?? .claimed)
                        if case .fatal = result { shared.fatalSeen.store(true, ordering: .relaxed) }
                        shared.results.withLock { $0[n] = result }
                    }
                }
            }
        }
        let itemResults = shared.results.withLock { $0 }

        // 4. Complete handled keys with their side effects; release dead-lettered/unfinished claims.
        var completeKeys: [String] = []
        var effects: [SideEffect] = []
        var releaseKeys: [String] = []
        var skipped: [Int: [WorkerEvent]] = [:]
        for (n, item) in items.enumerated() {
            switch itemResults[n] ?? .unfinished {
            case .done(let e):
                completeKeys.append(item.claimKey)
                // Effects are tied to the claim (handler-scoped key) they complete with.
                effects += e.map { SideEffect(handler: $0.handler, dedupKey: item.claimKey, payload: $0.payload) }
            case .duplicate(let committed):
                if committed { skipped[item.handler, default: []].append(item.event) }
            case .deadLettered:
                releaseKeys.append(item.claimKey)
            case .fatal(let message):
                fatal = message
                releaseKeys.append(item.claimKey)
                finished[item.index] = false
            case .unfinished:
                releaseKeys.append(item.claimKey)
                finished[item.index] = false
            }
        }
        if !completeKeys.isEmpty {
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                let completed = try await store.complete(
                    completeKeys,
                    owner: configuration.workerID,
                    nowMilliseconds: Self.nowMilliseconds(),
                    retainMilliseconds: configuration.retentionMilliseconds,
                    sideEffects: effects
                )
                for handler in handlers {
                    let committed = effects.filter { $0.handler == handler.name && completed.contains($0.dedupKey) }
                    if !committed.isEmpty { await handler.didCommit(committed) }
                }
                let lost = Set(completeKeys).subtracting(completed)
                if !lost.isEmpty {
                    logger.warning(
                        "claims lost to another worker after the lease expired",
                        metadata: ["worker.lost": "\(lost.count)"]
                    )
                }
            } catch {
                logger.error("cannot complete keys: batch will be redelivered", metadata: ["error": "\(error)"])
                return BatchOutcome(offsets: [], fatal: fatal)
            }
            metrics.storeLatency(operation: "complete", nanoseconds: DispatchTime.now().uptimeNanoseconds - started)
        }
        if !releaseKeys.isEmpty {
            try? await store.release(releaseKeys, owner: configuration.workerID)
        }
        for (h, events) in skipped.sorted(by: { $0.key < $1.key }) { await handlers[h].didSkipDuplicates(events) }

        // 5. Offsets: the contiguous finished prefix per partition.
        var next: [String: PartitionOffset] = [:]
        var blocked = Set<String>()
        for (i, r) in records.enumerated() {
            let tp = "\(r.topic)\u{0}\(r.partition)"
            if blocked.contains(tp) { continue }
            if finished[i] {
                next[tp] = PartitionOffset(topic: r.topic, partition: r.partition, offset: r.offset + 1)
            } else {
                blocked.insert(tp)
            }
        }
        return BatchOutcome(offsets: Array(next.values), fatal: fatal)
    }

    /// Runs one handler for one event, applying the failure classes.
    private func runItem(_ item: WorkItem, claim: ClaimOutcome) async -> ItemResult {
        let event = item.event
        let handler = handlers[item.handler]
        var claim = claim
        // Someone else holds a live lease: wait for it to complete or expire, then look again.
        while case .busy(let until) = claim {
            let wait = max(50, min(Int(until - Self.nowMilliseconds()), Int(configuration.leaseMilliseconds)))
            try? await Task.sleep(for: .milliseconds(wait))
            if stopRequested.load(ordering: .relaxed) { return .unfinished }
            guard
                let again = try? await store.claim(
                    [item.claimKey],
                    owner: configuration.workerID,
                    nowMilliseconds: Self.nowMilliseconds(),
                    leaseMilliseconds: configuration.leaseMilliseconds
                )[item.claimKey]
            else { return .unfinished }
            claim = again
        }
        if claim == .duplicate {
            metrics.dedupHits.increment()
            metrics.count(handler: handler.name, outcome: "duplicate")
            return .duplicate(committed: true)
        }
        var attempts = 0
        var firstFailure: Int64?
        while true {
            attempts += 1
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                let effects = try await handler.handle(event)
                metrics.handlerLatency(
                    handler: handler.name,
                    nanoseconds: DispatchTime.now().uptimeNanoseconds - started
                )
                metrics.count(handler: handler.name, outcome: "processed")
                return .done(effects)
            } catch {
                let now = Self.nowMilliseconds()
                if firstFailure == nil { firstFailure = now }
                switch error {
                case .fatal(let message):
                    metrics.count(handler: handler.name, outcome: "fatal")
                    return .fatal("\(handler.name): \(message)")
                // Poison always; retryable once the attempts are spent.
                case .poison,
                    .retryable where attempts >= configuration.retry.maxAttempts:
                    return await deadLetter(
                        event.record,
                        handler: handler.name,
                        error: error,
                        attempts: attempts,
                        first: firstFailure!
                    ) ? .deadLettered : .unfinished
                case .retryable:
                    metrics.count(handler: handler.name, outcome: "retried")
                    let backoff = configuration.retry.backoffMilliseconds(
                        attempt: attempts,
                        random: Double.random(in: 0..<1)
                    )
                    try? await Task.sleep(for: .milliseconds(backoff))
                case .delay(_, let after):
                    attempts -= 1  // a delay does not spend an attempt
                    let age = event.record.timestamp > 0 ? now - event.record.timestamp : 0
                    if age > configuration.retry.maxDelayAgeMilliseconds {
                        return await deadLetter(
                            event.record,
                            handler: handler.name,
                            error: .delay("still not available after \(age) ms", afterMilliseconds: after),
                            attempts: attempts + 1,
                            first: firstFailure!
                        ) ? .deadLettered : .unfinished
                    }
                    metrics.count(handler: handler.name, outcome: "delayed")
                    try? await Task.sleep(for: .milliseconds(max(1, after)))
                }
                if stopRequested.load(ordering: .relaxed) { return .unfinished }
            }
        }
    }

    /// Writes `record` to its dead-letter topic and waits for the ack; false when the write
    /// failed (the record is then left unfinished and will be redelivered).
    private func deadLetter(
        _ record: KafkaRecord,
        handler: String,
        error: HandlerFailure,
        attempts: Int,
        first: Int64
    ) async -> Bool {
        let reason = DeadLetterReason(
            handler: handler,
            errorClass: error.errorClass,
            message: error.message,
            attempts: attempts,
            firstFailureMilliseconds: first,
            lastFailureMilliseconds: Self.nowMilliseconds()
        )
        do {
            try await deadLetters.send(record, reason: reason)
        } catch {
            logger.error(
                "dead-letter write failed: event will be redelivered",
                metadata: ["kafka.error": "\(error.message)"]
            )
            return false
        }
        logger.warning(
            "event dead-lettered",
            metadata: [
                "worker.handler": "\(handler)", "error.class": "\(reason.errorClass)",
                "kafka.topic": "\(record.topic)", "kafka.offset": "\(record.offset)",
            ]
        )
        metrics.count(handler: handler, outcome: "dead_lettered")
        metrics.dlqWrites.increment()
        return true
    }

    private func onPollQueue<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in pollQueue.async { continuation.resume(returning: body()) } }
    }

    private func onPollQueueThrowing(_ body: @escaping @Sendable () throws(KafkaError) -> Void) async throws(KafkaError)
    {
        let result: Result<Void, KafkaError> = await onPollQueue { Result { () throws(KafkaError) in try body() } }
        try result.get()
    }

    static func nowMilliseconds() -> Int64 { WallClock.nowMilliseconds() }
}
