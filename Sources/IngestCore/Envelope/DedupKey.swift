/// The idempotency key of a Genesys event.
///
/// Genesys Cloud emits the same event type many times per conversation (per participant,
/// session, transfer), so conversation id + event type alone would drop real events. The
/// EventBridge envelope `id` is unique per event and stable across redeliveries: use it when
/// present. Otherwise build a composite: conversation id + topic type + participantId +
/// sessionId + eventTime for conversation detail events; entity id + topic + eventTime for
/// other families. `CorrelationId` is never used (it is neither documented nor unique).
public enum DedupKey {
    private enum Path: Int, CaseIterable {
        case id, detailTopicName, topicName
        case detailConversation, detailParticipant, detailSession, detailEventTime
        case bodyConversation, bodyParticipant, bodySession, bodyEventTime

        var keys: [String] {
            switch self {
            case .id: ["id"]
            case .detailTopicName: ["detail", "topicName"]
            case .topicName: ["topicName"]
            case .detailConversation: ["detail", "eventBody", "conversationId"]
            case .detailParticipant: ["detail", "eventBody", "participantId"]
            case .detailSession: ["detail", "eventBody", "sessionId"]
            case .detailEventTime: ["detail", "eventBody", "eventTime"]
            case .bodyConversation: ["eventBody", "conversationId"]
            case .bodyParticipant: ["eventBody", "participantId"]
            case .bodySession: ["eventBody", "sessionId"]
            case .bodyEventTime: ["eventBody", "eventTime"]
            }
        }
    }

    private static let scanner = JSONScanner(paths: Path.allCases.map(\.keys))

    /// Facts about an event that the worker runtime needs.
    public struct Derived: Sendable, Equatable {
        public var key: String
        public var topicName: String?
        public var conversationID: String?
    }

    /// Derives the key from a raw event body.
    /// - Throws: `JSONScanError` when the body is not a JSON object.
    public static func derive(from body: [UInt8]) throws(JSONScanError) -> Derived {
        let captured = try body.withUnsafeBufferPointer { (p) throws(JSONScanError) -> [String?] in try scanner.scan(p)
        }
        func value(_ p: Path) -> String? {
            guard let v = captured[p.rawValue], !v.isEmpty else { return nil }
            return v
        }
        let topicName = value(.detailTopicName) ?? value(.topicName)
        let route = EnvelopeInspector.route(topicName: topicName)
        let conversation = value(.detailConversation) ?? value(.bodyConversation)
        if let id = value(.id) {
            return Derived(
                key: "id:" + id,
                topicName: topicName,
                conversationID: route.family == .conversation ? route.entityID ?? conversation : conversation
            )
        }
        let eventTime = value(.detailEventTime) ?? value(.bodyEventTime) ?? ""
        switch route.family {
        case .conversation:
            let cid = route.entityID ?? conversation ?? ""
            let type = topicType(topicName ?? "", after: cid)
            let participant = value(.detailParticipant) ?? value(.bodyParticipant) ?? ""
            let session = value(.detailSession) ?? value(.bodySession) ?? ""
            return Derived(
                key: "conv:\(cid)|\(type)|\(participant)|\(session)|\(eventTime)",
                topicName: topicName,
                conversationID: cid.isEmpty ? nil : cid
            )
        default:
            let entity = route.entityID ?? ""
            return Derived(
                key: "\(route.family.rawValue):\(entity)|\(topicName ?? "")|\(eventTime)",
                topicName: topicName,
                conversationID: conversation
            )
        }
    }

    /// `v2.detail.events.conversation.{id}.customer.start` → `customer.start`.
    static func topicType(_ topicName: String, after id: String) -> String {
        let parts = topicName.split(separator: ".", omittingEmptySubsequences: false)
        guard !id.isEmpty, let i = parts.firstIndex(where: { $0 == id }), i + 1 < parts.count else { return topicName }
        return parts[(i + 1)...].joined(separator: ".")
    }
}
