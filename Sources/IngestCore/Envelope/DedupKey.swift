/// How a handler's idempotency keys are made: a choice per handler, not a rule of the runtime.
public enum IdempotencyStrategy: String, Sendable, CaseIterable {
    /// The best identity the record carries, in this order: the producer's event id header
    /// (``IngestHeader/producedEventID``, written on the product's own output topics); the
    /// Genesys envelope `id`; the Genesys composite (conversation id + event type + participant
    /// + session + eventTime, or entity + topic + eventTime) when the record has an eventTime;
    /// otherwise a digest of the exact bytes, so distinct records stay distinct and only an
    /// identical redelivery is a duplicate.
    case automatic
    /// `topic/partition/offset`: every record is its own event; only a re-read of the same
    /// record (after a crash or a rebalance) is a duplicate.
    case recordPosition
}

/// The idempotency key of an event.
///
/// Genesys Cloud emits the same event type many times per conversation (per participant,
/// session, transfer), so conversation id + event type alone would drop real events. The
/// EventBridge envelope `id` is unique per event and stable across redeliveries: use it when
/// present. Otherwise build a composite: conversation id + topic type + participantId +
/// sessionId + eventTime for conversation detail events; entity id + topic + eventTime for
/// other families. A composite without an eventTime does not tell events apart (queue
/// observation notifications have neither id nor eventTime): such records, and records with
/// no Genesys shape at all, are keyed by a digest of their bytes. `CorrelationId` is never
/// used (it is neither documented nor unique).
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
        /// The key under ``IdempotencyStrategy/automatic``.
        public var key: String
        public var topicName: String?
        public var conversationID: String?
    }

    /// Derives the key from a raw event body.
    /// - Parameters:
    ///   - producedEventID: the record's ``IngestHeader/producedEventID`` header, if any.
    ///   - digest: a collision-resistant digest of the exact bytes (the worker passes SHA-256
    ///     in hex); called only when nothing else identifies the record.
    /// - Throws: `JSONScanError` when the body is not a JSON object.
    public static func derive(
        from body: [UInt8],
        producedEventID: String? = nil,
        digest: ([UInt8]) -> String
    ) throws(JSONScanError) -> Derived {
        let captured = try body.withUnsafeBufferPointer { (p) throws(JSONScanError) -> [String?] in try scanner.scan(p)
        }
        func value(_ p: Path) -> String? {
            guard let v = captured[p.rawValue], !v.isEmpty else { return nil }
            return v
        }
        let topicName = value(.detailTopicName) ?? value(.topicName)
        let route = EnvelopeInspector.route(topicName: topicName)
        let conversation = value(.detailConversation) ?? value(.bodyConversation)
        let routedConversation = route.family == .conversation ? route.entityID ?? conversation : conversation
        if let producedEventID, !producedEventID.isEmpty {
            return Derived(key: "eid:" + producedEventID, topicName: topicName, conversationID: routedConversation)
        }
        if let id = value(.id) {
            return Derived(key: "id:" + id, topicName: topicName, conversationID: routedConversation)
        }
        func bytesKey() -> Derived {
            Derived(key: "sha256:" + digest(body), topicName: topicName, conversationID: routedConversation)
        }
        guard topicName != nil, let eventTime = value(.detailEventTime) ?? value(.bodyEventTime) else {
            return bytesKey()
        }
        switch route.family {
        case .conversation:
            guard let cid = route.entityID ?? conversation else { return bytesKey() }
            let type = topicType(topicName ?? "", after: cid)
            let participant = value(.detailParticipant) ?? value(.bodyParticipant) ?? ""
            let session = value(.detailSession) ?? value(.bodySession) ?? ""
            return Derived(
                key: "conv:\(cid)|\(type)|\(participant)|\(session)|\(eventTime)",
                topicName: topicName,
                conversationID: cid
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

    /// The key of a record under ``IdempotencyStrategy/recordPosition``.
    public static func position(topic: String, partition: Int32, offset: Int64) -> String {
        "pos:\(topic)/\(partition)/\(offset)"
    }

    /// `v2.detail.events.conversation.{id}.customer.start` → `customer.start`.
    public static func topicType(_ topicName: String, after id: String) -> String {
        let parts = topicName.split(separator: ".", omittingEmptySubsequences: false)
        guard !id.isEmpty, let i = parts.firstIndex(where: { $0 == id }), i + 1 < parts.count else { return topicName }
        return parts[(i + 1)...].joined(separator: ".")
    }
}
