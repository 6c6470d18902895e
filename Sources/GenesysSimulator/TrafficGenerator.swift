import Foundation
import IngestCore
import IngestCrypto
import IngestHTTPClient
import Logging
import Synchronization

/// Simulates conversations: posts their detail events (customer.start, acd.start, acd.end,
/// user.start, user.end, acw, customer.end) as signed EventBridge envelopes to a gateway, in
/// order per conversation, and registers each ended conversation's details with the simulator
/// (visible after its eventual-consistency delay).
public final class TrafficGenerator: Sendable {
    public struct Options: Sendable {
        /// The gateway source URL, e.g. `http://127.0.0.1:8080/events/genesys`.
        public var gatewayURL: String
        /// The source's genesys-hmac secret.
        public var secret: String
        public var queueIDs: [String] = [
            "11111111-0000-4000-8000-000000000001", "11111111-0000-4000-8000-000000000002",
        ]
        public var agentIDs: [String] = (1...10).map { String(format: "22222222-0000-4000-8000-%012d", $0) }
        /// Conversations started per second.
        public var conversationsPerSecond = 5.0
        /// Share of callers who abandon in queue.
        public var abandonRate = 0.1
        /// Queue wait: uniformly distributed in this range (milliseconds).
        public var waitRange: ClosedRange<Int> = 2_000...90_000
        /// Conversation ids to use, in order, before random ones (a test that subscribes to
        /// per-conversation notification topics knows them in advance).
        public var conversationIDs: [String] = []
        /// Post each event to the gateway as a signed EventBridge envelope.
        public var postsToGateway = true
        /// Also publish each detail event on the simulator's notification service, on its
        /// per-conversation topic `v2.detail.events.conversation.{id}.{type}` (what a channel
        /// subscribed to it receives).
        public var notifiesDetailEvents = false

        public init(gatewayURL: String, secret: String) {
            self.gatewayURL = gatewayURL
            self.secret = secret
        }
    }

    public struct Statistics: Sendable {
        public var conversations = 0
        public var events = 0
        public var accepted = 0
        public var failed = 0
        /// Detail events published on the notification service while no socket was subscribed
        /// to their topic: lost to the WebSocket, as Genesys does not replay.
        public var undelivered = 0
        /// `acd.end` events among them: waits only a reconciliation can recover.
        public var undeliveredWaits = 0
    }

    let options: Options
    let simulator: GenesysSimulator?
    let logger: Logger
    private let http: HTTPClient
    private let stats = LockedValue(Statistics())
    /// Ended conversation ids, in order (tests compare with what was enriched).
    private let ended = LockedValue<[String]>([])
    private let injected = LockedValue<[InjectedWait]>([])
    private let nextPreset = LockedValue(0)

    public init(options: Options, simulator: GenesysSimulator?, logger: Logger, http: HTTPClient = .shared) {
        self.options = options
        self.simulator = simulator
        self.logger = logger
        self.http = http
    }

    public var statistics: Statistics { stats.withLock { $0 } }
    public var endedConversations: [String] { ended.withLock { $0 } }

    /// One queue wait the generator produced (what analytics should find).
    public struct InjectedWait: Sendable, Equatable {
        public var queueID: String
        public var waitMilliseconds: Int
        public var abandoned: Bool
    }

    /// Every wait posted so far, in order.
    public var injectedWaits: [InjectedWait] { injected.withLock { $0 } }

    /// Simulates `count` conversations (paced at the configured rate) and returns when all are
    /// posted. Meanwhile each queue's observations (oWaiting, oInteracting, oLongestWaiting) are
    /// posted once a second, as Genesys notifies them at most once a second per queue.
    ///
    /// Each conversation's `acd.end` carries the current time (it has just left the queue), so
    /// live windows see it; its later events carry the times they will happen at.
    /// `waitRange` overrides the configured waits for this run (e.g. a surge).
    public func run(conversations count: Int, waitRange: ClosedRange<Int>? = nil) async {
        let waits = waitRange ?? options.waitRange
        let observer = Task { await self.postObservations() }
        await withTaskGroup(of: Void.self) { group in
            let pacer = RatePacer(perSecond: max(0.001, options.conversationsPerSecond))
            for i in 0..<count {
                let wait = pacer.delay(before: i)
                if wait > .zero { try? await Task.sleep(for: wait) }
                group.addTask { await self.simulateOne(waitRange: waits) }
            }
        }
        observer.cancel()
    }

    private func postObservations() async {
        while !Task.isCancelled {
            await postObservationRound()
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// One round of every queue's observations (as Genesys sends them, about once a second):
    /// on the simulator, its notification service and, as EventBridge envelopes, the gateway.
    public func postObservationRound() async {
        for queue in options.queueIDs {
            let waiting = Int.random(in: 0...8)
            let interacting = Int.random(in: 0...options.agentIDs.count)
            let longest = waiting > 0 ? Int.random(in: 1_000...120_000) : 0
            simulator?.setObservations(
                queueID: queue,
                waiting: waiting,
                interacting: interacting,
                longestWaitingMilliseconds: longest
            )
            // The same state on the notification service, for channels subscribed to it
            // (the bridge), as Genesys notifies both transports.
            simulator?.notifications.publish(
                topicName: "v2.analytics.queues.\(queue).observations",
                eventBody: Self.observationBody(
                    queue: queue,
                    waiting: waiting,
                    interacting: interacting,
                    longestMs: longest
                )
            )
            await post(
                Self.observationEnvelope(
                    queue: queue,
                    waiting: waiting,
                    interacting: interacting,
                    longestMs: longest
                )
            )
        }
    }

    /// The `eventBody` of a `v2.analytics.queues.{id}.observations` notification.
    static func observationBody(queue: String, waiting: Int, interacting: Int, longestMs: Int) -> JSONValue {
        let now = Date()
        let iso = ISO8601DateFormatter()
        let interval = iso.string(from: now.addingTimeInterval(-60)) + "/" + iso.string(from: now)
        func number(_ n: Int) -> JSONValue { .number(Double(n)) }
        return [
            "group": ["queueId": .string(queue), "mediaType": "voice"],
            "data": [
                [
                    "interval": .string(interval),
                    "metrics": [
                        ["metric": "oWaiting", "stats": ["count": number(waiting)]],
                        ["metric": "oInteracting", "stats": ["count": number(interacting)]],
                        [
                            "metric": "oLongestWaiting",
                            "stats": ["max": number(longestMs), "count": number(waiting > 0 ? 1 : 0)],
                        ],
                    ],
                ]
            ],
        ]
    }

    /// An EventBridge envelope of a `v2.analytics.queues.{id}.observations` notification.
    static func observationEnvelope(queue: String, waiting: Int, interacting: Int, longestMs: Int) -> [UInt8] {
        let now = Date()
        let iso = ISO8601DateFormatter()
        let envelope: [String: Any] = [
            "version": "0", "id": UUID().uuidString.lowercased(),
            "detail-type": "v2.analytics.queues.{id}.observations",
            "source": "aws.partner/genesys.com/cloud/00000000-0000-4000-8000-000000000000/simulator",
            "account": "123456789012", "time": iso.string(from: now), "region": "us-east-1", "resources": [],
            "detail": [
                "topicName": "v2.analytics.queues.\(queue).observations", "version": "2",
                "eventBody": observationBody(
                    queue: queue,
                    waiting: waiting,
                    interacting: interacting,
                    longestMs: longestMs
                ).foundationObject,
                "metadata": ["CorrelationId": UUID().uuidString.lowercased()], "timestamp": iso.string(from: now),
            ],
        ]
        return Array((try? JSONSerialization.data(withJSONObject: envelope, options: [.sortedKeys])) ?? Data())
    }

    private func simulateOne(waitRange: ClosedRange<Int>) async {
        let preset = nextPreset.withLock { n -> String? in
            defer { n += 1 }
            return n < options.conversationIDs.count ? options.conversationIDs[n] : nil
        }
        let conversation = preset ?? UUID().uuidString.lowercased()
        let queue = options.queueIDs.randomElement()!
        let agent = options.agentIDs.randomElement()!
        let abandoned = Double.random(in: 0..<1) < options.abandonRate
        let wait = Int64(Int.random(in: waitRange))
        let talk = Int64(Int.random(in: 30_000...600_000))
        let t0 = WallClock.nowMilliseconds() - wait - 500
        // One timeline for the events and the details Genesys will have: an event rebuilt
        // from the details (a reconciliation) has the identity the live one had.
        var shape = ConversationDetailsFactory.Shape(
            conversationID: conversation,
            queueID: queue,
            agentID: abandoned ? nil : agent,
            start: t0,
            queueStart: t0 + 500,
            queueEnd: t0 + 500 + wait,
            end: t0 + 500 + wait + (abandoned ? 0 : talk + 15_000)
        )
        shape.agentParticipantID = UUID().uuidString.lowercased()
        let (customer, acd, session) = (shape.customerParticipantID, shape.acdParticipantID, shape.sessionID)
        let agentParticipant = shape.agentParticipantID
        injected.withLock {
            $0.append(InjectedWait(queueID: queue, waitMilliseconds: Int(wait), abandoned: abandoned))
        }
        var events: [(String, [String: Any])] = [
            ("customer.start", ["participantId": customer, "sessionId": session, "eventTime": t0]),
            (
                "acd.start",
                ["participantId": acd, "sessionId": session, "queueId": queue, "eventTime": shape.queueStart]
            ),
            (
                "acd.end",
                [
                    "participantId": acd, "sessionId": session, "queueId": queue, "eventTime": shape.queueEnd,
                    "acdOutcome": abandoned ? "ABANDON" : "ANSWERED", "connectedDurationMs": wait,
                    "answeredUserId": abandoned ? NSNull() : agent as Any,
                ]
            ),
        ]
        if !abandoned {
            let answered = shape.queueEnd
            events += [
                (
                    "user.start",
                    ["participantId": agentParticipant, "userId": agent, "queueId": queue, "eventTime": answered]
                ),
                (
                    "user.end",
                    [
                        "participantId": agentParticipant, "userId": agent, "queueId": queue,
                        "eventTime": answered + talk,
                    ]
                ),
                (
                    "acw",
                    [
                        "participantId": agentParticipant, "userId": agent, "queueId": queue, "wrapupCode": "resolved",
                        "wrapupDurationMs": 15_000, "eventTime": answered + talk + 15_000,
                    ]
                ),
            ]
        }
        events.append(
            (
                "customer.end",
                [
                    "participantId": customer, "sessionId": session, "disconnectType": abandoned ? "CUSTOMER" : "PEER",
                    "eventTime": shape.end,
                ]
            )
        )
        stats.withLock { $0.conversations += 1 }
        for (type, fields) in events {
            if type == "customer.end" {
                simulator?.addConversation(ConversationDetailsFactory.details(shape))
                ended.withLock { $0.append(conversation) }
            }
            let body = Self.eventBody(conversation: conversation, fields: fields)
            if options.notifiesDetailEvents, let simulator {
                let delivered = simulator.notifications.publish(
                    topicName: "v2.detail.events.conversation.\(conversation).\(type)",
                    eventBody: JSONValue(foundation: body)
                )
                if delivered == 0 {
                    stats.withLock {
                        $0.undelivered += 1
                        if type == "acd.end" { $0.undeliveredWaits += 1 }
                    }
                }
            }
            await post(Self.envelope(conversation: conversation, type: type, body: body))
        }
    }

    /// Registers `count` ended conversations with the simulator and returns their
    /// `customer.end` envelopes (conversation id, body) — load for enrichment benchmarks.
    public static func endedConversations(_ count: Int, simulator: GenesysSimulator) -> [(String, [UInt8])] {
        (0..<count).map { _ in
            let id = UUID().uuidString.lowercased()
            let wait = Int.random(in: 2_000...90_000)
            let start = Date().addingTimeInterval(-600)
            simulator.addConversation(
                ConversationDetailsFactory.details(
                    conversationID: id,
                    queueID: "11111111-0000-4000-8000-000000000001",
                    agentID: "22222222-0000-4000-8000-000000000001",
                    start: start,
                    waitMilliseconds: wait,
                    talkMilliseconds: 120_000,
                    abandoned: false
                )
            )
            let body = envelope(
                conversation: id,
                type: "customer.end",
                fields: [
                    "participantId": UUID().uuidString.lowercased(), "sessionId": UUID().uuidString.lowercased(),
                    "disconnectType": "PEER", "eventTime": WallClock.nowMilliseconds(),
                ]
            )
            return (id, body)
        }
    }

    /// An EventBridge envelope of a conversation detail event.
    /// A detail event's `eventBody`: its fields plus the conversation, media type, direction.
    static func eventBody(conversation: String, fields: [String: Any]) -> [String: Any] {
        var body = fields
        body["conversationId"] = conversation
        body["mediaType"] = "VOICE"
        body["direction"] = "INBOUND"
        return body
    }

    static func envelope(conversation: String, type: String, fields: [String: Any]) -> [UInt8] {
        envelope(conversation: conversation, type: type, body: eventBody(conversation: conversation, fields: fields))
    }

    static func envelope(conversation: String, type: String, body: [String: Any]) -> [UInt8] {
        let envelope: [String: Any] = [
            "version": "0", "id": UUID().uuidString.lowercased(),
            "detail-type": "v2.detail.events.conversation.{id}.\(type)",
            "source": "aws.partner/genesys.com/cloud/00000000-0000-4000-8000-000000000000/simulator",
            "account": "123456789012", "time": ISO8601DateFormatter().string(from: Date()), "region": "us-east-1",
            "resources": [],
            "detail": [
                "topicName": "v2.detail.events.conversation.\(conversation).\(type)", "version": "2", "eventBody": body,
                "metadata": ["CorrelationId": UUID().uuidString.lowercased()],
                "timestamp": ISO8601DateFormatter().string(from: Date()),
            ],
        ]
        return Array((try? JSONSerialization.data(withJSONObject: envelope, options: [.sortedKeys])) ?? Data())
    }

    private func post(_ body: [UInt8]) async {
        guard options.postsToGateway else { return }
        let request = HTTPClientRequest(
            method: "POST",
            url: options.gatewayURL,
            headers: [("Content-Type", "application/json")]
                + RequestSigner.headers(scheme: .genesysHMAC, secret: options.secret, body: body).map { ($0.0, $0.1) },
            body: body,
            timeoutMilliseconds: 10_000
        )
        stats.withLock { $0.events += 1 }
        // At-least-once like EventBridge: retry on 503 or connection errors.
        for attempt in 0..<5 {
            if let status = try? await http.execute(request).status {
                if status == 202 {
                    stats.withLock { $0.accepted += 1 }
                    return
                }
                if status != 503 { break }
            }
            try? await Task.sleep(for: .milliseconds(200 * (attempt + 1)))
        }
        stats.withLock { $0.failed += 1 }
        logger.warning("generator: event not accepted by the gateway")
    }
}
