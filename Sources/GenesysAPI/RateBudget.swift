import Foundation
import IngestCore
import Synchronization

/// Paces requests of one OAuth client. Implementations must hold across every worker instance
/// that shares the client: Genesys counts requests per client, not per process.
public protocol RateBudget: Sendable {
    /// Waits until a request may be sent, then counts it.
    func acquire() async throws
    /// Adapts to the `inin-ratelimit-*` headers of a response.
    func observe(count: Int?, allowed: Int?, resetSeconds: Double?)
    /// Sends nothing for `seconds` (after a 429).
    func pause(seconds: Double)
}

/// A budget of `limit` requests per `period` (Genesys: 300 per minute per OAuth client),
/// counted in a shared store so that all instances together stay under it.
///
/// The period is cut into `slices`; each slice admits `⌊limit × slice / (period + slice)⌋`
/// requests. Any sliding window of one period overlaps at most `slices + 1` slices, so the
/// total in any such window never exceeds the limit (300/min → 23 requests per 5 s slice,
/// at most 276 in any minute).
public final class SharedRateBudget: RateBudget {
    private let store: any RateBudgetStore
    private let bucket: String
    private let sliceMilliseconds: Int64
    public let perSlice: Int
    private let pausedUntil = LockedValue<ContinuousClock.Instant?>(nil)

    /// - Parameter bucket: the budget's name in the store, normally the OAuth client id.
    public init(
        store: any RateBudgetStore,
        bucket: String,
        limit: Int = 300,
        periodSeconds: Double = 60,
        slices: Int = 12
    ) {
        self.store = store
        self.bucket = bucket
        // Fewer, longer slices for tiny limits, so that every slice admits at least one request
        // and the bound still holds.
        var count = max(1, slices)
        while count > 1 && Self.admitted(limit: limit, period: periodSeconds, slices: count) < 1 { count -= 1 }
        let slice = periodSeconds / Double(count)
        self.sliceMilliseconds = Int64(slice * 1000)
        self.perSlice = max(1, Self.admitted(limit: limit, period: periodSeconds, slices: count))
    }

    static func admitted(limit: Int, period: Double, slices: Int) -> Int {
        let slice = period / Double(slices)
        return Int((Double(limit) * slice / (period + slice)).rounded(.down))
    }

    public func acquire() async throws {
        while true {
            let resume = pausedUntil.withLock { $0 }
            if let resume, resume > .now {
                try await Task.sleep(until: resume, clock: .continuous)
                continue
            }
            let nowMs = WallClock.nowMilliseconds()
            let window = nowMs / sliceMilliseconds
            if try await store.take(bucket: bucket, window: window, limit: perSlice) { return }
            // Full: wait for the next slice, with a little jitter so instances do not stampede.
            let wait = (window + 1) * sliceMilliseconds - nowMs + Int64.random(in: 0...20)
            try await Task.sleep(for: .milliseconds(wait))
        }
    }

    public func observe(count: Int?, allowed: Int?, resetSeconds: Double?) {
        guard let count, let allowed, allowed > 0, count >= allowed else { return }
        pause(seconds: resetSeconds ?? 1)
    }

    public func pause(seconds: Double) {
        // From the wire (Retry-After, inin-ratelimit-reset): never NaN, never forever.
        guard seconds.isFinite, seconds > 0 else { return }
        let until = ContinuousClock.now + .seconds(min(seconds, 300))
        pausedUntil.withLock { if $0 == nil || $0! < until { $0 = until } }
    }
}
