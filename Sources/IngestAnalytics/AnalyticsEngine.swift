import Foundation
import IngestCore
import IngestKafka
import IngestWorker
import Logging

/// The analytics state of one worker: the wait aggregator, live observations and alert states,
/// and what is derived from them on each tick (gauges, alerts, interval summaries, TSDB points).
///
/// Restart safety: every counted wait is a side effect committed with its event's idempotency
/// key (so the consumer position and the waits move together), the aggregator only takes
/// committed waits (`apply`), and on start it is rebuilt from the waits committed within the
/// longest window or open interval (`rebuild`). A crash therefore neither loses nor
/// double-counts a wait. Final interval summaries are published under their own idempotency
/// key, so each is published once.
public actor AnalyticsEngine {
    public static let handlerName = "analytics"
    static let intervalHandlerName = "analytics-interval"

    let configuration: AnalyticsConfiguration
    let store: any IdempotencyStore
    let output: AcknowledgedProducer?
    let pagerDuty: PagerDutyNotifier?
    let tsdb: TSDBExporter?
    let metrics: AnalyticsMetrics
    let logger: Logger
    let workerID: String
    private var aggregator: QueueWaitAggregator
    private var evaluator: AlertEvaluator
    private var observations: [QueueWaitAggregator.QueueKey: QueueObservation] = [:]
    /// The queues this instance owns (`nil`: every queue, a lone engine as in unit tests).
    private var ownership: QueueOwnership?
    /// Alert states shared by every instance (one trigger and one resolve per surge).
    let alertStates: (any DocumentStore)?
    /// Hashes of the ids of the waits counted per queue, with their event times: a wait
    /// reaching this engine twice (rebuilt from the store and re-read after a rebalance) is
    /// counted once. Pruned with the horizon.
    private var countedIDs: [QueueWaitAggregator.QueueKey: [Int: Int64]] = [:]
    private var lastIDPrune: Int64 = 0
    /// Offered count of each open interval when its running summary was last published.
    private var publishedOffered: [String: Int] = [:]
    private var lastPublish: Int64 = 0
    private var lastPoints: Int64 = 0
    private var lastPurge: Int64 = 0

    public init(
        configuration: AnalyticsConfiguration,
        store: any IdempotencyStore,
        output: AcknowledgedProducer?,
        pagerDuty: PagerDutyNotifier?,
        tsdb: TSDBExporter?,
        metrics: AnalyticsMetrics,
        workerID: String,
        logger: Logger
    ) {
        self.configuration = configuration
        self.store = store
        self.output = output
        self.pagerDuty = pagerDuty
        self.tsdb = tsdb
        self.metrics = metrics
        self.workerID = workerID
        self.logger = logger
        self.aggregator = QueueWaitAggregator(configuration: configuration.aggregator)
        self.evaluator = AlertEvaluator(rules: configuration.alertRules)
        self.alertStates = store as? any DocumentStore
    }

    static let alertDocumentKind = "analytics-alert"

    /// From now on this engine holds only the queues of the waits partitions it is assigned
    /// (``follow(_:)``), out of `partitionCount`.
    public func partitionQueues(waitsTopic: String, partitionCount: Int32) {
        ownership = QueueOwnership(waitsTopic: waitsTopic, partitionCount: partitionCount)
    }

    private func holds(_ queueID: String) -> Bool { ownership?.holds(queueID) ?? true }
    private func exports(_ queueID: String) -> Bool { ownership?.exports(queueID) ?? true }

    /// The partition `key` belongs to among the co-partitioned topics' partitions (nil: no
    /// partitioning).
    func expectedPartition(key: [UInt8]) -> Int32? {
        guard let ownership else { return nil }
        return KafkaPartitioner.partition(key: key, partitionCount: ownership.partitionCount)
    }

    /// Follows an assignment change: parked and dropped queues stop being exported (their
    /// Prometheus series removed, their alerts no longer evaluated here); queues of newly
    /// owned partitions are rebuilt from the committed waits; firing alerts of owned queues
    /// are restored from the shared alert states, so they are neither triggered again nor
    /// left unresolved.
    public func follow(_ event: RebalanceEvent, nowMilliseconds now: Int64) async throws(HandlerFailure) {
        guard var ownership else { return }
        let change = ownership.apply(event)
        self.ownership = ownership
        let leaving = change.parked.union(change.dropped)
        if !leaving.isEmpty {
            let keys = Set(aggregator.queueKeys + Array(observations.keys)).filter {
                leaving.contains(ownership.partition(of: $0.queueID))
            }
            for key in keys { metrics.remove(queueID: key.queueID, mediaType: key.mediaType) }
            evaluator.forget { leaving.contains(ownership.partition(of: $0.queueID)) }
            let gone = keys.filter { change.dropped.contains(ownership.partition(of: $0.queueID)) }
            aggregator.remove(gone)
            for key in gone {
                observations[key] = nil
                countedIDs[key] = nil
                publishedOffered = publishedOffered.filter { !$0.key.hasPrefix("\(key.queueID)|\(key.mediaType)|") }
            }
        }
        if !change.gained.isEmpty {
            var attempt = 0
            while true {
                attempt += 1
                do {
                    let n = try await rebuild(nowMilliseconds: now, partitions: change.gained)
                    logger.info(
                        "analytics queues taken over",
                        metadata: ["analytics.partitions": "\(change.gained.sorted())", "analytics.waits": "\(n)"]
                    )
                    break
                } catch {
                    // Owning queues without their history would publish wrong figures.
                    guard attempt < 5 else {
                        throw .fatal("cannot rebuild the queues of partitions \(change.gained.sorted()): \(error)")
                    }
                    try? await Task.sleep(for: .milliseconds(200 * attempt))
                }
            }
        }
        if !change.gained.isEmpty || !change.resumed.isEmpty {
            await restoreFiringAlerts(partitions: change.gained.union(change.resumed))
        }
        metrics.trackedQueues.set(Double(aggregator.queueKeys.count))
    }

    /// Marks the alerts of `partitions` that the shared states say are firing as firing here.
    private func restoreFiringAlerts(partitions: Set<Int32>) async {
        guard let alertStates, let ownership else { return }
        let documents: [VersionedDocument]
        do {
            documents = try await alertStates.documents(kind: Self.alertDocumentKind)
        } catch {
            logger.warning("cannot read the shared alert states", metadata: ["error": "\(error)"])
            return
        }
        for document in documents {
            guard let state = AlertState(document.body), state.firing,
                partitions.contains(ownership.partition(of: state.queueID)),
                evaluator.rules.contains(where: { $0.name == state.rule })
            else { continue }
            evaluator.restoreFiring(rule: state.rule, queueID: state.queueID, mediaType: state.mediaType)
        }
    }

    /// Records `t` in the shared alert states; true when this instance made the transition
    /// (and so sends it), false when the states already say so (another instance sent it).
    private func claimTransition(_ t: AlertTransition) async -> Bool {
        guard let alertStates else { return true }
        let wanted = AlertState(
            firing: t.action == .trigger,
            rule: t.rule,
            queueID: t.queueID,
            mediaType: t.mediaType
        )
        do {
            for _ in 0..<5 {
                let current = try await alertStates.document(kind: Self.alertDocumentKind, key: t.dedupKey)
                if let current, AlertState(current.body)?.firing == wanted.firing { return false }
                if current == nil && !wanted.firing { return false }
                if try await alertStates.putDocument(
                    kind: Self.alertDocumentKind,
                    key: t.dedupKey,
                    expectedVersion: current?.version ?? 0,
                    body: wanted.body,
                    owner: workerID,
                    leaseUntil: 0
                ) {
                    return true
                }
            }
        } catch {
            // PagerDuty folds a repeated trigger into the open incident by its dedup_key.
            logger.warning("cannot record the alert state: sending anyway", metadata: ["error": "\(error)"])
            return true
        }
        return false
    }

    /// How far back committed waits matter: the longest window or an unpublished interval,
    /// plus the allowed lateness.
    var horizonMilliseconds: Int64 {
        let a = configuration.aggregator
        let longest = Int64(max(a.windowMinutes.max() ?? 60, 2 * a.intervalMinutes)) * 60_000
        return longest + a.allowedLatenessMilliseconds + 600_000
    }

    /// Rebuilds the queues of `partitions` (all queues when nil) from the waits committed
    /// within the horizon; returns how many were taken.
    public func rebuild(nowMilliseconds now: Int64, partitions: Set<Int32>? = nil) async throws -> Int {
        let effects = try await store.sideEffects(handler: Self.handlerName, appliedSince: now - horizonMilliseconds)
        var taken = 0
        for effect in effects {
            guard let o = WaitObservation(encoded: effect.payload) else { continue }
            if let partitions, let ownership, !partitions.contains(ownership.partition(of: o.queueID)) { continue }
            if count(o, id: effect.dedupKey, counting: false) { taken += 1 }
        }
        metrics.trackedQueues.set(Double(aggregator.queueKeys.count))
        return taken
    }

    /// Counts committed waits (side effects of the analytics handler; each carries its claim
    /// key as id).
    public func apply(_ effects: [SideEffect]) {
        for effect in effects {
            guard let o = WaitObservation(encoded: effect.payload) else { continue }
            count(o, id: effect.dedupKey, counting: true)
        }
        metrics.trackedQueues.set(Double(aggregator.queueKeys.count))
    }

    /// Counts waits whose claim was already completed (by this instance, or by the previous
    /// owner of their partition just before a rebalance): counted unless already held.
    public func applyCommitted(_ waits: [(id: String, wait: WaitObservation)]) {
        for (id, o) in waits { count(o, id: id, counting: true) }
        metrics.trackedQueues.set(Double(aggregator.queueKeys.count))
    }

    /// Adds one wait unless its queue is not held here or its id was counted; true if added.
    @discardableResult
    private func count(_ o: WaitObservation, id: String, counting: Bool) -> Bool {
        guard holds(o.queueID) else { return false }
        let key = QueueWaitAggregator.QueueKey(queueID: o.queueID, mediaType: o.mediaType)
        let hash = id.hashValue
        if countedIDs[key]?[hash] != nil { return false }
        switch aggregator.add(o) {
        case .counted:
            countedIDs[key, default: [:]][hash] = o.eventTimeMilliseconds
            if counting { metrics.countedWaits.increment() }
            return true
        case .late:
            if counting { metrics.lateEvents.increment() }
        case .rejectedCardinality:
            if counting { metrics.rejectedQueues.increment() }
        }
        return false
    }

    /// Takes a live observation unless a newer one for the queue is already known.
    public func observe(_ o: QueueObservation) {
        guard exports(o.queueID) else { return }
        let key = QueueWaitAggregator.QueueKey(queueID: o.queueID, mediaType: o.mediaType)
        if let known = observations[key], known.timeMilliseconds > o.timeMilliseconds { return }
        if observations[key] == nil && observations.count >= configuration.aggregator.maxQueues { return }
        observations[key] = o
        let labels = [("queue", o.queueID), ("media", o.mediaType)]
        if let v = o.waiting { metrics.set("genesys_queue_observed", labels + [("metric", "oWaiting")], v) }
        if let v = o.interacting { metrics.set("genesys_queue_observed", labels + [("metric", "oInteracting")], v) }
        if let v = o.onQueueUsers { metrics.set("genesys_queue_observed", labels + [("metric", "oOnQueueUsers")], v) }
        if let v = o.longestWaitingSeconds {
            metrics.set("genesys_queue_observed", labels + [("metric", "oLongestWaiting")], v)
        }
    }

    /// Statistics of a window ending now (or at the newest event time when that is later).
    public func window(queueID: String, mediaType: String, minutes: Int, nowMilliseconds now: Int64) -> WaitStatistics?
    {
        aggregator.window(
            .init(queueID: queueID, mediaType: mediaType),
            minutes: minutes,
            endingAt: max(now, aggregator.newestEventTime)
        )
    }

    /// One evaluation round: gauges, alert rules, summaries, TSDB points, eviction and purge.
    /// - Parameter final: the last tick before shutdown: points are emitted whatever the time
    ///   since the last ones, so the database gets the figures of everything committed.
    public func tick(nowMilliseconds now: Int64, final: Bool = false) async {
        let end = max(now, aggregator.newestEventTime)
        var points: [String] = []
        let emitPoints = tsdb != nil && (final || now - lastPoints >= Int64(configuration.tsdbFlushMilliseconds))
        // The last tick before shutdown comes after the consumer left the group (its queues are
        // parked then): it still pushes the points of everything this instance counted, but
        // gauges, alerts and summaries are only ever the owner's.
        let held = aggregator.queueKeys.filter { exports($0.queueID) || final }
        for key in held.sorted(by: { ($0.queueID, $0.mediaType) < ($1.queueID, $1.mediaType) }) {
            let owner = exports(key.queueID)
            for minutes in configuration.aggregator.windowMinutes {
                guard let stats = aggregator.window(key, minutes: minutes, endingAt: end) else { continue }
                if emitPoints { points += Self.points(key, window: minutes, stats, time: now) }
                guard owner else { continue }
                exportGauges(key, window: minutes, stats)
                for rule in evaluator.rules where !rule.metric.isObservation && rule.windowMinutes == minutes {
                    let value = stats.offered >= rule.minimumOffered ? Self.value(rule.metric, stats) : nil
                    if let t = evaluator.evaluate(
                        rule,
                        queueID: key.queueID,
                        mediaType: key.mediaType,
                        value: value,
                        nowMilliseconds: now
                    ) {
                        await alert(t, rule: rule, stats: stats, window: minutes)
                    }
                }
            }
        }
        for (key, o) in observations.sorted(by: { $0.key.queueID < $1.key.queueID }) where exports(key.queueID) {
            let fresh = now - o.timeMilliseconds < 300_000
            for rule in evaluator.rules where rule.metric.isObservation {
                let value = fresh ? (rule.metric == .waiting ? o.waiting : o.longestWaitingSeconds) : nil
                if let t = evaluator.evaluate(
                    rule,
                    queueID: key.queueID,
                    mediaType: key.mediaType,
                    value: value,
                    nowMilliseconds: now
                ) {
                    await alert(t, rule: rule, stats: nil, window: nil)
                }
            }
            if emitPoints, fresh {
                let fields: [(String, InfluxLineProtocol.FieldValue)] = [
                    ("waiting", o.waiting.map { .double($0) }), ("interacting", o.interacting.map { .double($0) }),
                    ("on_queue_users", o.onQueueUsers.map { .double($0) }),
                    ("longest_waiting_seconds", o.longestWaitingSeconds.map { .double($0) }),
                ].compactMap { name, v in v.map { (name, $0) } }
                if let line = InfluxLineProtocol.line(
                    measurement: "genesys_queue_observations",
                    tags: [("queue", key.queueID), ("media", key.mediaType)],
                    fields: fields,
                    timeMilliseconds: o.timeMilliseconds
                ) {
                    points.append(line)
                }
            }
        }
        metrics.alertsFiring.set(Double(evaluator.firingCount))
        if emitPoints {
            lastPoints = now
            await tsdb?.add(points)
        }
        if now - lastPublish >= Int64(configuration.publishMilliseconds) {
            lastPublish = now
            await publishRunningSummaries()
        }
        await publishClosedIntervals()
        if now - lastIDPrune >= 60_000 {
            lastIDPrune = now
            let oldest = aggregator.newestEventTime - horizonMilliseconds
            for (key, ids) in countedIDs {
                let kept = ids.filter { $0.value >= oldest }
                countedIDs[key] = kept.isEmpty ? nil : kept
            }
        }
        if now - lastPurge >= 600_000 {
            lastPurge = now
            do {
                _ = try await store.purgeSideEffects(
                    handler: Self.handlerName,
                    appliedBefore: now - horizonMilliseconds
                )
            } catch {
                logger.warning("cannot purge old analytics waits", metadata: ["error": "\(error)"])
            }
        }
    }

    private func exportGauges(_ key: QueueWaitAggregator.QueueKey, window: Int, _ s: WaitStatistics) {
        let labels = [("queue", key.queueID), ("media", key.mediaType), ("window", "\(window)m")]
        for (q, v) in [("0.5", s.p50), ("0.9", s.p90), ("0.95", s.p95), ("0.99", s.p99)] {
            metrics.set("genesys_queue_wait_seconds", labels + [("quantile", q)], v.map { $0 / 1000 } ?? .nan)
        }
        for (outcome, n) in [
            ("offered", s.offered), ("answered", s.answered), ("abandoned", s.abandoned), ("flowed_out", s.flowedOut),
        ] {
            metrics.set("genesys_queue_interactions", labels + [("outcome", outcome)], Double(n))
        }
        metrics.set("genesys_queue_abandon_ratio", labels, s.abandonRate ?? .nan)
        metrics.set("genesys_queue_service_level_ratio", labels, s.serviceLevel ?? .nan)
    }

    static func value(_ metric: AlertRule.Metric, _ s: WaitStatistics) -> Double? {
        switch metric {
        case .p50Wait: s.p50.map { $0 / 1000 }
        case .p90Wait: s.p90.map { $0 / 1000 }
        case .p95Wait: s.p95.map { $0 / 1000 }
        case .p99Wait: s.p99.map { $0 / 1000 }
        case .abandonRate: s.abandonRate
        case .serviceLevel: s.serviceLevel
        case .waiting, .longestWaiting: nil
        }
    }

    static func points(
        _ key: QueueWaitAggregator.QueueKey,
        window: Int,
        _ s: WaitStatistics,
        time: Int64
    ) -> [String] {
        var fields: [(String, InfluxLineProtocol.FieldValue)] = [
            ("offered", .integer(s.offered)), ("answered", .integer(s.answered)),
            ("abandoned", .integer(s.abandoned)), ("flowed_out", .integer(s.flowedOut)),
        ]
        for (name, v) in [
            ("p50_seconds", s.p50), ("p90_seconds", s.p90), ("p95_seconds", s.p95), ("p99_seconds", s.p99),
        ] {
            if let v { fields.append((name, .double(v / 1000))) }
        }
        if let r = s.abandonRate { fields.append(("abandon_rate", .double(r))) }
        if let r = s.serviceLevel { fields.append(("service_level", .double(r))) }
        return InfluxLineProtocol.line(
            measurement: "genesys_queue_wait",
            tags: [("queue", key.queueID), ("media", key.mediaType), ("window", "\(window)m")],
            fields: fields,
            timeMilliseconds: time
        ).map { [$0] } ?? []
    }

    private func alert(_ t: AlertTransition, rule: AlertRule, stats: WaitStatistics?, window: Int?) async {
        // Once across instances: the shared state decides who sends.
        guard await claimTransition(t) else {
            logger.info(
                "alert \(t.action.rawValue) already recorded by another instance",
                metadata: ["alert.dedup_key": "\(t.dedupKey)"]
            )
            return
        }
        let valueText = t.value.isFinite ? String(format: "%.3f", t.value) : "no data"
        var details: [String: String] = [
            "queueId": t.queueID, "mediaType": t.mediaType, "rule": rule.name, "metric": rule.metric.rawValue,
            "value": valueText, "trigger": "\(rule.direction.rawValue) \(rule.trigger)", "clear": "\(rule.clear)",
        ]
        if let window { details["windowMinutes"] = "\(window)" }
        if let s = stats {
            details["offered"] = "\(s.offered)"
            details["answered"] = "\(s.answered)"
            details["abandoned"] = "\(s.abandoned)"
            for (name, v) in [("p50WaitSeconds", s.p50), ("p90WaitSeconds", s.p90), ("p99WaitSeconds", s.p99)] {
                if let v { details[name] = String(format: "%.1f", v / 1000) }
            }
            if let r = s.abandonRate { details["abandonRate"] = String(format: "%.3f", r) }
            if let r = s.serviceLevel { details["serviceLevel"] = String(format: "%.3f", r) }
        }
        let windowText = window.map { " on the \($0)-minute window" } ?? ""
        let summary =
            "Queue \(t.queueID) (\(t.mediaType)): \(rule.metric.rawValue) \(valueText) "
            + "\(rule.direction.rawValue) \(rule.trigger)\(windowText) [\(rule.name)]"
        switch t.action {
        case .trigger: metrics.alertsTriggered.increment()
        case .resolve: metrics.alertsResolved.increment()
        }
        logger.notice(
            "alert \(t.action.rawValue)",
            metadata: ["alert.dedup_key": "\(t.dedupKey)", "alert.summary": "\(summary)"]
        )
        guard let pagerDuty else { return }
        let event = PagerDutyNotifier.Event(transition: t, severity: rule.severity, summary: summary, details: details)
        Task { await pagerDuty.enqueue(event) }
    }

    // MARK: - Summaries

    private func summaryKey(_ key: QueueWaitAggregator.QueueKey, _ start: Int64) -> String {
        "\(key.queueID)|\(key.mediaType)|\(start)"
    }

    /// The running summaries of intervals that changed since they were last published.
    private func publishRunningSummaries() async {
        for key in aggregator.queueKeys where exports(key.queueID) {
            for start in aggregator.openIntervals(key) {
                guard let stats = aggregator.interval(key, startingAt: start) else { continue }
                let id = summaryKey(key, start)
                if publishedOffered[id] == stats.offered { continue }
                if await publish(key, start: start, stats, final: false) { publishedOffered[id] = stats.offered }
            }
        }
    }

    /// Final summaries of closed intervals, each once (claimed in the store first).
    private func publishClosedIntervals() async {
        let closed = aggregator.closedIntervals().filter { exports($0.0.queueID) }
        guard !closed.isEmpty else { return }
        var done: [(QueueWaitAggregator.QueueKey, Int64)] = []
        for (key, start) in closed {
            let claimKey = "\(Self.intervalHandlerName)|\(summaryKey(key, start))"
            let now = WallClock.nowMilliseconds()
            let outcome: ClaimOutcome?
            do {
                outcome = try await store.claim(
                    [claimKey],
                    owner: workerID,
                    nowMilliseconds: now,
                    leaseMilliseconds: 60_000
                )[
                    claimKey
                ]
            } catch {
                logger.warning("cannot claim an interval summary: will retry", metadata: ["error": "\(error)"])
                return
            }
            switch outcome {
            case .duplicate:
                done.append((key, start))
            case .claimed:
                guard let stats = aggregator.interval(key, startingAt: start) else { continue }
                if await publish(key, start: start, stats, final: true) {
                    _ = try? await store.complete(
                        [claimKey],
                        owner: workerID,
                        nowMilliseconds: now,
                        retainMilliseconds: 7 * 86_400_000,
                        sideEffects: [
                            SideEffect(
                                handler: Self.intervalHandlerName,
                                dedupKey: claimKey,
                                payload: "\(stats.offered)"
                            )
                        ]
                    )
                    done.append((key, start))
                } else {
                    try? await store.release([claimKey], owner: workerID)
                }
            case .busy, nil:
                continue
            }
        }
        for (key, start) in done { publishedOffered[summaryKey(key, start)] = nil }
        for gone in aggregator.evict(publishedIntervals: done) {
            metrics.remove(queueID: gone.queueID, mediaType: gone.mediaType)
            countedIDs[gone] = nil
        }
        metrics.trackedQueues.set(Double(aggregator.queueKeys.count))
    }

    /// The summary record of one queue and interval.
    func summary(_ key: QueueWaitAggregator.QueueKey, start: Int64, _ s: WaitStatistics, final: Bool) -> [String: Any] {
        let iso = ISO8601DateFormatter()
        let length = Int64(configuration.aggregator.intervalMinutes) * 60_000
        func date(_ ms: Int64) -> String { iso.string(from: Date(timeIntervalSince1970: Double(ms) / 1000)) }
        var wait: [String: Any] = [:]
        for (name, v) in [("p50", s.p50), ("p90", s.p90), ("p95", s.p95), ("p99", s.p99)] {
            if let v { wait[name] = Int(v.rounded()) }
        }
        var record: [String: Any] = [
            "queueId": key.queueID, "mediaType": key.mediaType, "interval": "\(date(start))/\(date(start + length))",
            "final": final, "offered": s.offered, "answered": s.answered, "abandoned": s.abandoned,
            "flowedOut": s.flowedOut, "answeredWithinThreshold": s.answeredWithinThreshold,
            "serviceLevelThresholdMs": Int(configuration.aggregator.serviceLevelThresholdMilliseconds),
            "waitMs": wait, "producedBy": workerID,
        ]
        if let r = s.abandonRate { record["abandonRate"] = r }
        if let r = s.serviceLevel { record["serviceLevel"] = r }
        return record
    }

    private func publish(
        _ key: QueueWaitAggregator.QueueKey,
        start: Int64,
        _ s: WaitStatistics,
        final: Bool
    ) async -> Bool {
        guard let output else { return true }
        let record = summary(key, start: start, s, final: final)
        guard let body = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else {
            return false
        }
        do {
            try await output.send(
                topic: configuration.outputTopic,
                key: Array(summaryKey(key, start).utf8),
                value: Array(body),
                headers: [KafkaHeader(name: "content-type", string: "application/json")]
            )
            metrics.summariesPublished.increment()
            return true
        } catch {
            logger.warning(
                "cannot publish an interval summary: will retry",
                metadata: ["error": "\(error.message)", "topic": "\(configuration.outputTopic)"]
            )
            return false
        }
    }
}
