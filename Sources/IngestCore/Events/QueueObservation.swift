/// Live queue state from a `v2.analytics.queues.{id}.observations` notification (EventBridge
/// envelope or notification shape). Read by analytics (live gauges) and overflow (detection),
/// so it lives in the shared vocabulary.
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

    public init(queueID: String, mediaType: String, timeMilliseconds: Int64) {
        self.queueID = queueID
        self.mediaType = mediaType
        self.timeMilliseconds = timeMilliseconds
    }

    public enum ParseError: Error, Equatable, Sendable {
        case notJSON
        case missingQueueID
    }

    /// Reads oWaiting, oInteracting, oOnQueueUsers and oLongestWaiting; the time is the
    /// envelope's (`time` or `timestamp`), else the end of the data interval.
    public static func parse(_ body: [UInt8]) throws(ParseError) -> QueueObservation {
        guard let root = EventFields.object(body) else { throw .notJSON }
        let detail = root["detail"] as? [String: Any] ?? root
        let event = detail["eventBody"] as? [String: Any] ?? [:]
        let group = event["group"] as? [String: Any] ?? [:]
        var queue = group["queueId"] as? String
        if queue == nil, let topic = detail["topicName"] as? String {
            queue = EnvelopeInspector.route(topicName: topic).entityID
        }
        guard let queue else { throw .missingQueueID }
        var time =
            EventFields.isoMilliseconds(root["time"] as? String ?? detail["timestamp"] as? String ?? "") ?? 0
        var result = QueueObservation(
            queueID: queue,
            mediaType: EventFields.mediaType(group["mediaType"]),
            timeMilliseconds: 0
        )
        for entry in event["data"] as? [[String: Any]] ?? [] {
            if time == 0, let interval = entry["interval"] as? String,
                let end = interval.split(separator: "/").last, let t = EventFields.isoMilliseconds(String(end))
            {
                time = t
            }
            for metric in entry["metrics"] as? [[String: Any]] ?? [] {
                let stats = metric["stats"] as? [String: Any] ?? [:]
                switch metric["metric"] as? String {
                case "oWaiting": result.waiting = EventFields.number(stats["count"])
                case "oInteracting": result.interacting = EventFields.number(stats["count"])
                case "oOnQueueUsers": result.onQueueUsers = EventFields.number(stats["count"])
                case "oLongestWaiting":
                    result.longestWaitingSeconds = EventFields.number(stats["max"]).map { $0 / 1000 } ?? 0
                default: break
                }
            }
        }
        result.timeMilliseconds = time
        return result
    }
}
