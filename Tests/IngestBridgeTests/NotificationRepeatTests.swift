import Testing

@testable import IngestBridge

@Suite("Bridge: recognising a notification delivered twice")
struct NotificationRepeatTests {
    static func message(_ correlation: String, _ body: String, topic: String = "v2.users.u1.presence") -> [UInt8] {
        Array(
            #"{"topicName":"\#(topic)","version":"2","eventBody":\#(body),"metadata":{"CorrelationId":"\#(correlation)"}}"#
                .utf8
        )
    }

    /// The overlapping sockets of a rotation may carry one event with different
    /// CorrelationIds and keys in another order: the same content.
    @Test func theSameEventOnTwoSocketsHasOneContentDigest() throws {
        let first = try #require(
            NotificationContent.digest(
                Self.message("c-1", #"{"id":"u1","presenceDefinition":{"systemPresence":"Away"}}"#)
            )
        )
        let second = NotificationContent.digest(
            Self.message("c-2", #"{"presenceDefinition":{"systemPresence":"Away"},"id":"u1"}"#)
        )
        #expect(first == second)
        let other = NotificationContent.digest(
            Self.message("c-1", #"{"id":"u1","presenceDefinition":{"systemPresence":"Available"}}"#)
        )
        #expect(other != first, "a different body is a different event")
        let elsewhere = NotificationContent.digest(
            Self.message(
                "c-1",
                #"{"id":"u1","presenceDefinition":{"systemPresence":"Away"}}"#,
                topic: "v2.users.u2.presence"
            )
        )
        #expect(elsewhere != first, "the same body on another topic is another event")
        #expect(NotificationContent.digest(Array(#"{"topicName":"t","eventBody":[1]}"#.utf8)) == nil)
        #expect(NotificationContent.digest(Array("not json".utf8)) == nil)
    }

    /// A repeat is recognised within the window; the same content later is new again (a
    /// queue's figures going back to what they were), and the capacity bounds memory.
    @Test func repeatsAreRecognisedOnlyWithinTheWindow() {
        var recent = RecentDigests(capacity: 3, window: .seconds(120))
        let t0 = ContinuousClock.now
        func isNew(_ digest: String, _ seconds: Int) -> Bool { recent.insert(digest, at: t0 + .seconds(seconds)) }
        #expect(isNew("a", 0))
        #expect(!isNew("a", 5), "a repeat in the window")
        #expect(isNew("a", 121), "the same content after the window is new")
        #expect(isNew("b", 122))
        #expect(isNew("c", 123))
        #expect(isNew("d", 124))
        #expect(isNew("a", 125), "beyond the capacity the oldest is forgotten")
        #expect(!isNew("d", 126))
        for i in 0..<1_000 { _ = isNew("x\(i)", 130) }
        #expect(!isNew("x999", 131))
        #expect(isNew("x0", 131), "long forgotten")
    }
}
