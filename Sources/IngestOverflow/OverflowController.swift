import Foundation
import GenesysAPI
import IngestCore
import Logging

/// The queue overflow controller: detect → verify → act → active → recover → revert, as a
/// durable state machine per queue.
///
/// - **State** is one versioned document per queue in the shared store, written only by
///   compare-and-set; the document also carries a lease (owner, until), so one instance at a
///   time drives an activation, and a crashed instance's activation is taken over when its
///   lease ends. Only an idle queue can start an activation (compare-and-set from idle), so
///   duplicate or redelivered detections and other instances never start a second one.
/// - **Steps record intent before acting and results after**, and every action checks the
///   queue's current state first (members already there, settings already applied or already
///   restored), so a restart at any point resumes without repeating a side effect.
/// - **Settings** are a read-modify-write of the whole queue object with our own optimistic
///   concurrency: the change is planned on a read, the queue is read again right before the
///   PUT, and any difference (`dateModified` or a touched field) re-plans on the newer
///   version. A revert restores only fields that still hold what the controller wrote; a
///   field someone changed since is left alone and reported.
public actor OverflowController {
    static let documentKind = "overflow"

    public let configuration: OverflowConfiguration
    let policies: [String: OverflowConfiguration.QueuePolicy]
    let api: RoutingAPI
    let store: any DocumentStore
    let audit: OverflowAudit
    let metrics: OverflowMetrics
    let owner: String
    let logger: Logger
    /// Test hook: a pause after each persisted step, so tests can kill the process in any state.
    let stepDelay: Duration
    private var breachSince: [String: Int64] = [:]
    private var driving: Set<String> = []

    public init(
        configuration: OverflowConfiguration,
        api: RoutingAPI,
        store: any DocumentStore,
        audit: OverflowAudit,
        metrics: OverflowMetrics,
        owner: String,
        logger: Logger,
        stepDelay: Duration = .zero
    ) {
        self.configuration = configuration
        self.policies = Dictionary(configuration.queues.map { ($0.queueId, $0) }) { a, _ in a }
        self.api = api
        self.store = store
        self.audit = audit
        self.metrics = metrics
        self.owner = owner
        self.logger = logger
        self.stepDelay = stepDelay
    }

    static func now() -> Int64 { WallClock.nowMilliseconds() }

    // MARK: - Detection

    /// A detection signal for a queue (from an observation notification or an analytics summary).
    /// When the queue's detect rule has held for its duration, an activation starts.
    public func observe(
        queueID: String,
        metric: OverflowConfiguration.DetectMetric,
        value: Double,
        atMilliseconds time: Int64
    ) async {
        guard let policy = policies[queueID], policy.detect.metric == metric else { return }
        guard value > policy.detect.above else {
            breachSince[queueID] = nil
            return
        }
        let since = breachSince[queueID] ?? time
        breachSince[queueID] = since
        guard Double(time - since) >= policy.detect.forSeconds * 1000 else { return }
        breachSince[queueID] = nil
        if await trigger(
            queueID: queueID,
            reason: "\(metric.rawValue) \(value) > \(policy.detect.above) for \(Int(policy.detect.forSeconds)) s",
            signalAt: time
        ) {
            await drive(queueID)
        }
    }

    /// Starts an activation if the queue is idle; returns whether this call started it.
    @discardableResult
    /// - Parameter signalAt: the detection signal's own time; a signal not newer than the one
    ///   that started the previous activation (a redelivery after a crash) starts nothing.
    public func trigger(queueID: String, reason: String, signalAt: Int64? = nil) async -> Bool {
        guard policies[queueID] != nil else { return false }
        do {
            let document = try await store.document(kind: Self.documentKind, key: queueID)
            var record = try document.map(Self.decode) ?? OverflowActivation(queueID: queueID)
            guard record.state == .idle else {
                metrics.ignoredTriggers.increment()
                return false
            }
            if let signalAt, let previous = record.triggerSignalAt, signalAt <= previous {
                metrics.ignoredTriggers.increment()
                logger.info(
                    "overflow signal not newer than the one that started the last activation: ignored",
                    metadata: ["queue.id": "\(queueID)", "overflow.signal_at": "\(signalAt)"]
                )
                return false
            }
            let now = Self.now()
            record.begin(
                activationID: UUID().uuidString.lowercased(),
                dryRun: configuration.dryRun,
                now: now,
                signalAt: signalAt
            )
            guard
                try await store.putDocument(
                    kind: Self.documentKind,
                    key: queueID,
                    expectedVersion: document?.version ?? 0,
                    body: Self.encode(record),
                    owner: owner,
                    leaseUntil: now + leaseMilliseconds
                )
            else {
                metrics.ignoredTriggers.increment()
                return false
            }
            await note(record, "detected", reason)
            if stepDelay > .zero { try? await Task.sleep(for: stepDelay) }
            return true
        } catch {
            metrics.failures.increment()
            logger.error(
                "cannot start an overflow activation",
                metadata: ["queue.id": "\(queueID)", "error": "\(error)"]
            )
            return false
        }
    }

    // MARK: - Driving activations

    var leaseMilliseconds: Int64 { Int64(configuration.leaseSeconds * 1000) }

    /// One round over every configured queue: each activation this instance holds (or whose
    /// lease has ended) advances as far as it can now.
    public func reconcile() async {
        for queueID in configuration.queues.map(\.queueId) { await drive(queueID) }
    }

    /// A document and the version it was read at.
    struct Held {
        var record: OverflowActivation
        var version: Int64
    }

    func drive(_ queueID: String) async {
        guard let policy = policies[queueID], !driving.contains(queueID) else { return }
        driving.insert(queueID)
        defer { driving.remove(queueID) }
        var held: Held
        do {
            guard let document = try await store.document(kind: Self.documentKind, key: queueID) else { return }
            let record = try Self.decode(document)
            metrics.setActive(queueID, [.active, .recovering].contains(record.state))
            guard record.state != .idle else { return }
            guard document.owner == owner || document.leaseUntil < Self.now() else { return }
            held = Held(record: record, version: document.version)
            if document.owner != owner {
                await note(record, "takeover", "lease of \(document.owner) ended; resuming in \(record.state.rawValue)")
            }
            guard try await persist(&held) else { return }  // take or renew the lease
        } catch {
            metrics.failures.increment()
            logger.error("cannot read overflow state", metadata: ["queue.id": "\(queueID)", "error": "\(error)"])
            return
        }
        // Advance until the activation waits for time to pass (or finishes).
        for _ in 0..<16 {
            let before = held.record.state
            do {
                guard try await step(&held, policy) else { return }
            } catch let error as StepError {
                if case .lostLease = error { return }
                metrics.failures.increment()
                await note(held.record, "failed", "\(error)", result: "error")
                return
            } catch {
                metrics.failures.increment()
                await note(held.record, "failed", "\(error)", result: "error")
                return
            }
            if held.record.state == before || held.record.state == .idle { return }
        }
    }

    enum StepError: Error, CustomStringConvertible {
        case lostLease
        case keptChanging(String)

        var description: String {
            switch self {
            case .lostLease: "another instance took over the activation"
            case .keptChanging(let what): what
            }
        }
    }

    /// Writes the record (renewing the lease); false when another writer got there first.
    func persist(_ held: inout Held) async throws -> Bool {
        let now = Self.now()
        guard
            try await store.putDocument(
                kind: Self.documentKind,
                key: held.record.queueID,
                expectedVersion: held.version,
                body: Self.encode(held.record),
                owner: owner,
                leaseUntil: now + leaseMilliseconds
            )
        else { return false }
        held.version += 1
        metrics.setActive(held.record.queueID, [.active, .recovering].contains(held.record.state))
        return true
    }

    /// Persists or gives up the step (lost lease), then pauses for the test hook.
    func commit(_ held: inout Held) async throws {
        guard try await persist(&held) else { throw StepError.lostLease }
        if stepDelay > .zero { try? await Task.sleep(for: stepDelay) }
    }

    func transition(_ held: inout Held, to state: OverflowActivation.State, _ why: String) async throws {
        held.record.move(to: state, now: Self.now())
        try await commit(&held)
        await note(held.record, "state", why)
    }

    /// One step of the state machine; returns false when there is nothing to do now.
    func step(_ held: inout Held, _ policy: OverflowConfiguration.QueuePolicy) async throws -> Bool {
        let q = policy.queueId
        switch held.record.state {
        case .idle:
            return false
        case .verifying:
            let value = try await live(policy.verify.metric, policy, held.record)
            if value > policy.verify.above {
                try await transition(
                    &held,
                    to: .acting,
                    "confirmed: \(policy.verify.metric.rawValue) \(value) > \(policy.verify.above)"
                )
            } else {
                let id = held.record.activationID
                held.record.finish(outcome: "not confirmed", now: Self.now())
                try await commit(&held)
                await note(
                    held.record,
                    "not-confirmed",
                    "\(policy.verify.metric.rawValue) \(value) ≤ \(policy.verify.above): no action",
                    activation: id
                )
            }
            return true
        case .acting:
            try await addMembers(&held, policy)
            try await applySettings(&held, policy)
            metrics.activations.increment()
            try await transition(
                &held,
                to: .active,
                held.record.dryRun ? "dry run: planned, nothing changed" : "applied"
            )
            return true
        case .active:
            let value = try await live(policy.recover.metric, policy, held.record)
            guard value < policy.recover.below else {
                try await commit(&held)
                return false
            }
            try await transition(
                &held,
                to: .recovering,
                "\(policy.recover.metric.rawValue) \(value) < \(policy.recover.below); holding \(Int(policy.recover.holdSeconds)) s"
            )
            return true
        case .recovering:
            let value = try await live(policy.recover.metric, policy, held.record)
            if value >= policy.recover.below {
                try await transition(
                    &held,
                    to: .active,
                    "\(policy.recover.metric.rawValue) \(value) back up: still needed"
                )
            } else if Double(Self.now() - held.record.stateSince) >= policy.recover.holdSeconds * 1000 {
                try await transition(
                    &held,
                    to: .reverting,
                    "below \(policy.recover.below) for \(Int(policy.recover.holdSeconds)) s"
                )
            } else {
                try await commit(&held)
                return false
            }
            return true
        case .reverting:
            try await removeMembers(&held, policy)
            try await revertSettings(&held, policy)
            let activated = held.record.activatedAt
            let id = held.record.activationID
            let notes = held.record.notes
            held.record.finish(outcome: notes.isEmpty ? "reverted" : "reverted with notes", now: Self.now())
            try await commit(&held)
            metrics.reverts.increment()
            if let activated { metrics.addTimeInOverflow(q, seconds: Double(Self.now() - activated) / 1000) }
            await note(
                held.record,
                "reverted",
                notes.isEmpty ? "everything the activation changed is restored" : notes.joined(separator: "; "),
                activation: id
            )
            return true
        }
    }

    // MARK: - Actions

    func addMembers(_ held: inout Held, _ policy: OverflowConfiguration.QueuePolicy) async throws {
        guard !policy.addMembers.isEmpty, !held.record.membersAdded else { return }
        let q = policy.queueId
        let current = try await call(held.record, "GET members") { try await self.api.members(q) }
        if held.record.plannedMembers == nil {
            held.record.plannedMembers = policy.addMembers.filter { !current.contains($0) }
            try await commit(&held)
            await note(
                held.record,
                "plan",
                "add \(held.record.plannedMembers!.count) members (\(policy.addMembers.count - held.record.plannedMembers!.count) already members)"
            )
        }
        let missing = (held.record.plannedMembers ?? []).filter { !current.contains($0) }
        if held.record.dryRun {
            await note(held.record, "dry-run", "would add members \(missing)")
        } else if !missing.isEmpty {
            try await call(held.record, "POST members (\(missing.count))") { try await self.api.addMembers(q, missing) }
        }
        held.record.membersAdded = true
        try await commit(&held)
    }

    func applySettings(_ held: inout Held, _ policy: OverflowConfiguration.QueuePolicy) async throws {
        guard !policy.settings.isEmpty, held.record.settings?.appliedDone != true else { return }
        let q = policy.queueId
        let fields = Set(policy.settings.keys)
        let desired = policy.settings.mapValues { Optional($0) }
        for _ in 0..<3 {
            let queue = try await call(held.record, "GET queue") { try await self.api.queue(q) }
            let touched = OverflowSettingsPlanner.values(of: fields, in: queue)
            if let change = held.record.settings {
                if touched == desired {
                    // Written before a restart: done, nothing to repeat.
                    held.record.settings?.appliedDone = true
                    try await commit(&held)
                    await note(held.record, "resume", "settings already applied")
                    return
                }
                if queue["dateModified"]?.stringValue != change.baselineDateModified || touched != change.originals {
                    metrics.conflicts.increment()
                    held.record.notes.append("queue edited by someone else while planning; re-planned on their version")
                    await note(
                        held.record,
                        "conflict",
                        "queue changed since the plan: re-planning on the newer version"
                    )
                    held.record.settings = nil
                }
            }
            if held.record.settings == nil {
                held.record.settings = OverflowActivation.SettingsChange(
                    baselineDateModified: queue["dateModified"]?.stringValue,
                    originals: touched,
                    applied: policy.settings
                )
                try await commit(&held)
                await note(held.record, "plan", "set \(fields.sorted().joined(separator: ", "))")
            }
            if held.record.dryRun {
                await note(held.record, "dry-run", "would set \(policy.settings)")
                return
            }
            let modified = OverflowSettingsPlanner.applying(desired, to: queue)
            // Re-read right before writing: the PUT replaces the whole queue.
            let again = try await call(held.record, "GET queue (before PUT)") { try await self.api.queue(q) }
            guard again["dateModified"] == queue["dateModified"],
                OverflowSettingsPlanner.values(of: fields, in: again) == touched
            else {
                metrics.conflicts.increment()
                await note(held.record, "conflict", "queue changed between read and write: re-planning")
                continue
            }
            try await call(held.record, "PUT queue") { try await self.api.putQueue(q, modified) }
            held.record.settings?.appliedDone = true
            try await commit(&held)
            return
        }
        throw StepError.keptChanging("queue \(policy.label) kept changing while applying settings; retrying later")
    }

    func removeMembers(_ held: inout Held, _ policy: OverflowConfiguration.QueuePolicy) async throws {
        guard held.record.membersAdded, !held.record.membersRemoved else { return }
        let q = policy.queueId
        let planned = held.record.plannedMembers ?? []
        if !held.record.dryRun && !planned.isEmpty {
            let current = try await call(held.record, "GET members") { try await self.api.members(q) }
            let present = planned.filter { current.contains($0) }
            if present.count < planned.count {
                held.record.notes.append(
                    "\(planned.count - present.count) added members were already removed by someone else"
                )
            }
            if !present.isEmpty {
                try await call(held.record, "POST members?delete=true (\(present.count))") {
                    try await self.api.removeMembers(q, present)
                }
            }
        }
        held.record.membersRemoved = true
        try await commit(&held)
    }

    func revertSettings(_ held: inout Held, _ policy: OverflowConfiguration.QueuePolicy) async throws {
        guard let change = held.record.settings, change.appliedDone, !change.revertDone else { return }
        let q = policy.queueId
        for _ in 0..<3 {
            let queue = try await call(held.record, "GET queue") { try await self.api.queue(q) }
            let (restore, kept) = OverflowSettingsPlanner.revert(change, current: queue)
            if !restore.isEmpty {
                let modified = OverflowSettingsPlanner.applying(restore, to: queue)
                let again = try await call(held.record, "GET queue (before PUT)") { try await self.api.queue(q) }
                guard again["dateModified"] == queue["dateModified"] else {
                    metrics.conflicts.increment()
                    await note(held.record, "conflict", "queue changed between read and write: re-planning the revert")
                    continue
                }
                try await call(held.record, "PUT queue (restore \(restore.keys.sorted().joined(separator: ", ")))") {
                    try await self.api.putQueue(q, modified)
                }
            }
            for field in kept {
                metrics.conflicts.increment()
                let message = "'\(field)' was changed by someone else during the activation: left as they set it"
                held.record.notes.append(message)
                await note(held.record, "human-change-kept", message)
            }
            held.record.settings?.revertDone = true
            try await commit(&held)
            return
        }
        throw StepError.keptChanging("queue \(policy.label) kept changing while reverting; retrying later")
    }

    // MARK: - Helpers

    func live(
        _ metric: OverflowConfiguration.LiveMetric,
        _ policy: OverflowConfiguration.QueuePolicy,
        _ record: OverflowActivation
    ) async throws -> Double {
        let q = policy.queueId
        switch metric {
        case .estimatedWaitSeconds:
            return try await call(record, "GET estimatedwaittime") { try await self.api.estimatedWaitSeconds(q) } ?? 0
        case .waiting:
            return try await call(record, "POST observations query") { try await self.api.observations(q) }.waiting
                ?? 0
        case .longestWaitingSeconds:
            return try await call(record, "POST observations query") { try await self.api.observations(q) }
                .longestWaitingSeconds ?? 0
        }
    }

    /// Runs one API call and audits it with its timing and result.
    func call<T: Sendable>(
        _ record: OverflowActivation,
        _ what: String,
        _ body: @Sendable () async throws -> T
    ) async throws -> T {
        let started = ContinuousClock.now
        do {
            let value = try await body()
            await note(record, "api", what, durationMs: Self.milliseconds(since: started))
            return value
        } catch {
            await note(
                record,
                "api",
                "\(what): \(error)",
                result: "error",
                durationMs: Self.milliseconds(since: started)
            )
            throw error
        }
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Int {
        let d = ContinuousClock.now - start
        return Int(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
    }

    func note(
        _ record: OverflowActivation,
        _ event: String,
        _ detail: String,
        result: String = "ok",
        durationMs: Int? = nil,
        activation: String? = nil
    ) async {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        await audit.write(
            OverflowAuditRecord(
                time: f.string(from: Date()),
                queueId: record.queueID,
                activationId: activation ?? record.activationID,
                state: record.state.rawValue,
                event: event,
                detail: detail,
                result: result,
                durationMs: durationMs,
                instance: owner,
                dryRun: record.dryRun || configuration.dryRun
            )
        )
    }

    static func encode(_ record: OverflowActivation) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(record)) ?? Data(), as: UTF8.self)
    }

    static func decode(_ document: VersionedDocument) throws -> OverflowActivation {
        try JSONDecoder().decode(OverflowActivation.self, from: Data(document.body.utf8))
    }
}
