import IngestCore

/// The conversation detail events a gap hid, rebuilt from the conversation's details (the
/// analytics API's view of it), in the shape a notification channel delivers them
/// (`topicName`, `version`, `eventBody`) — what the existing handlers read. A pure value type.
///
/// Rebuilt: `acd.end` (one per ACD session: queue, wait from `tAcd`, or `tAbandon` when the
/// caller abandoned, at the end of the session's queue segment) and `customer.end` (at
/// `conversationEnd`). Each keeps the identity the live event had — conversation, participant,
/// session, eventTime — so the worker's composite idempotency key
/// (``DedupKey``: conversation + type + participant + session + eventTime) is the same for
/// both, and an event that did arrive before or after the gap is not counted twice.
/// (Inference, not documented by Genesys: a detail event's eventTime is the end of the
/// segment it reports; the simulator keeps them equal.)
public enum MissedDetailEvents {
    public struct Event: Sendable, Equatable {
        public var conversationID: String
        /// `v2.detail.events.conversation.{id}.{type}`.
        public var topicName: String
        public var eventTime: Int64
        public var message: JSONValue
    }

    /// The event types rebuilt from details.
    public static let types: Set<String> = ["acd.end", "customer.end"]

    /// Waits longer than this are not a queue wait (a broken metric): left out.
    static let maxWaitMilliseconds: Double = 30 * 86_400_000

    /// The events of `details` whose time falls in `window` (epoch ms), of the given `types`,
    /// and — for `acd.end` — in one of `queues` when given. Malformed parts are skipped, never
    /// trapped on: every number and time is range-checked first.
    public static func events(
        in details: JSONValue,
        window: ClosedRange<Int64>,
        types wanted: Set<String> = types,
        queues: Set<String>? = nil
    ) -> [Event] {
        guard let conversation = details["conversationId"]?.stringValue, !conversation.isEmpty else { return [] }
        var out: [Event] = []
        func event(_ type: String, time: Int64, body: [String: JSONValue]) {
            var eventBody = body
            eventBody["conversationId"] = .string(conversation)
            eventBody["eventTime"] = .number(Double(time))
            let topic = "v2.detail.events.conversation.\(conversation).\(type)"
            out.append(
                Event(
                    conversationID: conversation,
                    topicName: topic,
                    eventTime: time,
                    message: ["topicName": .string(topic), "version": "2", "eventBody": .object(eventBody)]
                )
            )
        }
        for participant in details["participants"]?.elements ?? [] {
            guard let participantID = participant["participantId"]?.stringValue else { continue }
            switch participant["purpose"]?.stringValue {
            case "acd" where wanted.contains("acd.end"):
                for session in participant["sessions"]?.elements ?? [] {
                    guard let sessionID = session["sessionId"]?.stringValue else { continue }
                    var queue: String?
                    var end: Int64?
                    for segment in session["segments"]?.elements ?? [] {
                        guard let q = segment["queueId"]?.stringValue else { continue }
                        queue = q
                        end = segment["segmentEnd"]?.stringValue.flatMap(EventFields.isoMilliseconds)
                    }
                    guard let queue, let end, window.contains(end), queues?.contains(queue) ?? true else { continue }
                    var metrics: [String: Double] = [:]
                    for m in session["metrics"]?.elements ?? [] {
                        if let name = m["name"]?.stringValue, let v = m["value"]?.numberValue, v.isFinite {
                            metrics[name] = v
                        }
                    }
                    let abandoned = metrics["tAbandon"] != nil
                    guard let wait = metrics["tAcd"] ?? metrics["tAbandon"], wait >= 0, wait <= maxWaitMilliseconds
                    else { continue }
                    var body: [String: JSONValue] = [
                        "participantId": .string(participantID), "sessionId": .string(sessionID),
                        "queueId": .string(queue), "acdOutcome": abandoned ? "ABANDON" : "ANSWERED",
                        "connectedDurationMs": .number(wait.rounded()),
                    ]
                    if let media = session["mediaType"]?.stringValue { body["mediaType"] = .string(media.uppercased()) }
                    if let direction = session["direction"]?.stringValue {
                        body["direction"] = .string(direction.uppercased())
                    }
                    event("acd.end", time: end, body: body)
                }
            case "customer" where wanted.contains("customer.end"):
                guard let end = details["conversationEnd"]?.stringValue.flatMap(EventFields.isoMilliseconds),
                    window.contains(end), let session = participant["sessions"]?.elements.first,
                    let sessionID = session["sessionId"]?.stringValue
                else { continue }
                var body: [String: JSONValue] = [
                    "participantId": .string(participantID), "sessionId": .string(sessionID),
                ]
                if let media = session["mediaType"]?.stringValue { body["mediaType"] = .string(media.uppercased()) }
                event("customer.end", time: end, body: body)
            default:
                continue
            }
        }
        return out
    }
}
