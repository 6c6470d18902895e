import Foundation
import Testing

@testable import IngestCore

/// The verbatim Genesys payloads in Tests/Fixtures/genesys.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/genesys")

    static func bytes(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: directory.appendingPathComponent(name)))
    }
}

@Suite("Envelope inspection and routing")
struct EnvelopeRoutingTests {
    let inspector = EnvelopeInspector()

    @Test(
        arguments: [
            (
                "eventbridge.v2.detail.events.conversation.ID.customer.start.json", TopicFamily.conversation,
                "2f7bf00a-0fc2-4d6a-9b56-92238191433e", "adbcfa5b-0116-4baa-b66b-a3f5902e95bf"
            ),
            (
                "eventbridge.v2.detail.events.conversation.ID.customer.end.json", .conversation,
                "2f7bf00a-0fc2-4d6a-9b56-92238191433e", "58fb5dac-f077-4eec-a25f-c638dbdd4368"
            ),
            (
                "eventbridge.v2.audits.entitytype.ID.entityid.ID.UserPresence.json", .audit,
                "278522be-1683-4877-8257-4164a177be89", "4cbedb0f-4dfd-4c8e-9e57-0acded092527"
            ),
        ]
    )
    func eventBridgeFixturesRouteByTopicFamily(
        file: String,
        family: TopicFamily,
        key: String,
        envelopeID: String
    )
        throws
    {
        let info = try inspector.inspect(try Fixtures.bytes(file))
        #expect(info.family == family)
        #expect(info.key == key)
        #expect(info.envelopeID == envelopeID)
        #expect(!info.isHeartbeat)
        #expect(info.topicName?.hasPrefix("v2.") == true)
    }

    @Test func heartbeatIsRecognised() throws {
        let info = try inspector.inspect(try Fixtures.bytes("websocket.channel.metadata.heartbeat.json"))
        #expect(info.isHeartbeat)
        #expect(info.topicName == "channel.metadata")
    }

    @Test func nonEnvelopeObjectsGoToOtherWithoutKey() throws {
        for file in [
            "rest.analytics.conversations.details.query.conversation-element.json",
            "rest.platform-api.429.response-body.json",
        ] {
            let info = try inspector.inspect(try Fixtures.bytes(file))
            #expect(info.family == .other, "\(file)")
            #expect(info.key == nil, "\(file)")
        }
    }

    @Test func arraysAreRejected() throws {
        #expect(throws: JSONScanError.notAnObject) {
            try inspector.inspect(
                try Fixtures.bytes("websocket.v2.analytics.queues.ID.observations.eventBody-data.fragment2.json")
            )
        }
    }

    @Test(
        arguments: [
            ("v2.routing.queues.q-1.conversations", TopicFamily.queue, "q-1"),
            ("v2.analytics.queues.q-2.observations", .queue, "q-2"),
            ("v2.users.u-1.presence", .user, "u-1"),
            ("v2.audits.entitytype.Queue.entityid.e-9", .audit, "e-9"),
            ("v2.detail.events.conversation.c-1.acd.end", .conversation, "c-1"),
            ("v2.detail.events.conversation.{id}.acd.end", .conversation, nil),
            ("v2.conversations.calls.c-1", .other, nil),
            ("v2.flows.outcomes", .other, nil),
            ("something", .other, nil),
            ("v2.audits.entitytype.Queue.entityid", .audit, nil),
            ("v2.audits.entitytype.Queue", .audit, nil),
            ("v2.users..presence", .user, nil),
            ("v2.users", .other, nil),
            ("v2.routing.queues", .other, nil),
            ("v2.detail.events.conversation", .other, nil),
            ("v2.detail.events.call.c-1", .other, nil),
            ("v3.users.u-1.presence", .other, nil),
            ("v2.users.ü-1.presence", .user, "ü-1"),
            ("v2.Users.u-1.presence", .other, nil),
            ("", .other, nil),
        ] as [(String, TopicFamily, String?)]
    )
    func topicNamesMapToFamilies(topic: String, family: TopicFamily, id: String?) {
        let route = EnvelopeInspector.route(topicName: topic)
        #expect(route.family == family)
        #expect(route.entityID == id)
    }

    @Test func notificationShapeAndBodyFallbackKeys() throws {
        let notification = #"{"topicName":"v2.analytics.queues.q-7.observations","eventBody":{"data":[]}}"#
        let n = try inspector.inspect(Array(notification.utf8))
        #expect(n.family == .queue)
        #expect(n.key == "q-7")
        #expect(n.envelopeID == nil)
        // Placeholder in the topic name: the id comes from the body.
        let placeholder =
            #"{"id":"e1","detail":{"topicName":"v2.detail.events.conversation.{id}.acd.end","eventBody":{"conversationId":"c-42"}}}"#
        #expect(try inspector.inspect(Array(placeholder.utf8)).key == "c-42")
        // Unknown shape: the envelope id is the key.
        #expect(try inspector.inspect(Array(#"{"id":"only-id"}"#.utf8)).key == "only-id")
    }

    @Test func jsonValidation() throws {
        let bad = [
            "", " ", "[]", "\"s\"", "42", "{", "{\"a\":}", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":tru}",
            "{\"a\":\"\u{01}\"}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":\"\\x\"}", "{} {}", "{\"a\":[1,]}",
        ]
        for text in bad {
            #expect(throws: JSONScanError.self, "\(text)") { try inspector.inspect(Array(text.utf8)) }
        }
        let good = ["{}", " {\"a\":[1,2.5e-3,-0,true,false,null,{\"b\":\"\\u00e9\\n\"}]} ", "{\"x\":\"é\"}"]
        for text in good {
            #expect(throws: Never.self, "\(text)") { try inspector.inspect(Array(text.utf8)) }
        }
        let deep = String(repeating: "{\"a\":", count: 10_000) + "1" + String(repeating: "}", count: 10_000)
        #expect(throws: JSONScanError.tooDeep(limit: JSONScanner.maxDepth)) { try inspector.inspect(Array(deep.utf8)) }
    }

    /// Regression (issue 10): `{"a":"\xff\xfe"}` was accepted although JSON must be UTF-8.
    @Test(
        arguments: [
            ([0xFF, 0xFE], 6), ([0xC0, 0xAF], 6), ([0xE0, 0x80, 0xAF], 6), ([0xED, 0xA0, 0x80], 6),
            ([0xF4, 0x90, 0x80, 0x80], 6), ([0xF8, 0x88, 0x80, 0x80, 0x80], 6), ([0x80], 6), ([0xE2, 0x82], 6),
            ([0xC3], 6), ([0xF0, 0x9F, 0x98], 6),
        ] as [([UInt8], Int)]
    )
    func invalidUTF8InAStringIsRejected(bad: [UInt8], offset: Int) {
        let body = Array(#"{"a":""#.utf8) + bad + Array(#""}"#.utf8)
        #expect(throws: JSONScanError.self) { try inspector.inspect(body) }
        do {
            _ = try inspector.inspect(body)
        } catch {
            guard case .invalidUTF8(let at) = error else {
                Issue.record("expected invalidUTF8, got \(error)")
                return
            }
            // The offset names the byte where the sequence broke (the closing quote for a truncated one).
            #expect(at >= offset && at <= offset + bad.count)
        }
        // Outside a string too (a key).
        let inKey = Array(#"{""#.utf8) + bad + Array(#"":1}"#.utf8)
        #expect(throws: JSONScanError.self) { try inspector.inspect(inKey) }
    }

    @Test func validUTF8OfEveryLengthIsAccepted() throws {
        for text in ["é", "€", "😀", "\u{10FFFF}", "\u{D7FF}", "\u{E000}", "a\u{80}b\u{7FF}c\u{800}d\u{FFFF}e\u{10000}"]
        {
            let body = Array("{\"a\":\"\(text)\",\"\(text)\":1}".utf8)
            #expect(throws: Never.self, "\(text)") { try inspector.inspect(body) }
        }
    }

    @Test func escapedStringsAreDecoded() throws {
        let body = #"{"id":"a\"b\u00e9\ud83d\ude00","detail":{"topicName":"v2.users.u\/1.presence"}}"#
        let info = try inspector.inspect(Array(body.utf8))
        #expect(info.envelopeID == "a\"bé😀")
        #expect(info.key == "u/1")
    }

    @Test func topicNaming() {
        #expect(TopicNaming().topic(for: .conversation) == "genesys.raw.conversation")
        #expect(TopicNaming(prefix: "acme.gen").allTopics.count == 5)
        #expect(TopicNaming(prefix: "acme.gen").topic(for: .other) == "acme.gen.other")
    }
}
