import IngestKafka
import Testing

@testable import IngestAnalytics

@Suite("Queue ownership follows the waits partitions")
struct QueueOwnershipTests {
    func event(
        _ kind: RebalanceEvent.Kind,
        _ partitions: [Int32],
        incremental: Bool = false,
        topic: String = "w"
    )
        -> RebalanceEvent
    {
        RebalanceEvent(
            kind: kind,
            partitions: partitions.map { TopicPartition(topic: topic, partition: $0) }
                + [TopicPartition(topic: "other", partition: 9)],
            incremental: incremental
        )
    }

    @Test func eagerRebalanceParksThenKeepsWhatComesBackAndRebuildsTheRest() {
        var o = QueueOwnership(waitsTopic: "w", partitionCount: 6)
        #expect(o.apply(event(.assigned, [0, 1, 2])).gained == [0, 1, 2])
        let queue = (0..<100).map { "q-\($0)" }.first { o.partition(of: $0) == 1 }!
        #expect(o.exports(queue) && o.holds(queue))

        let revoke = o.apply(event(.revoked, [0, 1, 2]))
        #expect(revoke.parked == [0, 1, 2] && revoke.dropped.isEmpty)
        #expect(!o.exports(queue) && o.holds(queue), "parked: kept, not exported")

        let next = o.apply(event(.assigned, [1, 4]))
        #expect(next.resumed == [1] && next.gained == [4] && next.dropped == [0, 2])
        #expect(o.owned == [1, 4] && o.parked.isEmpty && o.exports(queue))
    }

    @Test func cooperativeRevocationDropsAtOnce() {
        var o = QueueOwnership(waitsTopic: "w", partitionCount: 4)
        _ = o.apply(event(.assigned, [0, 1], incremental: true))
        let change = o.apply(event(.revoked, [1], incremental: true))
        #expect(change.dropped == [1] && change.parked.isEmpty && o.owned == [0])
        #expect(o.apply(event(.assigned, [3], incremental: true)).gained == [3])
    }

    @Test func partitionsOfOtherTopicsAreIgnoredAndQueuesSpreadOverPartitions() {
        var o = QueueOwnership(waitsTopic: "w", partitionCount: 6)
        #expect(o.apply(event(.assigned, [])).gained.isEmpty)
        let partitions = Set((0..<200).map { o.partition(of: "queue-\($0)") })
        #expect(partitions == Set(0..<6))
    }

    @Test func waitRecordsRoundTrip() throws {
        let w = WaitObservation(
            queueID: "q-\"1\"",
            mediaType: "voice",
            eventTimeMilliseconds: 1_700_000_000_123,
            waitMilliseconds: 4200.5,
            outcome: .flowOut
        )
        #expect(try AnalyticsInput.wait(WaitRecord.value(w)) == w)
        #expect(throws: AnalyticsInput.ParseError.self) {
            try AnalyticsInput.wait(
                Array(#"{"queueId":"q","mediaType":"voice","eventTime":1e300,"waitMs":1,"outcome":"ANSWERED"}"#.utf8)
            )
        }
        #expect(throws: AnalyticsInput.ParseError.missingField("outcome")) {
            try AnalyticsInput.wait(
                Array(#"{"queueId":"q","mediaType":"voice","eventTime":1,"waitMs":1,"outcome":"nope"}"#.utf8)
            )
        }
        #expect(WaitRecord.eventID(sourceKey: "id:abc", index: 2) == "wait:id:abc#2")
    }
}
