/// Paces a loop at a fixed rate on the monotonic clock, so a wall-clock step (NTP at boot, a
/// suspended VM) neither bursts nor stalls it. Used by every loop that sends at `--rate`.
public struct RatePacer: Sendable {
    /// When the loop started.
    public let start: ContinuousClock.Instant
    private let perSecond: Double

    /// `perSecond` ≤ 0 means unpaced: ``delay(before:)`` is always zero.
    public init(perSecond: Double, start: ContinuousClock.Instant = .now) {
        self.perSecond = perSecond
        self.start = start
    }

    /// How long to wait before iteration `index` (0-based) is due; zero when it is late.
    public func delay(before index: Int, now: ContinuousClock.Instant = .now) -> Duration {
        guard perSecond > 0 else { return .zero }
        let due = start + .seconds(Double(index) / perSecond)
        return due > now ? due - now : .zero
    }

    /// Seconds since ``start``.
    public func elapsedSeconds(now: ContinuousClock.Instant = .now) -> Double {
        (now - start).inSeconds
    }
}

extension Duration {
    /// This duration in (fractional) seconds, for APIs that take a `TimeInterval`.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
