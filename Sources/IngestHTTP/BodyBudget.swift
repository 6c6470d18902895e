import Synchronization

/// A server-wide budget of request bytes held in memory (parser buffers and bodies being
/// assembled, across every connection and event loop), so memory is bounded by configuration
/// and not by what clients send.
///
/// A connection is charged what it holds, and for a body of known length what that body will
/// need once complete (a reservation). A body larger than ``smallBodyBytes`` is refused (503,
/// connection closed) when it does not fit under ``limitBytes``; smaller ones may also use a
/// reserve above the limit (``smallBodyReserveBytes``), so that large uploads cannot crowd out
/// the small requests the gateway exists for.
///
/// Thread-safe (one atomic counter shared by the loops).
public final class BodyBudget: Sendable {
    public let limitBytes: Int
    public let smallBodyBytes: Int
    public let smallBodyReserveBytes: Int
    private let used = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)

    public init(limitBytes: Int, smallBodyBytes: Int = 64 << 10, smallBodyReserveBytes: Int = 32 << 20) {
        self.limitBytes = limitBytes
        self.smallBodyBytes = smallBodyBytes
        self.smallBodyReserveBytes = smallBodyReserveBytes
    }

    /// Bytes charged now.
    public var usedBytes: Int { used.load(ordering: .relaxed) }
    /// Requests refused because they did not fit.
    public var refusedCount: Int { refused.load(ordering: .relaxed) }

    /// Whether a body needing `bytes` more may be taken on top of what is charged now.
    func admits(additional bytes: Int) -> Bool {
        let now = used.load(ordering: .relaxed)
        if bytes <= smallBodyBytes { return now + bytes <= limitBytes + smallBodyReserveBytes }
        return now + bytes <= limitBytes
    }

    /// Whether a connection already holding `held` bytes of a body that keeps growing
    /// (chunked) may read more.
    func admitsGrowth(held: Int) -> Bool {
        held <= smallBodyBytes || used.load(ordering: .relaxed) <= limitBytes
    }

    func charge(_ delta: Int) {
        if delta != 0 { used.add(delta, ordering: .relaxed) }
    }

    func countRefusal() { refused.add(1, ordering: .relaxed) }
}
