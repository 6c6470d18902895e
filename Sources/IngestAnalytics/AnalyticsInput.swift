import Foundation
import IngestCore

/// Reads the analytics handler's inputs. Payloads pass through untouched elsewhere; here only
/// the few fields needed are read, and unknown enum values map to `unknown`.
public enum AnalyticsInput {
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case notJSON
        case missingField(String)

        public var description: String {
            switch self {
            case .notJSON: "the body is not a JSON object"
            case .missingField(let f): "the event has no usable \(f)"
            }
        }
    }

    /// The wait of an `acd.end` detail event (EventBridge envelope or bare notification).
    public static func acdEnd(_ body: [UInt8]) throws(ParseError) -> WaitObservation {
        let event = try eventBody(body)
        guard let queue = event["queueId"] as? String, !queue.isEmpty else { throw .missingField("queueId") }
        // From the wire: checked before any conversion (`Int64(1e300)` traps, and a trap
        // here would crash the worker on every redelivery of the record).
        guard let time = EventFields.number(event["eventTime"]), let eventTime = EventFields.epochMilliseconds(time)
        else {
            throw .missingField("eventTime (epoch ms between 1970 and 9999)")
        }
        guard let wait = EventFields.number(event["connectedDurationMs"]), wait >= 0, wait <= maxWaitMilliseconds else {
            throw .missingField("connectedDurationMs (0 to 30 days)")
        }
        let outcome = ACDOutcome(rawValue: (event["acdOutcome"] as? String ?? "").uppercased()) ?? .unknown
        return WaitObservation(
            queueID: queue,
            mediaType: EventFields.mediaType(event["mediaType"]),
            eventTimeMilliseconds: eventTime,
            waitMilliseconds: wait,
            outcome: outcome
        )
    }

    /// The queue waits of an enriched record (one per ACD session of the conversation): `tAcd`
    /// (or `tAbandon`) of the `acd` participant, at the end of its queue segment.
    public static func enriched(_ body: [UInt8]) throws(ParseError) -> [WaitObservation] {
        guard let record = EventFields.object(body) else { throw .notJSON }
        guard let details = record["details"] as? [String: Any] else { throw .missingField("details") }
        var out: [WaitObservation] = []
        for participant in details["participants"] as? [[String: Any]] ?? []
        where participant["purpose"] as? String == "acd" {
            for session in participant["sessions"] as? [[String: Any]] ?? [] {
                var queue: String?
                var end: Int64?
                for segment in session["segments"] as? [[String: Any]] ?? [] {
                    guard let q = segment["queueId"] as? String else { continue }
                    queue = q
                    if let e = segment["segmentEnd"] as? String, let t = EventFields.isoMilliseconds(e) { end = t }
                }
                var metrics: [String: Double] = [:]
                for m in session["metrics"] as? [[String: Any]] ?? [] {
                    if let name = m["name"] as? String, let v = EventFields.number(m["value"]) { metrics[name] = v }
                }
                guard let queue, let end else { continue }
                let abandoned = metrics["tAbandon"] != nil
                guard let wait = metrics["tAcd"] ?? metrics["tAbandon"], wait >= 0, wait <= maxWaitMilliseconds else {
                    continue
                }
                out.append(
                    WaitObservation(
                        queueID: queue,
                        mediaType: EventFields.mediaType(session["mediaType"]),
                        eventTimeMilliseconds: end,
                        waitMilliseconds: wait,
                        outcome: abandoned ? .abandoned : .answered
                    )
                )
            }
        }
        return out
    }

    /// A record of the waits topic (``WaitRecord``), written by the waits stage.
    public static func wait(_ body: [UInt8]) throws(ParseError) -> WaitObservation {
        guard let root = EventFields.object(body) else { throw .notJSON }
        guard let queue = root["queueId"] as? String, !queue.isEmpty else { throw .missingField("queueId") }
        guard let media = root["mediaType"] as? String, !media.isEmpty else { throw .missingField("mediaType") }
        guard let time = EventFields.number(root["eventTime"]), let eventTime = EventFields.epochMilliseconds(time)
        else {
            throw .missingField("eventTime (epoch ms between 1970 and 9999)")
        }
        guard let wait = EventFields.number(root["waitMs"]), wait >= 0, wait <= maxWaitMilliseconds else {
            throw .missingField("waitMs (0 to 30 days)")
        }
        guard let text = root["outcome"] as? String, let outcome = ACDOutcome(rawValue: text) else {
            throw .missingField("outcome")
        }
        return WaitObservation(
            queueID: queue,
            mediaType: media,
            eventTimeMilliseconds: eventTime,
            waitMilliseconds: wait,
            outcome: outcome
        )
    }

    /// The observations of a queue observations notification (the shared parser in core).
    public static func observations(_ body: [UInt8]) throws(ParseError) -> QueueObservation {
        do { return try QueueObservation.parse(body) } catch {
            switch error {
            case .notJSON: throw .notJSON
            case .missingQueueID: throw .missingField("queueId")
            }
        }
    }

    private static func eventBody(_ body: [UInt8]) throws(ParseError) -> [String: Any] {
        guard let root = EventFields.object(body) else { throw .notJSON }
        if let detail = root["detail"] as? [String: Any], let event = detail["eventBody"] as? [String: Any] {
            return event
        }
        if let event = root["eventBody"] as? [String: Any] { return event }
        throw .missingField("eventBody")
    }

    /// Longer waits are not queue waits (Genesys keeps conversations for days, not months).
    static let maxWaitMilliseconds = 30.0 * 86_400_000

}
