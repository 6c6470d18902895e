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
        let key = try DedupKey.derive(from: body)
        #expect(key.key == "id:adbcfa5b-0116-4baa-b66b-a3f5902e95bf")
        #expect(key.conversationID == "2f7bf00a-0fc2-4d6a-9b56-92238191433e")
    }

    /// One conversation emits customer.start once per participant: both are real events.
    @Test func sameTypeForTwoParticipantsGivesTwoKeysAndRedeliveryTheSameKey() throws {
        let p1 = try DedupKey.derive(from: detail("customer.start", participant: "p1", eventTime: 1_649_237_444_949))
        let p2 = try DedupKey.derive(from: detail("customer.start", participant: "p2", eventTime: 1_649_237_444_949))
        #expect(p1.key != p2.key)
        #expect(p1.key == "conv:c-1|customer.start|p1|s-p1|1649237444949")
        #expect(
            try DedupKey.derive(from: detail("customer.start", participant: "p1", eventTime: 1_649_237_444_949)) == p1
        )
        let end = try DedupKey.derive(from: detail("customer.end", participant: "p1", eventTime: 1_649_237_444_949))
        #expect(end.key != p1.key)
    }

    @Test func otherFamiliesUseEntityTopicAndEventTime() throws {
        let audit =
            #"{"topicName":"v2.audits.entitytype.UserPresence.entityid.u-9","eventBody":{"eventTime":"2021-06-25T15:11:52.000Z"}}"#
        #expect(
            try DedupKey.derive(from: Array(audit.utf8)).key
                == "audit:u-9|v2.audits.entitytype.UserPresence.entityid.u-9|2021-06-25T15:11:52.000Z"
        )
        #expect(throws: JSONScanError.self) { try DedupKey.derive(from: Array("[1]".utf8)) }
    }
}
