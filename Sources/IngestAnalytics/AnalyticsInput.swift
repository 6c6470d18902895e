import Foundation
import IngestCore

/// Live queue state from a `v2.analytics.queues.{id}.observations` notification.
public struct QueueObservation: Sendable, Equatable {
    public var queueID: String
    public var mediaType: String
    public var waiting: Double?
    public var interacting: Double?
    public var onQueueUsers: Double?
    /// Seconds the longest-waiting interaction has waited.
    public var longestWaitingSeconds: Double?
    /// When Genesys produced it (envelope time, epoch ms): an older notification never
    /// overwrites a newer one.
    public var timeMilliseconds: Int64
}

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
        guard let time = number(event["eventTime"]), let eventTime = epochMilliseconds(time) else {
            throw .missingField("eventTime (epoch ms between 1970 and 9999)")
        }
        guard let wait = number(event["connectedDurationMs"]), wait >= 0, wait <= maxWaitMilliseconds else {
            throw .missingField("connectedDurationMs (0 to 30 days)")
        }
        let outcome = ACDOutcome(rawValue: (event["acdOutcome"] as? String ?? "").uppercased()) ?? .unknown
        return WaitObservation(
            queueID: queue,
            mediaType: media(event["mediaType"]),
            eventTimeMilliseconds: eventTime,
            waitMilliseconds: wait,
            outcome: outcome
        )
    }

    /// The queue waits of an enriched record (one per ACD session of the conversation): `tAcd`
    /// (or `tAbandon`) of the `acd` participant, at the end of its queue segment.
    public static func enriched(_ body: [UInt8]) throws(ParseError) -> [WaitObservation] {
        guard let record = object(body) else { throw .notJSON }
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
                    if let e = segment["segmentEnd"] as? String, let t = isoMilliseconds(e) { end = t }
                }
                var metrics: [String: Double] = [:]
                for m in session["metrics"] as? [[String: Any]] ?? [] {
                    if let name = m["name"] as? String, let v = number(m["value"]) { metrics[name] = v }
                }
                guard let queue, let end else { continue }
                let abandoned = metrics["tAbandon"] != nil
                guard let wait = metrics["tAcd"] ?? metrics["tAbandon"], wait >= 0, wait <= maxWaitMilliseconds else {
                    continue
                }
                out.append(
                    WaitObservation(
                        queueID: queue,
                        mediaType: media(session["mediaType"]),
                        eventTimeMilliseconds: end,
                        waitMilliseconds: wait,
                        outcome: abandoned ? .abandoned : .answered
                    )
                )
            }
        }
        return out
    }

    /// The observations of a queue observations notification.
    public static func observations(_ body: [UInt8]) throws(ParseError) -> QueueObservation {
        guard let root = object(body) else { throw .notJSON }
        let detail = root["detail"] as? [String: Any] ?? root
        let event = detail["eventBody"] as? [String: Any] ?? [:]
        let group = event["group"] as? [String: Any] ?? [:]
        var queue = group["queueId"] as? String
        if queue == nil, let topic = detail["topicName"] as? String {
            queue = EnvelopeInspector.route(topicName: topic).entityID
        }
        guard let queue else { throw .missingField("queueId") }
        var time = isoMilliseconds(root["time"] as? String ?? detail["timestamp"] as? String ?? "") ?? 0
        var result = QueueObservation(queueID: queue, mediaType: media(group["mediaType"]), timeMilliseconds: 0)
        for entry in event["data"] as? [[String: Any]] ?? [] {
            if time == 0, let interval = entry["interval"] as? String,
                let end = interval.split(separator: "/").last, let t = isoMilliseconds(String(end))
            {
                time = t
            }
            for metric in entry["metrics"] as? [[String: Any]] ?? [] {
                let stats = metric["stats"] as? [String: Any] ?? [:]
                switch metric["metric"] as? String {
                case "oWaiting": result.waiting = number(stats["count"])
                case "oInteracting": result.interacting = number(stats["count"])
                case "oOnQueueUsers": result.onQueueUsers = number(stats["count"])
                case "oLongestWaiting": result.longestWaitingSeconds = number(stats["max"]).map { $0 / 1000 } ?? 0
                default: break
                }
            }
        }
        result.timeMilliseconds = time
        return result
    }

    private static func object(_ body: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }

    private static func eventBody(_ body: [UInt8]) throws(ParseError) -> [String: Any] {
        guard let root = object(body) else { throw .notJSON }
        if let detail = root["detail"] as? [String: Any], let event = detail["eventBody"] as? [String: Any] {
            return event
        }
        if let event = root["eventBody"] as? [String: Any] { return event }
        throw .missingField("eventBody")
    }

    /// Longer waits are not queue waits (Genesys keeps conversations for days, not months).
    static let maxWaitMilliseconds = 30.0 * 86_400_000

    /// Epoch milliseconds from 1970 to the end of year 9999, as Int64; nil outside.
    static func epochMilliseconds(_ value: Double) -> Int64? {
        guard value.isFinite, value >= 0, value <= 253_402_300_799_999 else { return nil }
        return Int64(value.rounded())
    }

    private static func number(_ value: Any?) -> Double? {
        guard let d = (value as? NSNumber)?.doubleValue else { return nil }
        return d.isFinite ? d : nil
    }

    private static func media(_ value: Any?) -> String {
        guard let s = value as? String, !s.isEmpty else { return "unknown" }
        return s.lowercased()
    }

    private static func isoMilliseconds(_ text: String) -> Int64? {
        guard !text.isEmpty else { return nil }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: text) { return epochMilliseconds(d.timeIntervalSince1970 * 1000) }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: text).flatMap { epochMilliseconds($0.timeIntervalSince1970 * 1000) }
    }
}
