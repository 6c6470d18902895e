import Foundation
import GenesysSimulator
import IngestCore
import Testing

@testable import IngestReconciliation

@Suite("Reconciliation: detail events rebuilt from conversation details")
struct MissedDetailEventsTests {
    static let t0: Int64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z

    static func shape(abandoned: Bool) -> ConversationDetailsFactory.Shape {
        ConversationDetailsFactory.Shape(
            conversationID: "c-1",
            queueID: "q-1",
            agentID: abandoned ? nil : "agent-1",
            start: t0,
            queueStart: t0 + 500,
            queueEnd: t0 + 12_345,
            end: t0 + (abandoned ? 12_345 : 300_000)
        )
    }

    /// A live notification as a channel delivers it.
    static func live(_ type: String, _ body: JSONValue) -> [UInt8] {
        Array(
            JSONValue.object([
                "topicName": .string("v2.detail.events.conversation.c-1.\(type)"), "version": "2", "eventBody": body,
                "metadata": ["CorrelationId": "x"],
            ]).jsonData
        )
    }

    static func key(_ bytes: [UInt8]) throws -> String { try DedupKey.derive(from: bytes, digest: { _ in "d" }).key }

    @Test(arguments: [false, true])
    func rebuiltEventsHaveTheLiveEventsIdentityAndFields(abandoned: Bool) throws {
        let s = Self.shape(abandoned: abandoned)
        let details = ConversationDetailsFactory.details(s)
        let events = MissedDetailEvents.events(in: details, window: Self.t0...(Self.t0 + 400_000))
        #expect(
            events.map(\.topicName).sorted() == [
                "v2.detail.events.conversation.c-1.acd.end", "v2.detail.events.conversation.c-1.customer.end",
            ]
        )
        let acd = try #require(events.first { $0.topicName.hasSuffix("acd.end") })
        let liveACD = Self.live(
            "acd.end",
            [
                "conversationId": "c-1", "participantId": .string(s.acdParticipantID),
                "sessionId": .string(s.sessionID),
                "queueId": "q-1", "eventTime": .number(Double(s.queueEnd)),
                "acdOutcome": abandoned ? "ABANDON" : "ANSWERED",
                "connectedDurationMs": .number(Double(s.queueEnd - s.queueStart)), "mediaType": "VOICE",
            ]
        )
        #expect(try Self.key(Array(acd.message.jsonData)) == (try Self.key(liveACD)), "one identity: counted once")
        #expect(try Self.key(Array(acd.message.jsonData)).hasPrefix("conv:c-1|acd.end|"))
        let body = try #require(acd.message["eventBody"])
        #expect(body["queueId"] == "q-1" && body["connectedDurationMs"] == .number(Double(s.queueEnd - s.queueStart)))
        #expect(body["acdOutcome"]?.stringValue == (abandoned ? "ABANDON" : "ANSWERED"))
        #expect(acd.eventTime == s.queueEnd)
        let end = try #require(events.first { $0.topicName.hasSuffix("customer.end") })
        let liveEnd = Self.live(
            "customer.end",
            [
                "conversationId": "c-1", "participantId": .string(s.customerParticipantID),
                "sessionId": .string(s.sessionID), "eventTime": .number(Double(s.end)), "disconnectType": "PEER",
            ]
        )
        #expect(try Self.key(Array(end.message.jsonData)) == (try Self.key(liveEnd)))
    }

    @Test func onlyWhatFellInTheWindowTheTypesAndTheQueuesIsRebuilt() {
        let s = Self.shape(abandoned: false)
        let details = ConversationDetailsFactory.details(s)
        // The queue was left at t0+12,345; the conversation ended at t0+300,000.
        #expect(MissedDetailEvents.events(in: details, window: (Self.t0 + 12_346)...(Self.t0 + 299_999)).isEmpty)
        #expect(
            MissedDetailEvents.events(in: details, window: Self.t0...(Self.t0 + 12_345)).map(\.topicName)
                == ["v2.detail.events.conversation.c-1.acd.end"]
        )
        let wide = Self.t0...(Self.t0 + 400_000)
        #expect(MissedDetailEvents.events(in: details, window: wide, types: ["customer.end"]).count == 1)
        #expect(MissedDetailEvents.events(in: details, window: wide, types: ["acd.end"], queues: ["q-2"]).isEmpty)
        #expect(MissedDetailEvents.events(in: details, window: wide, types: ["acd.end"], queues: ["q-1"]).count == 1)
    }

    @Test func malformedDetailsAreSkippedNeverATrap() throws {
        let wide = Int64(0)...Int64.max
        let hostile: [JSONValue] = [
            .null, "text", [:], ["conversationId": 5],
            [
                "conversationId": "c", "conversationEnd": "not a time",
                "participants": [
                    [
                        "participantId": "p", "purpose": "acd",
                        "sessions": [
                            ["sessionId": "s", "segments": [["queueId": "q", "segmentEnd": "2026-13-45T99:00:00Z"]]]
                        ],
                    ],
                    [
                        "participantId": "p2", "purpose": "acd",
                        "sessions": [
                            [
                                "sessionId": "s", "segments": [["queueId": "q", "segmentEnd": "2026-01-01T00:00:00Z"]],
                                "metrics": [["name": "tAcd", "value": 1e300]],
                            ]
                        ],
                    ],
                    [
                        "participantId": "p3", "purpose": "acd",
                        "sessions": [
                            [
                                "sessionId": "s", "segments": [["queueId": "q", "segmentEnd": "2026-01-01T00:00:00Z"]],
                                "metrics": [["name": "tAcd", "value": -1]],
                            ]
                        ],
                    ],
                    ["participantId": "p4", "purpose": "customer", "sessions": "nope"],
                ],
            ],
        ]
        for details in hostile { #expect(MissedDetailEvents.events(in: details, window: wide).isEmpty) }
    }

    @Test func aGapsTopicsSayWhatToReRead() {
        let plan = ReconcileHandler.Plan(topics: [
            "v2.analytics.queues.q1.observations", "v2.detail.events.conversation.c1.acd.end",
            "v2.detail.events.conversation.c1.customer.end", "v2.detail.events.conversation.c2.user.start",
            "v2.routing.queues.q2.conversations", "v2.routing.queues.q2.conversations.calls", "v2.users.u1.presence",
        ])
        #expect(plan.observedQueues == ["q1"])
        #expect(plan.conversations == ["c1": ["acd.end", "customer.end"]])
        #expect(plan.conversationQueues == ["q2"])
        #expect(plan.presenceUsers == ["u1"])
        #expect(plan.skipped == ["v2.detail.events.conversation.c2.user.start"])
    }
}
