import Testing

@testable import IngestBridge

@Suite("Bridge channel plan: topic expansion and Genesys's channel limits")
struct ChannelPlanTests {
    @Test func templatesExpandPerQueueAndUserAndDuplicatesGoAway() throws {
        let plan = try ChannelPlan(
            templates: [
                "v2.routing.queues.{id}.conversations", "v2.analytics.queues.{id}.observations",
                "v2.users.{id}.presence",
                "v2.routing.queues.q1.conversations",
            ],
            queueIDs: ["q1", "q2"],
            userIDs: ["u1"]
        )
        #expect(
            plan.channels == [
                [
                    "v2.routing.queues.q1.conversations", "v2.routing.queues.q2.conversations",
                    "v2.analytics.queues.q1.observations", "v2.analytics.queues.q2.observations",
                    "v2.users.u1.presence",
                ]
            ]
        )
    }

    @Test func topicsSpreadOverChannelsOfAThousandAndMoreThanTwentyIsRefused() throws {
        let ids = (0..<2500).map { "q\($0)" }
        let plan = try ChannelPlan(templates: ["v2.analytics.queues.{id}.observations"], queueIDs: ids, userIDs: [])
        #expect(plan.channels.map(\.count) == [1000, 1000, 500])
        #expect(Set(plan.channels.flatMap { $0 }).count == 2500)
        let tooMany = (0..<20_001).map { "q\($0)" }
        #expect {
            try ChannelPlan(templates: ["v2.analytics.queues.{id}.observations"], queueIDs: tooMany, userIDs: [])
        } throws: { error in
            "\(error)".contains("21 channels") && "\(error)".contains("20 Genesys allows")
        }
    }

    @Test func configurationMistakesSayWhatToSet() {
        #expect {
            try ChannelPlan(templates: ["v2.routing.queues.{id}.conversations"], queueIDs: [], userIDs: [])
        } throws: { "\($0)".contains("INGEST_BRIDGE_QUEUE_IDS") }
        #expect {
            try ChannelPlan(
                templates: ["v2.detail.events.conversation.{id}.customer.start"],
                queueIDs: ["q"],
                userIDs: []
            )
        } throws: { "\($0)".contains("only queue") }
        #expect { try ChannelPlan(templates: [], queueIDs: [], userIDs: []) } throws: {
            "\($0)".contains("INGEST_BRIDGE_TOPICS")
        }
    }

    @Test func topicsTheOrgDoesNotOfferOnWebSocketsAreNamed() throws {
        let plan = try ChannelPlan(
            templates: [
                "v2.analytics.queues.{id}.observations", "v2.users.u1.presence", "v2.routing.queues.{id}.nothing",
            ],
            queueIDs: ["q1"],
            userIDs: []
        )
        let missing = plan.notOfferedOnWebSockets([
            ("v2.analytics.queues.{id}.observations", true), ("v2.users.{id}.presence", false),
        ])
        #expect(missing.map(\.topic) == ["v2.users.u1.presence", "v2.routing.queues.{id}.nothing"])
        #expect(missing[0].why.contains("other transports") && missing[1].why.contains("does not list"))
    }
}
