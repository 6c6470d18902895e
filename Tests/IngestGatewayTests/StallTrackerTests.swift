import Testing

@testable import IngestGateway

@Suite("Producer stall detection")
struct StallTrackerTests {
    let second: UInt64 = 1_000_000_000

    @Test func failuresWithoutAcknowledgementsForTheThresholdMeanStalled() {
        var t = StallTracker()
        #expect(t.observe(acknowledged: 10, failed: 0, now: 0, threshold: 3 * second) == .healthy)
        #expect(t.observe(acknowledged: 10, failed: 2, now: 1 * second, threshold: 3 * second) == .suspect)
        #expect(t.observe(acknowledged: 10, failed: 2, now: 3 * second, threshold: 3 * second) == .suspect)
        #expect(t.observe(acknowledged: 10, failed: 5, now: 4 * second, threshold: 3 * second) == .stalled)
        // One acknowledgement clears it.
        #expect(t.observe(acknowledged: 11, failed: 6, now: 5 * second, threshold: 3 * second) == .healthy)
    }

    @Test func idleTrafficIsNeverAStall() {
        var t = StallTracker()
        for i in 0..<100 {
            #expect(t.observe(acknowledged: 5, failed: 0, now: UInt64(i) * second, threshold: 3 * second) == .healthy)
        }
    }
}
