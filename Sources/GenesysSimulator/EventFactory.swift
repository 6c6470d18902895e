import IngestCore
import IngestCrypto

/// Builds realistic Genesys events (EventBridge envelopes) for the simulator, `ingestctl` and
/// tests (signing them is `RequestSigner`'s, in IngestCrypto).
public enum EventFactory {
    /// A lowercase UUID-shaped id, deterministic for a seed (tests) or random.
    public static func uuid(seed: UInt64? = nil) -> String {
        var bytes: [UInt8]
        if var s = seed {
            bytes = []
            for _ in 0..<16 {
                s = s &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                bytes.append(UInt8(truncatingIfNeeded: s >> 33))
            }
        } else {
            bytes = SecureRandom.bytes(16)
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = ByteEncoding.encodeHex(bytes)
        let h = Array(hex)
        return String(h[0..<8]) + "-" + String(h[8..<12]) + "-" + String(h[12..<16]) + "-" + String(h[16..<20]) + "-"
            + String(h[20..<32])
    }

    /// An EventBridge envelope of a conversation detail event, padded to about `targetSize`
    /// bytes with realistic attribute fields.
    public static func conversationEvent(
        conversationID: String = uuid(),
        eventID: String = uuid(),
        type: String = "customer.start",
        participantID: String = uuid(),
        eventTime: Int64 = 1_649_237_444_949,
        targetSize: Int = 0
    ) -> [UInt8] {
        var body = """
            {"version":"0","id":"\(eventID)","detail-type":"v2.detail.events.conversation.{id}.\(type)",\
            "source":"aws.partner/genesys.com/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d/ingest-test",\
            "account":"123456789012","time":"2022-04-06T09:30:45Z","region":"us-east-1","resources":[],\
            "detail":{"topicName":"v2.detail.events.conversation.\(conversationID).\(type)","version":"2",\
            "eventBody":{"eventTime":\(eventTime),"conversationId":"\(conversationID)",\
            "participantId":"\(participantID)","sessionId":"c03d300e-fa79-4353-9695-b97a71322785",\
            "mediaType":"VOICE","provider":"Edge","direction":"INBOUND","ani":"tel:+15555550100",\
            "dnis":"tel:+15555550199"
            """
        let tail = "},\"metadata\":{\"CorrelationId\":\"\(uuid())\"},\"timestamp\":\"2022-04-06T09:30:45.013Z\"}}"
        var padding = targetSize - body.utf8.count - tail.utf8.count
        var i = 0
        while padding > 40 {
            let field = ",\"attr\(i)\":\"" + String(repeating: "x", count: min(60, padding - 20)) + "\""
            body += field
            padding -= field.utf8.count
            i += 1
        }
        return Array((body + tail).utf8)
    }

    /// An EventBridge envelope of an `acd.end` detail event (the queue wait analytics reads).
    public static func acdEndEvent(
        conversationID: String = uuid(),
        eventID: String = uuid(),
        queueID: String,
        waitMilliseconds: Int,
        outcome: String = "ANSWERED",
        eventTime: Int64
    ) -> [UInt8] {
        Array(
            """
            {"version":"0","id":"\(eventID)","detail-type":"v2.detail.events.conversation.{id}.acd.end",\
            "source":"aws.partner/genesys.com/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d/ingest-test",\
            "detail":{"topicName":"v2.detail.events.conversation.\(conversationID).acd.end","version":"2",\
            "eventBody":{"eventTime":\(eventTime),"conversationId":"\(conversationID)","participantId":"p-acd",\
            "sessionId":"s-1","queueId":"\(queueID)","mediaType":"VOICE","acdOutcome":"\(outcome)",\
            "connectedDurationMs":\(waitMilliseconds)}}}
            """.utf8
        )
    }
}
