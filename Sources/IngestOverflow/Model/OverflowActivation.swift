import IngestCore

/// The durable state of one queue's overflow controller, stored as one versioned document per
/// queue in the shared store. Every step records what it is about to do before doing it, and
/// what it did after, so a restart at any point resumes without repeating side effects.
public struct OverflowActivation: Sendable, Codable, Equatable {
    public enum State: String, Sendable, Codable, CaseIterable {
        case idle, verifying, acting, active, recovering, reverting
    }

    /// What an activation planned and did to the queue's settings.
    public struct SettingsChange: Sendable, Codable, Equatable {
        /// `dateModified` of the queue the change was planned on.
        public var baselineDateModified: String?
        /// The touched fields' values before the change (`nil`: the field was absent).
        public var originals: [String: JSONValue?]
        /// The values the controller wrote.
        public var applied: [String: JSONValue]
        public var appliedDone = false
        public var revertDone = false

        public init(baselineDateModified: String?, originals: [String: JSONValue?], applied: [String: JSONValue]) {
            self.baselineDateModified = baselineDateModified
            self.originals = originals
            self.applied = applied
        }
    }

    public var queueID: String
    public var state: State = .idle
    public var activationID: String?
    public var dryRun = false
    /// Epoch ms of the detection, of entering the current state, of reaching `active`.
    public var detectedAt: Int64?
    public var stateSince: Int64 = 0
    public var activatedAt: Int64?
    /// Members planned to be added: configured ones that were not members at planning time.
    public var plannedMembers: [String]?
    public var membersAdded = false
    public var membersRemoved = false
    public var settings: SettingsChange?
    /// Conflicts and notes to report (a human's change left in place, …).
    public var notes: [String] = []
    /// The last finished activation, for `ingestctl overflow status`.
    public var lastActivation: Summary?
    /// The time (epoch ms, the signal's own) of the detection signal that started the latest
    /// activation. Signals are delivered at least once: a redelivered or older one must not
    /// start another activation once this one has ended.
    public var triggerSignalAt: Int64?

    public struct Summary: Sendable, Codable, Equatable {
        public var activationID: String
        public var detectedAt: Int64?
        public var activatedAt: Int64?
        public var endedAt: Int64
        public var outcome: String
        public var addedMembers: [String]
        public var changedFields: [String]
        public var notes: [String]
    }

    public init(queueID: String) {
        self.queueID = queueID
    }

    /// Starts a new activation (from idle).
    public mutating func begin(activationID: String, dryRun: Bool, now: Int64, signalAt: Int64? = nil) {
        let last = lastActivation
        let previousSignal = triggerSignalAt
        self = OverflowActivation(queueID: queueID)
        self.lastActivation = last
        self.triggerSignalAt = signalAt ?? previousSignal
        self.activationID = activationID
        self.dryRun = dryRun
        self.detectedAt = now
        self.state = .verifying
        self.stateSince = now
    }

    public mutating func move(to state: State, now: Int64) {
        self.state = state
        self.stateSince = now
        if state == .active && activatedAt == nil { activatedAt = now }
    }

    /// Ends the activation: back to idle, keeping a summary.
    public mutating func finish(outcome: String, now: Int64) {
        let summary = Summary(
            activationID: activationID ?? "-",
            detectedAt: detectedAt,
            activatedAt: activatedAt,
            endedAt: now,
            outcome: outcome,
            addedMembers: membersAdded ? plannedMembers ?? [] : [],
            changedFields: settings?.appliedDone == true ? settings!.applied.keys.sorted() : [],
            notes: notes
        )
        let signal = triggerSignalAt
        self = OverflowActivation(queueID: queueID)
        lastActivation = summary
        // Kept: a redelivery of the signal that started this activation must not start another.
        triggerSignalAt = signal
        stateSince = now
    }
}

/// Pure planning of settings changes on a queue object (read-modify-write).
public enum OverflowSettingsPlanner {
    /// The touched fields' current values (`nil` where absent).
    public static func values(of fields: some Sequence<String>, in queue: [String: JSONValue]) -> [String: JSONValue?] {
        var out: [String: JSONValue?] = [:]
        for f in fields { out[f] = .some(queue[f]) }
        return out
    }

    /// `queue` with `values` set (a `nil` value removes the field).
    public static func applying(_ values: [String: JSONValue?], to queue: [String: JSONValue]) -> [String: JSONValue] {
        var q = queue
        for (k, v) in values {
            if let v { q[k] = v } else { q.removeValue(forKey: k) }
        }
        return q
    }

    /// What a revert does with each touched field of the current queue: restore the original
    /// where the field still holds what the controller applied (or already holds the original),
    /// leave it where someone else changed it since.
    public static func revert(
        _ change: OverflowActivation.SettingsChange,
        current: [String: JSONValue]
    ) -> (restore: [String: JSONValue?], keptHumanChanges: [String]) {
        var restore: [String: JSONValue?] = [:]
        var kept: [String] = []
        for field in change.applied.keys.sorted() {
            let now = current[field]
            let original = change.originals[field] ?? nil
            if now == original { continue }  // already restored
            if now == change.applied[field] {
                restore[field] = .some(original)
            } else {
                kept.append(field)
            }
        }
        return (restore, kept)
    }
}
