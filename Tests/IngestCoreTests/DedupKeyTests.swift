import IngestCrypto
import Testing

@testable import IngestCore

@Suite("Idempotency keys")
struct DedupKeyTests {
    private func detail(_ type: String, participant: String, eventTime: Int, id: String? = nil) -> [UInt8] {
        let idField = id.map { "\"id\":\"\($0)\"," } ?? ""
        return Array(
            """
            {\(idField)"detail":{"topicName":"v2.detail.events.conversation.c-1.\(type)","eventBody":{\
            "eventTime":\(eventTime),"conversationId":"c-1","participantId":"\(participant)","sessionId":"s-\(participant)"}}}
            """.utf8
        )
    }

    @Test func envelopeIDWinsWhenPresent() throws {
        let body = try Fixtures.bytes("eventbridge.v2.detail.events.conversation.ID.customer.start.json")
        let key = try DedupKey.derive(from: body, digest: SHA256Digest.hex)
        #expect(key.key == "id:adbcfa5b-0116-4baa-b66b-a3f5902e95bf")
        #expect(key.conversationID == "2f7bf00a-0fc2-4d6a-9b56-92238191433e")
    }

    /// One conversation emits customer.start once per participant: both are real events.
    @Test func sameTypeForTwoParticipantsGivesTwoKeysAndRedeliveryTheSameKey() throws {
        let p1 = try DedupKey.derive(
            from: detail("customer.start", participant: "p1", eventTime: 1_649_237_444_949),
            digest: SHA256Digest.hex
        )
        let p2 = try DedupKey.derive(
            from: detail("customer.start", participant: "p2", eventTime: 1_649_237_444_949),
            digest: SHA256Digest.hex
        )
        #expect(p1.key != p2.key)
        #expect(p1.key == "conv:c-1|customer.start|p1|s-p1|1649237444949")
        #expect(
            try DedupKey.derive(
                from: detail("customer.start", participant: "p1", eventTime: 1_649_237_444_949),
                digest: SHA256Digest.hex
            ) == p1
        )
        let end = try DedupKey.derive(
            from: detail("customer.end", participant: "p1", eventTime: 1_649_237_444_949),
            digest: SHA256Digest.hex
        )
        #expect(end.key != p1.key)
    }

    @Test func otherFamiliesUseEntityTopicAndEventTime() throws {
        let audit =
            #"{"topicName":"v2.audits.entitytype.UserPresence.entityid.u-9","eventBody":{"eventTime":"2021-06-25T15:11:52.000Z"}}"#
        #expect(
            try DedupKey.derive(from: Array(audit.utf8), digest: SHA256Digest.hex).key
                == "audit:u-9|v2.audits.entitytype.UserPresence.entityid.u-9|2021-06-25T15:11:52.000Z"
        )
        #expect(throws: JSONScanError.self) { try DedupKey.derive(from: Array("[1]".utf8), digest: SHA256Digest.hex) }
    }

    private func key(_ text: String, header: String? = nil) throws -> String {
        try DedupKey.derive(from: Array(text.utf8), producedEventID: header, digest: SHA256Digest.hex).key
    }

    /// Regression (issue 10): every record without `id` and `topicName` got `other:||`, and
    /// every observation notification of one queue one constant key: the first won, the rest
    /// were skipped as duplicates. 50 distinct records must give 50 keys; 20 identical
    /// redeliveries one.
    @Test(arguments: ["summary", "enriched", "observation", "conversationWithoutTime"])
    func distinctRecordsWithoutAnIDGetDistinctKeysAndRedeliveriesOne(shape: String) throws {
        func record(_ i: Int) -> String {
            switch shape {
            case "summary":
                #"{"queueId":"q-1","mediaType":"voice","interval":"2026-12-01T10:00:00Z/2026-12-01T10:30:00Z","final":false,"offered":\#(i)}"#
            case "enriched":
                #"{"conversationId":"c-\#(i)","derived":{"tAcd":\#(i * 1000)},"details":{}}"#
            case "observation":
                #"{"topicName":"v2.analytics.queues.q-1.observations","version":"2","eventBody":{"group":{"queueId":"q-1"},"data":[{"metrics":[{"metric":"oWaiting","stats":{"count":\#(i)}}]}]}}"#
            default:
                #"{"topicName":"v2.detail.events.conversation.c-1.acd.end","eventBody":{"conversationId":"c-1","participantId":"p\#(i)"}}"#
            }
        }
        let distinct = try Set((0..<50).map { try key(record($0)) })
        #expect(distinct.count == 50)
        let redelivered = try Set((0..<20).map { _ in try key(record(7)) })
        #expect(redelivered.count == 1)
        #expect(redelivered.first?.hasPrefix("sha256:") == true)
    }

    @Test func producedEventIDHeaderWinsAndIsStable() throws {
        let body = #"{"conversationId":"c-1","enrichedAt":"2026-12-01T10:00:00Z"}"#
        let later = #"{"conversationId":"c-1","enrichedAt":"2026-12-01T10:00:09Z"}"#
        // A re-publication after a crash: other bytes, same producer id → one event.
        #expect(try key(body, header: "enriched|id:e1") == key(later, header: "enriched|id:e1"))
        #expect(try key(body, header: "enriched|id:e1") != key(body, header: "enriched|id:e2"))
        #expect(try key(body, header: "enriched|id:e1") == "eid:enriched|id:e1")
    }

    @Test func recordPositionKeysEveryRecord() {
        #expect(DedupKey.position(topic: "t", partition: 1, offset: 9) == "pos:t/1/9")
        #expect(
            DedupKey.position(topic: "t", partition: 1, offset: 9)
                != DedupKey.position(topic: "t", partition: 2, offset: 9)
        )
    }
}
