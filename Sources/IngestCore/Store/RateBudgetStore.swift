/// Counters for request budgets shared by several processes.
public protocol RateBudgetStore: Sendable {
    /// Counts one request in `bucket`'s `window` if fewer than `limit` were counted there;
    /// returns whether it was counted.
    func take(bucket: String, window: Int64, limit: Int) async throws -> Bool
}

/// A budget store for one process (tests, or a single worker without a shared store).
public final class InMemoryRateBudgetStore: RateBudgetStore {
    private let counts = LockedValue<[String: (window: Int64, used: Int)]>([:])

    public init() {}

    public func take(bucket: String, window: Int64, limit: Int) async throws -> Bool {
        counts.withLock { counts in
            var entry = counts[bucket] ?? (window, 0)
            if entry.window != window { entry = (window, 0) }
            guard entry.used < limit else { return false }
            entry.used += 1
            counts[bucket] = entry
            return true
        }
    }
}
