/// What a claim on a dedup key found.
public enum ClaimOutcome: Sendable, Equatable {
    /// The caller now holds the key until its lease ends: do the side effect, then complete.
    case claimed
    /// The key was completed within the retention window: skip the event.
    case duplicate
    /// Another worker holds a live lease until `untilMilliseconds` (epoch ms).
    case busy(untilMilliseconds: Int64)
}

/// A durable record of a handler's effect, written in the same transaction that marks its
/// key done — so a crash either keeps both or neither (no effect is ever applied twice).
public struct SideEffect: Sendable, Equatable {
    public var handler: String
    public var dedupKey: String
    public var payload: String

    public init(handler: String, dedupKey: String, payload: String) {
        self.handler = handler
        self.dedupKey = dedupKey
        self.payload = payload
    }
}

/// A store failure; the message names the store and the operation.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// The SQLSTATE of a PostgreSQL error (e.g. `40P01` for a detected deadlock), if any.
    public var sqlState: String?

    public init(_ description: String, sqlState: String? = nil) {
        self.description = description
        self.sqlState = sqlState
    }

    /// A transaction the database aborted to resolve a conflict (deadlock or serialization
    /// failure): running the same statement again is correct and will succeed.
    public var isTransientConflict: Bool { sqlState == "40P01" || sqlState == "40001" }
}

/// Claim-then-complete idempotency keys, shared by every worker that uses the same store.
///
/// - `claim`: take each key with a lease unless it is done within the window (duplicate) or
///   leased by someone else (busy). An expired lease (a crashed worker) is taken over.
/// - `complete`: mark keys done (kept for the retention window) and record side effects,
///   atomically, only for keys the caller still owns; returns those keys.
/// - `release`: give keys back (failed or dead-lettered events stay re-processable).
public protocol IdempotencyStore: Sendable {
    func claim(
        _ keys: [String],
        owner: String,
        nowMilliseconds: Int64,
        leaseMilliseconds: Int64
    ) async throws
        -> [String: ClaimOutcome]
    func complete(
        _ keys: [String],
        owner: String,
        nowMilliseconds: Int64,
        retainMilliseconds: Int64,
        sideEffects: [SideEffect]
    ) async throws -> Set<String>
    func release(_ keys: [String], owner: String) async throws
    /// Deletes keys past their retention window (and abandoned claims); returns how many.
    func purge(nowMilliseconds: Int64) async throws -> Int
    /// Recorded side effects of `handler` applied at or after `appliedSince` (epoch ms), in
    /// the order they were recorded (handlers rebuild in-memory state from them on start).
    func sideEffects(handler: String, appliedSince: Int64) async throws -> [SideEffect]
    /// Deletes side effects of `handler` applied before `appliedBefore`; returns how many.
    func purgeSideEffects(handler: String, appliedBefore: Int64) async throws -> Int
    /// The state (`claimed` or `done`) of each of `keys` the store holds; absent keys (never
    /// claimed, released after a failure, or purged) are left out. For inspection (the
    /// console's conversation trace), not for the hot path.
    func keyStates(_ keys: [String]) async throws -> [String: String]
    func close() async
}

extension IdempotencyStore {
    /// Every recorded side effect of `handler`, oldest first (inspection and tests).
    public func sideEffects(handler: String) async throws -> [SideEffect] {
        try await sideEffects(handler: handler, appliedSince: 0)
    }
}
