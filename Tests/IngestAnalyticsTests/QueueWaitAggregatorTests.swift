import Foundation
import IngestCore
import Testing

@testable import IngestAnalytics

@Suite("Queue wait aggregation by event time")
struct QueueWaitAggregatorTests {
    let base: Int64 = 1_794_999_600_000  // on a 30-minute boundary (997,222 × 1,800,000)
    let key = QueueWaitAggregator.QueueKey(queueID: "q-1", mediaType: "voice")

    func observation(
        _ minute: Double,
        wait: Double,
        _ outcome: ACDOutcome = .answered,
        queue: String = "q-1"
    )
        -> WaitObservation
    {
        WaitObservation(
            queueID: queue,
            mediaType: "voice",
            eventTimeMilliseconds: base + Int64(minute * 60_000),
            waitMilliseconds: wait,
            outcome: outcome
        )
    }

    @Test func countsRatesAndServiceLevel() {
        var a = QueueWaitAggregator()
        _ = a.add(observation(0.5, wait: 5_000))
        _ = a.add(observation(1.5, wait: 30_000))
        _ = a.add(observation(2.5, wait: 60_000, .abandoned))
        _ = a.add(observation(3.5, wait: 90_000, .flowOut))
        let s = a.window(key, minutes: 5)!
        #expect(s.offered == 4)
        #expect(s.answered == 2)
        #expect(s.abandoned == 1)
        #expect(s.flowedOut == 1)
        #expect(s.abandonRate == 0.25)
        #expect(s.serviceLevel == 0.5, "one of two answered within 20 s")
        #expect(s.p50 != nil)
    }

    @Test func windowsUseEventTimeAndTheirBoundaries() {
        var a = QueueWaitAggregator()
        _ = a.add(observation(0.5, wait: 1_000))  // minute 0
        _ = a.add(observation(10.5, wait: 2_000))  // minute 10
        _ = a.add(observation(20.5, wait: 3_000))  // minute 20: newest
        #expect(a.window(key, minutes: 5)!.offered == 1, "only minute 20 is within 5 minutes")
        #expect(a.window(key, minutes: 15)!.offered == 2, "minutes 10 and 20")
        #expect(a.window(key, minutes: 60)!.offered == 3)
        // The interval starting at base holds all three (0–30 min).
        #expect(a.interval(key, startingAt: base)!.offered == 3)
    }

    @Test func lateEventsWithinTheAllowedLatenessCountBeyondItAreLate() {
        var config = QueueWaitAggregator.Configuration()
        config.allowedLatenessMilliseconds = 120_000
        var a = QueueWaitAggregator(configuration: config)
        #expect(a.add(observation(10, wait: 1_000)) == .counted)
        #expect(a.add(observation(9, wait: 2_000)) == .counted, "one minute late, out of order: counted in its window")
        #expect(a.add(observation(7, wait: 3_000)) == .late)
        #expect(a.lateEvents == 1)
        #expect(a.interval(key, startingAt: base)!.offered == 2)
    }

    @Test func intervalsCloseAfterTheirEndPlusLatenessAndAreEvicted() {
        var a = QueueWaitAggregator()
        _ = a.add(observation(5, wait: 1_000))
        _ = a.add(observation(31, wait: 1_000))
        #expect(a.closedIntervals().isEmpty, "lateness not yet passed")
        _ = a.add(observation(33, wait: 1_000))
        let closed = a.closedIntervals()
        #expect(closed.count == 1 && closed[0].1 == base)
        a.evict(publishedIntervals: closed)
        #expect(a.interval(key, startingAt: base) == nil)
        #expect(a.interval(key, startingAt: base + 30 * 60_000)?.offered == 2)
    }

    @Test func percentilesAgreeWithExactOnesAndStateStaysSmall() {
        var a = QueueWaitAggregator()
        var waits: [Double] = []
        var state: UInt64 = 9
        for i in 0..<60_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1
            let u = Double(state >> 11) / Double(1 << 53)
            let wait = -log(1 - u) * 40_000
            waits.append(wait)
            _ = a.add(observation(Double(i) / 1_000, wait: wait))  // spread over 60 minutes
        }
        let s = a.window(key, minutes: 60)!
        let sorted = waits.sorted()
        for (q, estimate) in [(0.5, s.p50!), (0.9, s.p90!), (0.99, s.p99!)] {
            let rank = Double(sorted.firstIndex { $0 >= estimate } ?? sorted.count) / Double(sorted.count)
            #expect(abs(rank - q) <= 0.01, "p\(Int(q * 100)) rank error")
        }
        for minutes in [5, 15, 60] {
            #expect(a.stateBytes(key, minutes: minutes) <= 16 * 1024, "\(minutes)-minute window state")
        }
    }

    /// The same waits in two different orders (as two different instance counts deliver
    /// them) give identical figures, not just figures within the error: buckets stay
    /// order-independent up to their buffer limit, and sealing them changes nothing.
    @Test func figuresDependOnTheWaitsNotOnTheirOrder() {
        var random = SplitMix64(seed: 3)
        // 900 waits over 100 s (within the allowed lateness, so any order counts them all),
        // across a minute boundary.
        let waits = (0..<900).map { i in
            observation(
                0.5 + Double(i) / 540,
                wait: Double(random.next() % 600_000),
                i % 9 == 0 ? .abandoned : .answered
            )
        }
        var shuffled = waits
        for i in stride(from: shuffled.count - 1, to: 0, by: -1) {
            shuffled.swapAt(i, Int(random.next() % UInt64(i + 1)))
        }
        var inOrder = QueueWaitAggregator()
        var outOfOrder = QueueWaitAggregator()
        for w in waits { _ = inOrder.add(w) }
        for w in shuffled { _ = outOfOrder.add(w) }
        for minutes in [1, 5, 15] {
            let a = inOrder.window(key, minutes: minutes)
            #expect(a != nil && a == outOfOrder.window(key, minutes: minutes), "\(minutes)-minute window")
        }
        let interval = inOrder.interval(key, startingAt: base)
        #expect(interval?.offered == 900 && interval == outOfOrder.interval(key, startingAt: base))
        // Sealing (a wait 10 minutes later, on another queue) compresses the buckets: same figures.
        _ = inOrder.add(observation(10, wait: 1, queue: "q-2"))
        #expect(inOrder.interval(key, startingAt: base) == interval)
        // A plain merging digest (flushing every 100 values) is order-dependent: the reason
        // for the buffer limit.
        var plainA = TDigest(compression: 50)
        var plainB = TDigest(compression: 50)
        for w in waits { plainA.add(w.waitMilliseconds) }
        for w in shuffled { plainB.add(w.waitMilliseconds) }
        #expect(plainA.quantile(0.9) != plainB.quantile(0.9))
    }

    @Test func queueCardinalityIsBounded() {
        var config = QueueWaitAggregator.Configuration()
        config.maxQueues = 2
        var a = QueueWaitAggregator(configuration: config)
        #expect(a.add(observation(1, wait: 1, queue: "a")) == .counted)
        #expect(a.add(observation(1, wait: 1, queue: "b")) == .counted)
        #expect(a.add(observation(1, wait: 1, queue: "c")) == .rejectedCardinality)
        #expect(a.add(observation(2, wait: 1, queue: "a")) == .counted)
    }
}
