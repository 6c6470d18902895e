import Foundation
import IngestCore
import IngestHTTP
import IngestWebSocket

/// The notification service stand-in (see `../shared/genesys/WEBSOCKET.md`): channels created
/// by `POST /api/v2/notifications/channels`, subscriptions replaced by `PUT …/subscriptions`
/// (`Permitted`/`Rejected` per topic, 400 above 1,000 topics, 403 for the whole request without
/// `ignoreErrors` when one is not permitted), and the WebSocket each channel is read on
/// (`/channels/{id}`, no auth header: the id is the credential), with heartbeats, `{"message":
/// "ping"}` → pong, a second connection kicking the first, channel expiry, and test hooks for
/// drops and `v2.system.socket_closing`.
///
/// Topics starting with `v2.forbidden.` are not permitted (a missing permission, for tests).
public final class NotificationService: @unchecked Sendable {
    // @unchecked: `state` is behind a lock; sockets are used on their loop's queue only.
    public struct Settings: Sendable {
        /// How often each socket gets `channel.metadata` "WebSocket Heartbeat" (Genesys: ~30 s).
        public var heartbeatInterval: Duration = .seconds(30)
        /// A channel's lifetime from creation or its last subscription change (Genesys: 24 h).
        public var channelLifetime: Duration = .seconds(86_400)
        public var maxTopicsPerChannel = 1000
        public var maxChannels = 20
        public init() {}
    }

    /// Mutable members are changed under `state`'s lock only.
    final class Channel: @unchecked Sendable {
        let id: String
        var expires: ContinuousClock.Instant
        var expiresWall: Date
        var topics: Set<String> = []
        var socket: Socket?
        init(id: String, lifetime: Duration) {
            self.id = id
            expires = .now + lifetime
            expiresWall = Date().addingTimeInterval(lifetime.inSeconds)
        }
    }

    public let settings: Settings
    private let state = LockedValue<[String: Channel]>([:])
    private let order = LockedValue<[String]>([])

    init(settings: Settings) {
        self.settings = settings
    }

    // MARK: - Test hooks

    /// Sends `eventBody` on `topicName` to every connected channel subscribed to it. Returns
    /// how many sockets it went to.
    @discardableResult
    public func publish(topicName: String, eventBody: JSONValue) -> Int {
        let sockets = state.withLock { channels in
            channels.values.filter { $0.topics.contains(topicName) && $0.expires > .now }.compactMap(\.socket)
        }
        for s in sockets {
            // Each delivery with its own CorrelationId: nothing documents that two sockets get
            // the same one, so a client must not rely on it to recognise a repeat.
            let message: JSONValue = [
                "topicName": .string(topicName), "version": "2", "eventBody": eventBody,
                "metadata": ["CorrelationId": .string(UUID().uuidString.lowercased())],
            ]
            s.sendText(message.description)
        }
        return sockets.count
    }

    /// Drops every socket without a close frame (a network failure).
    public func dropConnections() {
        for s in state.withLock({ $0.values.compactMap(\.socket) }) { s.abort() }
    }

    /// The connected sockets go silent — no heartbeats, pongs or events, the TCP connection
    /// stays open (a half-dead socket that only a watchdog notices). New sockets are not muted.
    public func muteConnections() {
        for s in state.withLock({ $0.values.compactMap(\.socket) }) { s.mute() }
    }

    /// Sends `v2.system.socket_closing` to every socket (Genesys: a minute before maintenance).
    public func announceSocketClosing() {
        let body =
            "{\"topicName\":\"v2.system.socket_closing\",\"version\":\"2\",\"eventBody\":{\"message\":\"closing\"}}"
        for s in state.withLock({ $0.values.compactMap(\.socket) }) { s.sendText(body) }
    }

    /// Sockets connected now.
    public var connectedCount: Int { state.withLock { $0.values.filter { $0.socket != nil }.count } }
    public var channelCount: Int { state.withLock { $0.count } }
    /// Topics subscribed on channel `id`.
    public func topics(channel id: String) -> Set<String> { state.withLock { $0[id]?.topics ?? [] } }

    // MARK: - REST

    func handle(
        method: String,
        parts: [String],
        query: [String: String],
        body: [UInt8],
        baseURL: String
    )
        -> HTTPResponse?
    {
        switch (method, parts) {
        case ("POST", ["notifications", "channels"]):
            let id = UUID().uuidString.lowercased()
            let channel = Channel(id: id, lifetime: settings.channelLifetime)
            state.withLock { $0[id] = channel }
            // A 21st channel evicts the oldest, unconnected ones first.
            let evicted: Channel? = order.withLock { ids in
                ids.append(id)
                guard ids.count > settings.maxChannels else { return nil }
                let channels = state.withLock { $0 }
                let victim = ids.first { channels[$0]?.socket == nil } ?? ids[0]
                ids.removeAll { $0 == victim }
                return state.withLock { $0.removeValue(forKey: victim) }
            }
            evicted?.socket?.abort()
            let ws = baseURL.replacingOccurrences(of: "http://", with: "ws://")
            return Self.json(
                .ok,
                [
                    "id": id, "connectUri": "\(ws)/channels/\(id)",
                    "expires": ISO8601DateFormatter().string(from: channel.expiresWall),
                ]
            )
        case ("PUT", let p)
        where p.count == 4 && p[0] == "notifications" && p[1] == "channels" && p[3] == "subscriptions":
            guard let channel = state.withLock({ $0[p[2]] }) else {
                return Self.json(.notFound, ["message": "channel not found", "code": "not.found", "status": 404])
            }
            guard let list = (try? JSONSerialization.jsonObject(with: Data(body))) as? [[String: Any]] else {
                return Self.json(.badRequest, ["message": "invalid body", "code": "bad.request", "status": 400])
            }
            let requested = list.compactMap { $0["id"] as? String }
            guard requested.count <= settings.maxTopicsPerChannel else {
                return Self.json(
                    .badRequest,
                    [
                        "message": "Subscribing to more than \(settings.maxTopicsPerChannel) topics is not allowed",
                        "code": "bad.request", "status": 400,
                    ]
                )
            }
            let ignoreErrors = query["ignoreErrors"] == "true"
            let rejected = requested.filter { $0.hasPrefix("v2.forbidden.") }
            if !rejected.isEmpty && !ignoreErrors {
                return Self.json(
                    HTTPStatus(code: 403, reason: "Forbidden"),
                    ["message": "missing permission for \(rejected[0])", "code": "missing.permissions", "status": 403]
                )
            }
            state.withLock { _ in
                channel.topics = Set(requested.filter { !$0.hasPrefix("v2.forbidden.") })
                channel.expires = .now + settings.channelLifetime
                channel.expiresWall = Date().addingTimeInterval(settings.channelLifetime.inSeconds)
            }
            let entities: [[String: Any]] = requested.map { topic in
                topic.hasPrefix("v2.forbidden.")
                    ? [
                        "id": topic, "state": "Rejected", "rejectionReason": "missing permissions",
                        "missingPermissions": ["routing:queue:view"],
                    ]
                    : ["id": topic, "state": "Permitted"]
            }
            return Self.json(.ok, ["entities": entities])
        case ("HEAD", let p) where p.count == 3 && p[0] == "notifications" && p[1] == "channels":
            let alive = state.withLock { $0[p[2]].map { $0.expires > .now } ?? false }
            return HTTPResponse(status: alive ? .ok : .notFound)
        case ("GET", ["notifications", "availabletopics"]):
            let topics: [[String: Any]] = [
                ["id": "v2.detail.events.conversation.{id}.customer.start", "transports": ["All"]],
                ["id": "v2.detail.events.conversation.{id}.acd.end", "transports": ["All"]],
                ["id": "v2.detail.events.conversation.{id}.customer.end", "transports": ["All"]],
                ["id": "v2.analytics.queues.{id}.observations", "transports": ["Websocket"]],
                ["id": "v2.routing.queues.{id}.conversations", "transports": ["Websocket"]],
                ["id": "v2.users.{id}.presence", "transports": ["All"]],
            ]
            return Self.json(.ok, ["entities": topics])
        default:
            return nil
        }
    }

    static func json(_ status: HTTPStatus, _ object: Any) -> HTTPResponse {
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: Array(body))
    }

    // MARK: - WebSocket

    /// `GET /channels/{id}` with `Upgrade: websocket`.
    func accept(_ request: HTTPRequest, channelID: String, responder: HTTPResponder) {
        guard let channel = state.withLock({ $0[channelID] }), channel.expires > .now else {
            responder.respond(.error(.notFound, "channel not found or expired", closeConnection: true))
            return
        }
        guard request.headers["upgrade"]?.lowercased() == "websocket",
            request.headers["sec-websocket-version"] == "13",
            let key = request.headers["sec-websocket-key"]
        else {
            responder.respond(.error(.badRequest, "not a WebSocket upgrade", closeConnection: true))
            return
        }
        let socket = Socket(service: self, channel: channel)
        // One socket per channel: a second connection kicks the first.
        let previous = state.withLock { _ -> Socket? in
            let old = channel.socket
            channel.socket = socket
            return old
        }
        previous?.abort()
        responder.upgrade(
            HTTPResponse(
                status: .switchingProtocols,
                headers: [
                    ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Accept", WebSocketHandshake.acceptValue(for: key)),
                ]
            ),
            to: socket
        )
        socket.startHeartbeats(on: responder.loop, every: settings.heartbeatInterval)
    }

    fileprivate func socketClosed(_ socket: Socket) {
        state.withLock { _ in if socket.channel.socket === socket { socket.channel.socket = nil } }
    }

    /// One channel's WebSocket, confined to its loop's queue (the public calls hop there).
    final class Socket: UpgradedConnectionHandler, @unchecked Sendable {
        // @unchecked: every member is used on `loop.queue` only.
        unowned let service: NotificationService
        let channel: Channel
        private var connection: UpgradedConnection?
        private var decoder = WebSocketFrameDecoder(maxFramePayload: 1 << 20, framesFrom: .client)
        private var assembler = WebSocketMessageAssembler(maxMessageBytes: 1 << 20)
        private var timer: DispatchSourceTimer?
        private var loop: EventLoop?

        init(service: NotificationService, channel: Channel) {
            self.service = service
            self.channel = channel
        }

        func startHeartbeats(on loop: EventLoop, every interval: Duration) {
            self.loop = loop
            let t = DispatchSource.makeTimerSource(queue: loop.queue)
            let ms = max(10, Int(interval.inSeconds * 1000))
            t.schedule(deadline: .now() + .milliseconds(ms), repeating: .milliseconds(ms))
            t.setEventHandler { [weak self] in
                guard let self else { return }
                // An expired channel's socket is closed (what Genesys sends then is not
                // documented; a client must treat it as a gap unless it rotated in time).
                if self.channel.expires <= .now {
                    self.close(code: 1001, reason: "channel expired")
                    return
                }
                self.write(
                    .text,
                    "{\"topicName\":\"channel.metadata\",\"eventBody\":{\"message\":\"WebSocket Heartbeat\"}}"
                )
            }
            timer = t
            t.resume()
        }

        private var muted = false
        func mute() { loop?.execute { [self] in muted = true } }
        func sendText(_ text: String) { loop?.execute { [self] in write(.text, text) } }
        func abort() { loop?.execute { [self] in connection?.abort() } }

        /// A text message (nothing while muted).
        private func write(_ opcode: WebSocketOpcode, _ text: String) {
            guard !muted else { return }
            send(WebSocketFrame(opcode: opcode, payload: Array(text.utf8)))
        }

        private func send(_ frame: WebSocketFrame) { connection?.write(WebSocketFrameEncoder.encodeUnmasked(frame)) }

        /// The closing handshake's last word, then the TCP connection ends.
        private func close(code: UInt16, reason: String) {
            send(
                WebSocketFrame(opcode: .close, payload: WebSocketFrameEncoder.closePayload(code: code, reason: reason))
            )
            connection?.close()
        }

        func opened(_ connection: UpgradedConnection) { self.connection = connection }

        func received(_ bytes: [UInt8], on connection: UpgradedConnection) {
            decoder.append(bytes)
            do {
                while let frame = try decoder.next() {
                    guard let message = try assembler.push(frame) else { continue }
                    switch message {
                    case .text(let t) where t.contains("\"ping\""):
                        write(.text, "{\"topicName\":\"channel.metadata\",\"eventBody\":{\"message\":\"pong\"}}")
                    case .ping(let p):
                        send(WebSocketFrame(opcode: .pong, payload: p))
                    case .close:
                        close(code: 1000, reason: "")
                        return
                    default:
                        break
                    }
                }
            } catch {
                connection.close()
            }
        }

        func closed(_ connection: UpgradedConnection) {
            timer?.cancel()
            timer = nil
            self.connection = nil
            service.socketClosed(self)
        }
    }
}
