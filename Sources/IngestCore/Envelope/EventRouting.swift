/// The Genesys topic family an event belongs to; each family has its own raw Kafka topic.
public enum TopicFamily: String, Sendable, CaseIterable {
    case conversation
    case queue
    case user
    case audit
    case other
}

/// What the gateway reads from an envelope to route it. The envelope itself is never modified.
public struct EnvelopeInfo: Sendable, Equatable {
    /// The EventBridge envelope `id` (unique per event, stable across redeliveries), if any.
    public var envelopeID: String?
    /// The Genesys topic name from `detail.topicName` (EventBridge) or `topicName` (notification).
    public var topicName: String?
    public var family: TopicFamily
    /// The Kafka key: the conversation, queue, user or audited entity id, else the envelope id.
    public var key: String?
    /// True for notification-channel heartbeats (`channel.metadata`), which are acknowledged and dropped.
    public var isHeartbeat: Bool

    public init(envelopeID: String?, topicName: String?, family: TopicFamily, key: String?, isHeartbeat: Bool) {
        self.envelopeID = envelopeID
        self.topicName = topicName
        self.family = family
        self.key = key
        self.isHeartbeat = isHeartbeat
    }
}

/// Reads routing information from a raw event body (EventBridge envelope or notification shape).
///
/// Pure and allocation-light; one instance can be shared.
public struct EnvelopeInspector: Sendable {
    private enum Path: Int, CaseIterable {
        case id, detailTopicName, topicName
        case detailConversationID, detailQueueID, detailUserID
        case bodyConversationID, bodyQueueID, bodyUserID

        var keys: [String] {
            switch self {
            case .id: ["id"]
            case .detailTopicName: ["detail", "topicName"]
            case .topicName: ["topicName"]
            case .detailConversationID: ["detail", "eventBody", "conversationId"]
            case .detailQueueID: ["detail", "eventBody", "queueId"]
            case .detailUserID: ["detail", "eventBody", "userId"]
            case .bodyConversationID: ["eventBody", "conversationId"]
            case .bodyQueueID: ["eventBody", "queueId"]
            case .bodyUserID: ["eventBody", "userId"]
            }
        }
    }

    public init() {}

    private static let scanner = JSONScanner(paths: Path.allCases.map(\.keys))

    /// Validates that `body` is a JSON object and extracts its routing information.
    public func inspect(_ body: UnsafeBufferPointer<UInt8>) throws(JSONScanError) -> EnvelopeInfo {
        let captured = try Self.scanner.scan(body)
        func value(_ p: Path) -> String? {
            guard let v = captured[p.rawValue], !v.isEmpty else { return nil }
            return v
        }
        let topicName = value(.detailTopicName) ?? value(.topicName)
        let envelopeID = value(.id)
        let route = Self.route(topicName: topicName)
        let bodyID: String? =
            switch route.family {
            case .conversation: value(.detailConversationID) ?? value(.bodyConversationID)
            case .queue: value(.detailQueueID) ?? value(.bodyQueueID)
            case .user: value(.detailUserID) ?? value(.bodyUserID)
            case .audit, .other: nil
            }
        return EnvelopeInfo(
            envelopeID: envelopeID,
            topicName: topicName,
            family: route.family,
            key: route.entityID ?? bodyID ?? envelopeID,
            isHeartbeat: topicName == "channel.metadata"
        )
    }

    public func inspect(_ body: [UInt8]) throws(JSONScanError) -> EnvelopeInfo {
        try body.withUnsafeBufferPointer { (p) throws(JSONScanError) -> EnvelopeInfo in try inspect(p) }
    }

    /// The family and entity id a Genesys topic name designates.
    ///
    /// - `v2.detail.events.conversation.{id}.…` → conversation, key conversation id
    /// - `v2.routing.queues.{id}.…`, `v2.analytics.queues.{id}.…` → queue, key queue id
    /// - `v2.users.{id}.…` → user, key user id
    /// - `v2.audits.entitytype.{type}.entityid.{id}` → audit, key entity id
    /// - anything else → other
    public static func route(topicName: String?) -> (family: TopicFamily, entityID: String?) {
        guard var topicName else { return (.other, nil) }
        // On the gateway's hot path: compared as bytes (no substrings, no Foundation `contains`).
        return topicName.withUTF8 { route(topicBytes: $0) }
    }

    private static func route(topicBytes name: UnsafeBufferPointer<UInt8>) -> (family: TopicFamily, entityID: String?) {
        // The dot-separated parts as ranges of `name`; at most the 8 the rules look at.
        var parts: [Range<Int>] = []
        parts.reserveCapacity(8)
        var partStart = 0
        for i in 0..<name.count where name[i] == UInt8(ascii: ".") {
            parts.append(partStart..<i)
            partStart = i + 1
        }
        parts.append(partStart..<name.count)
        func isPart(_ i: Int, _ literal: StaticString) -> Bool {
            guard i < parts.count else { return false }
            let range = parts[i]
            return range.count == literal.utf8CodeUnitCount
                && zip(name[range], UnsafeBufferPointer(start: literal.utf8Start, count: range.count)).allSatisfy(==)
        }
        func part(_ i: Int) -> String? {
            guard i < parts.count else { return nil }
            let bytes = UnsafeBufferPointer(rebasing: name[parts[i]])
            guard !bytes.isEmpty, !bytes.contains(UInt8(ascii: "{")) else { return nil }
            return String(decoding: bytes, as: UTF8.self)
        }
        guard parts.count >= 3, isPart(0, "v2") else { return (.other, nil) }
        if isPart(1, "detail") && parts.count >= 5 && isPart(2, "events") && isPart(3, "conversation") {
            return (.conversation, part(4))
        }
        if (isPart(1, "routing") || isPart(1, "analytics")) && parts.count >= 4 && isPart(2, "queues") {
            return (.queue, part(3))
        }
        if isPart(1, "users") { return (.user, part(2)) }
        if isPart(1, "audits") {
            if let i = parts.indices.first(where: { isPart($0, "entityid") }) { return (.audit, part(i + 1)) }
            return (.audit, nil)
        }
        return (.other, nil)
    }
}

/// Maps topic families to Kafka topic names: `<prefix>.<family>` (default prefix `genesys.raw`).
public struct TopicNaming: Sendable, Equatable {
    public var prefix: String

    public init(prefix: String = "genesys.raw") {
        self.prefix = prefix
    }

    public func topic(for family: TopicFamily) -> String { "\(prefix).\(family.rawValue)" }

    public var allTopics: [String] { TopicFamily.allCases.map(topic(for:)) }
}

/// The headers of a raw event record, the same whichever way the event came in (the gateway's
/// HTTP sources, the notification bridge): one code path, so workers see one shape.
public enum RawEventHeaders {
    /// - Parameters:
    ///   - requestID, keyID: the gateway's request id and the signing key's id (HTTP only).
    ///   - producedEventID: an event id for records whose body has none (notifications), used
    ///     by the workers' idempotency.
    public static func make(
        info: EnvelopeInfo,
        contentType: String,
        receivedAt: Int64,
        source: String,
        requestID: String? = nil,
        keyID: String? = nil,
        producedEventID: String? = nil
    ) -> [(name: String, value: [UInt8])] {
        var headers: [(name: String, value: [UInt8])] = [
            (IngestHeader.contentType, Array(contentType.utf8)),
            (IngestHeader.receivedAt, Array(String(receivedAt).utf8)),
            (IngestHeader.source, Array(source.utf8)),
        ]
        if let requestID { headers.append((IngestHeader.requestID, Array(requestID.utf8))) }
        if let keyID { headers.append((IngestHeader.keyID, Array(keyID.utf8))) }
        if let topicName = info.topicName { headers.append((IngestHeader.topicName, Array(topicName.utf8))) }
        if let id = info.envelopeID { headers.append((IngestHeader.eventID, Array(id.utf8))) }
        if let producedEventID { headers.append((IngestHeader.producedEventID, Array(producedEventID.utf8))) }
        return headers
    }
}
