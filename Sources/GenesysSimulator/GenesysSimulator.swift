import Foundation
import IngestCore
import IngestHTTP
import Logging
import Synchronization

/// Behaviour knobs of the simulator.
public struct SimulatorConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 0
    public var clientID = "sim-client"
    public var clientSecret = "sim-secret"
    /// Requests per OAuth client in any sliding window of `rateWindowSeconds` (Genesys: 300 per minute).
    public var requestsPerMinute = 300
    /// The rate-limit window (60 s like Genesys; shorter in tests).
    public var rateWindowSeconds = 60.0
    public var tokenLifetimeSeconds = 86_400
    /// Added to every API response.
    public var latencyMilliseconds = 0
    /// Share of API requests answered 503 (0…1), spread evenly (see ``FaultSpread``).
    public var serverErrorRate = 0.0
    /// Share of API requests whose connection is dropped without an answer (0…1), spread evenly.
    public var connectionDropRate = 0.0
    /// Details of a conversation appear this long after it ended (eventual consistency).
    public var detailsDelayMilliseconds = 0
    /// The notification service: heartbeat interval, channel lifetime, limits.
    public var notifications = NotificationService.Settings()

    public init() {}
}

/// A local stand-in for the parts of Genesys Cloud the workers use: the OAuth token endpoint,
/// analytics conversation details (single, multi-get, query) and routing queues, with
/// Genesys's rate limiting (429 + `Retry-After` and its real body, `inin-ratelimit-*` headers),
/// token expiry, latency, 5xx faults and eventual consistency.
///
/// State is behind a lock (LockedValue); handlers run on the HTTP server's event loops.
public final class GenesysSimulator: HTTPRequestHandler, @unchecked Sendable {
    // @unchecked: `server` is set once in start(); everything else is behind `state`.

    struct Token {
        var expiresAt: ContinuousClock.Instant
    }

    struct Conversation {
        var details: JSONValue
        var availableAt: ContinuousClock.Instant
    }

    struct State {
        var tokens: [String: Token] = [:]
        /// Request times in the current window, per OAuth client (all its tokens share it).
        var requests: [ContinuousClock.Instant] = []
        var conversations: [String: Conversation] = [:]
        var queues: [String: [String: JSONValue]] = [:]
        var members: [String: Set<String>] = [:]
        /// Live queue observations by queue id: oWaiting, oInteracting, oLongestWaiting (ms).
        var observations: [String: (waiting: Int, interacting: Int, longestWaitingMs: Int)] = [:]
        var estimatedWaits: [String: Double] = [:]
        /// Genesys Cloud presence by user id: system presence, message, modified (epoch ms).
        var presences: [String: (systemPresence: String, message: String, modified: Int64)] = [:]
        /// Writes per kind ("PUT queue", "POST members", "POST members delete") and queue id.
        var writes: [String: Int] = [:]
        var apiRequests = 0
        var rateLimited = 0
        var tokensIssued = 0
        /// API requests refused because their token had expired (or was revoked).
        var rejectedTokens = 0
        var maxRequestsInAnyMinute = 0
        /// API paths (prefixes after `/api/v2/`) whose answers are held, and the requests
        /// waiting for ``GenesysSimulator/release(_:)``.
        var held: Set<String> = []
        var waiting: [(path: String, request: HTTPRequest, responder: HTTPResponder)] = []
        var serverErrors = FaultSpread()
        var connectionDrops = FaultSpread()
    }

    public let configuration: SimulatorConfiguration
    private let state = LockedValue<StateBox>(StateBox())
    private var server: HTTPServer?
    private let logger: Logger
    /// The PagerDuty and time-series database stand-ins served next to the Genesys API.
    public let receiver = LocalReceiver()
    /// Notification channels, subscriptions and their WebSockets.
    public let notifications: NotificationService

    /// Wraps the non-Sendable dictionaries (JSON objects) held in the lock.
    final class StateBox: @unchecked Sendable {
        var value = State()
    }

    public init(configuration: SimulatorConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.notifications = NotificationService(settings: configuration.notifications)
    }

    /// Starts serving; returns the bound port.
    @discardableResult
    public func start() throws -> Int {
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(
                host: configuration.host,
                port: configuration.port,
                eventLoopCount: 1,
                maxConnections: 1024
            ),
            handler: self,
            logger: logger
        )
        self.server = server
        return try server.start()
    }

    public var port: Int { server?.port ?? 0 }
    public var baseURL: String { "http://\(configuration.host):\(port)" }

    public func stop() async { await server?.shutdown(deadline: .seconds(1)) }

    // MARK: - Data for tests, demos and the traffic generator

    /// Registers a conversation's details; they become visible after the configured delay.
    public func addConversation(_ details: JSONValue) {
        guard let id = details["conversationId"]?.stringValue else { return }
        let available = ContinuousClock.now + .milliseconds(configuration.detailsDelayMilliseconds)
        state.withLock { $0.value.conversations[id] = Conversation(details: details, availableAt: available) }
    }

    public func addQueue(_ queue: [String: JSONValue]) {
        guard let id = queue["id"]?.stringValue else { return }
        state.withLock { $0.value.queues[id] = queue }
    }

    /// Sets a queue's live observations (served by the observations query).
    public func setObservations(queueID: String, waiting: Int, interacting: Int, longestWaitingMilliseconds: Int) {
        state.withLock { $0.value.observations[queueID] = (waiting, interacting, longestWaitingMilliseconds) }
    }

    /// Sets a user's Genesys Cloud presence (`systemPresence`: AVAILABLE, BUSY, ON_QUEUE, …),
    /// as `GET /api/v2/users/presences/purecloud/bulk` answers it.
    public func setPresence(userID: String, systemPresence: String, message: String = "") {
        state.withLock {
            $0.value.presences[userID] = (systemPresence, message, WallClock.nowMilliseconds())
        }
    }

    /// Registers the traffic generator's queues (Sales and Support, five members each) and an
    /// overflow queue, so the overflow controller has something to control in local runs.
    public func addDemoQueues(agentIDs: [String]) {
        let defaults = TrafficGenerator.Options(gatewayURL: "", secret: "")
        let queues = [
            (defaults.queueIDs[0], "Sales"), (defaults.queueIDs[1], "Support"),
            ("11111111-0000-4000-8000-000000000099", "Overflow"),
        ]
        for (i, (id, name)) in queues.enumerated() {
            addQueue([
                "id": .string(id), "name": .string(name), "description": .string("\(name) (simulated)"),
                "dateModified": .string(Self.timestamp()), "skillEvaluationMethod": "BEST",
                "conditionalGroupRouting": ["rules": []],
                "acwSettings": ["wrapupPrompt": "OPTIONAL", "timeoutMs": 30000],
            ])
            setMembers(id, Set(agentIDs.dropFirst(i * 3).prefix(5)))
        }
    }

    /// Sets the estimated wait the queue's `estimatedwaittime` endpoint reports (default: 15 s
    /// per waiting interaction in its observations, or 30 s).
    public func setEstimatedWait(queueID: String, seconds: Double) {
        state.withLock { $0.value.estimatedWaits[queueID] = seconds }
    }

    /// The stored queue object.
    public func queue(_ id: String) -> [String: JSONValue]? {
        state.withLock { $0.value.queues[id] }
    }

    /// A person editing the queue in the admin UI: `edit` changes it, `dateModified` moves on.
    public func editQueue(_ id: String, _ edit: (inout [String: JSONValue]) -> Void) {
        state.withLock { box in
            guard var q = box.value.queues[id] else { return }
            edit(&q)
            q["dateModified"] = .string(Self.timestamp())
            box.value.queues[id] = q
        }
    }

    /// The queue's member user ids.
    public func members(_ queueID: String) -> Set<String> {
        state.withLock { $0.value.members[queueID] ?? [] }
    }

    public func setMembers(_ queueID: String, _ ids: Set<String>) {
        state.withLock { $0.value.members[queueID] = ids }
    }

    /// How many writes of `kind` ("PUT queue", "POST members", "POST members delete") reached `queueID`.
    public func writeCount(_ kind: String, queueID: String) -> Int {
        state.withLock { $0.value.writes["\(kind) \(queueID)"] ?? 0 }
    }

    /// ISO-8601 with milliseconds (two edits within one second still differ).
    static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }

    /// Invalidates every issued token (the next API call gets a 401).
    public func revokeTokens() {
        state.withLock { $0.value.tokens.removeAll() }
    }

    /// Counters: API requests, 429s, tokens issued, the most requests the client made in any window.
    public var statistics:
        (
            apiRequests: Int, rateLimited: Int, tokensIssued: Int, maxPerMinute: Int, rejectedTokens: Int
        )
    {
        state.withLock {
            (
                $0.value.apiRequests, $0.value.rateLimited, $0.value.tokensIssued, $0.value.maxRequestsInAnyMinute,
                $0.value.rejectedTokens
            )
        }
    }

    /// Holds the answers to API requests whose path (after `/api/v2/`) starts with `prefix`
    /// (e.g. `routing/queues/<id>/estimatedwaittime`) until ``release(_:)``: a test can see
    /// the state a client is in while its request is outstanding, however fast the machine.
    public func hold(_ prefix: String) {
        state.withLock { _ = $0.value.held.insert(prefix) }
    }

    /// How many requests are held under `prefix` right now.
    public func heldCount(_ prefix: String) -> Int {
        state.withLock { box in box.value.waiting.filter { $0.path.hasPrefix(prefix) }.count }
    }

    /// Stops holding `prefix` and answers every request held under it.
    public func release(_ prefix: String) {
        let released: [(path: String, request: HTTPRequest, responder: HTTPResponder)] = state.withLock { box in
            box.value.held.remove(prefix)
            let out = box.value.waiting.filter { $0.path.hasPrefix(prefix) }
            box.value.waiting.removeAll { $0.path.hasPrefix(prefix) }
            return out
        }
        for item in released {
            let request = item.request
            let responder = item.responder
            responder.loop.execute { responder.respond(self.route(request)) }
        }
    }

    // MARK: - HTTP

    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        if request.path.hasPrefix("/channels/") {
            notifications.accept(
                request,
                channelID: String(request.path.dropFirst("/channels/".count)),
                responder: responder
            )
            return
        }
        let apiPath = request.path.hasPrefix("/api/v2/") ? String(request.path.dropFirst("/api/v2/".count)) : nil
        if let apiPath {
            let heldNow = state.withLock { box in
                guard box.value.held.contains(where: { apiPath.hasPrefix($0) }) else { return false }
                box.value.waiting.append((apiPath, request, responder))
                return true
            }
            if heldNow { return }
        }
        if configuration.connectionDropRate > 0 && request.path.hasPrefix("/api/")
            && state.withLock({ $0.value.connectionDrops.next(rate: configuration.connectionDropRate) })
        {
            responder.abortConnection()
            return
        }
        let response = route(request)
        let delay = configuration.latencyMilliseconds
        if delay > 0 && request.path.hasPrefix("/api/") {
            responder.loop.queue.asyncAfter(deadline: .now() + .milliseconds(delay)) { responder.respond(response) }
        } else {
            responder.respond(response)
        }
    }

    private static func json(_ status: HTTPStatus, _ object: Any, headers: [(String, String)] = []) -> HTTPResponse {
        let object = (object as? JSONValue)?.foundationObject ?? object
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return HTTPResponse(
            status: status,
            headers: [("Content-Type", "application/json")] + headers,
            body: Array(body)
        )
    }

    private func route(_ request: HTTPRequest) -> HTTPResponse {
        if let answer = receiver.response(request) { return answer }
        let path = String(request.path)
        let correlation = UUID().uuidString.lowercased()
        if path == "/oauth/token" {
            guard request.method == "POST" else {
                return .error(.methodNotAllowed, "use POST", headers: [("Allow", "POST")])
            }
            return token(request)
        }
        if path == "/simulator/stats" {
            let s = statistics
            return Self.json(
                .ok,
                [
                    "apiRequests": s.apiRequests, "rateLimited": s.rateLimited, "tokensIssued": s.tokensIssued,
                    "maxRequestsInWindow": s.maxPerMinute,
                ]
            )
        }
        guard path.hasPrefix("/api/v2/") else { return .error(.notFound, "not found") }
        // Authentication, then the per-token rate limit.
        guard let auth = request.headers["authorization"], auth.hasPrefix("Bearer ") else {
            return Self.json(
                .unauthorized,
                ["message": "No authentication bearer token specified", "code": "bad.credentials", "status": 401]
            )
        }
        let token = String(auth.dropFirst("Bearer ".count))
        let now = ContinuousClock.now
        enum Gate {
            case ok(count: Int)
            case expired
            case limited(retryAfter: Int)
        }
        let gate: Gate = state.withLock { box in
            guard let t = box.value.tokens[token], t.expiresAt > now else {
                box.value.rejectedTokens += 1
                return .expired
            }
            box.value.apiRequests += 1
            let window = configuration.rateWindowSeconds
            box.value.requests.removeAll { now - $0 >= .seconds(window) }
            if box.value.requests.count >= configuration.requestsPerMinute {
                box.value.rateLimited += 1
                let oldest = box.value.requests.first ?? now
                return .limited(retryAfter: max(1, Int((window - (now - oldest).inSeconds).rounded(.up))))
            }
            box.value.requests.append(now)
            box.value.maxRequestsInAnyMinute = max(box.value.maxRequestsInAnyMinute, box.value.requests.count)
            return .ok(count: box.value.requests.count)
        }
        let count: Int
        switch gate {
        case .expired:
            return Self.json(
                .unauthorized,
                ["message": "Invalid login credentials.", "code": "bad.credentials", "status": 401],
                headers: [("ININ-Correlation-Id", correlation)]
            )
        case .limited(let retryAfter):
            // The real 429 body and headers.
            return Self.json(
                HTTPStatus(code: 429, reason: "Too Many Requests"),
                [
                    "message": "Rate limit exceeded the maximum. Retry the request in [\(retryAfter)] seconds",
                    "code": "too.many.requests.retry.after", "status": 429, "contextId": correlation,
                    "details": [], "errors": [],
                ],
                headers: [("Retry-After", String(retryAfter)), ("ININ-Correlation-Id", correlation)]
            )
        case .ok(let c):
            count = c
        }
        if configuration.serverErrorRate > 0
            && state.withLock({ $0.value.serverErrors.next(rate: configuration.serverErrorRate) })
        {
            return Self.json(
                .serviceUnavailable,
                ["message": "Service unavailable", "code": "service.unavailable", "status": 503],
                headers: [("ININ-Correlation-Id", correlation)]
            )
        }
        var response = api(request, path: path)
        response.headers += [
            ("inin-ratelimit-count", String(count)),
            ("inin-ratelimit-allowed", String(configuration.requestsPerMinute)),
            ("inin-ratelimit-reset", String(Int(configuration.rateWindowSeconds))),
            ("ININ-Correlation-Id", correlation),
        ]
        return response
    }

    private func token(_ request: HTTPRequest) -> HTTPResponse {
        let expected =
            "Basic " + Data("\(configuration.clientID):\(configuration.clientSecret)".utf8).base64EncodedString()
        guard request.headers["authorization"] == expected,
            String(decoding: request.body, as: UTF8.self).contains("grant_type=client_credentials")
        else {
            return Self.json(
                .unauthorized,
                ["error": "invalid_client", "description": "client credentials are invalid"]
            )
        }
        let value = UUID().uuidString.lowercased() + UUID().uuidString.lowercased()
        let lifetime = configuration.tokenLifetimeSeconds
        state.withLock {
            $0.value.tokens[value] = Token(expiresAt: .now + .seconds(lifetime))
            $0.value.tokensIssued += 1
        }
        return Self.json(.ok, ["access_token": value, "token_type": "bearer", "expires_in": lifetime])
    }

    private func api(_ request: HTTPRequest, path: String) -> HTTPResponse {
        let parts = path.split(separator: "/").map(String.init)  // ["api","v2",...]
        let now = ContinuousClock.now
        func available(_ id: String) -> JSONValue? {
            state.withLock { box in
                guard let c = box.value.conversations[id], c.availableAt <= now else { return nil }
                return c.details
            }
        }
        if let answer = notifications.handle(
            method: request.method,
            parts: Array(parts.dropFirst(2)),
            query: Self.query(request.target),
            body: request.body,
            baseURL: baseURL
        ) {
            return answer
        }
        switch (request.method, Array(parts.dropFirst(2))) {
        case ("GET", ["analytics", "conversations", "details"]):
            let ids = Self.query(request.target)["id"]?.split(separator: ",").map(String.init) ?? []
            guard !ids.isEmpty else { return Self.json(.badRequest, ["message": "id is required", "status": 400]) }
            guard ids.count <= 100 else { return Self.json(.badRequest, ["message": "too many ids", "status": 400]) }
            return Self.json(.ok, ["conversations": ids.compactMap(available).map(\.foundationObject)])
        case ("GET", let p) where p.count == 4 && p[0] == "analytics" && p[1] == "conversations" && p[3] == "details":
            guard let details = available(p[2]) else {
                return Self.json(.notFound, ["message": "Conversation not found", "code": "not.found", "status": 404])
            }
            return Self.json(.ok, details)
        case ("POST", ["analytics", "conversations", "details", "query"]):
            // As Genesys: `interval` is required (ISO-8601 `start/end`, at most 7 days);
            // `paging` {pageSize ≤ 100 (default 25), pageNumber ≥ 1}; conversations that
            // started inside the interval, oldest first.
            guard let query = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any] else {
                return Self.json(.badRequest, ["message": "invalid body", "code": "bad.request", "status": 400])
            }
            guard let interval = query["interval"] as? String, let range = Self.interval(interval) else {
                return Self.json(
                    .badRequest,
                    ["message": "interval is required (ISO-8601 start/end)", "code": "bad.request", "status": 400]
                )
            }
            guard range.upperBound.timeIntervalSince(range.lowerBound) <= 7 * 86_400 else {
                return Self.json(
                    .badRequest,
                    ["message": "interval must not exceed 7 days", "code": "bad.request", "status": 400]
                )
            }
            let paging = query["paging"] as? [String: Any]
            let pageSize = (paging?["pageSize"] as? Int) ?? 25
            let pageNumber = (paging?["pageNumber"] as? Int) ?? 1
            guard (1...100).contains(pageSize), pageNumber >= 1, pageNumber <= 10_000 else {
                return Self.json(
                    .badRequest,
                    ["message": "paging.pageSize must be 1-100, pageNumber ≥ 1", "code": "bad.request", "status": 400]
                )
            }
            let iso = ISO8601DateFormatter()
            iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let plain = ISO8601DateFormatter()
            let visible: [JSONValue] = state.withLock { box in
                box.value.conversations.values.filter { $0.availableAt <= now }.map(\.details)
            }
            // `segmentFilters` on queueId (`{"type":"or","predicates":[{"dimension":"queueId",
            // "value":…}]}`): conversations with a segment in one of the queues.
            let queueFilter = Set(
                (query["segmentFilters"] as? [[String: Any]] ?? []).flatMap { filter in
                    (filter["predicates"] as? [[String: Any]] ?? []).compactMap {
                        $0["dimension"] as? String == "queueId" ? $0["value"] as? String : nil
                    }
                }
            )
            func inQueues(_ details: JSONValue) -> Bool {
                queueFilter.isEmpty
                    || details["participants"]?.elements.contains { p in
                        p["sessions"]?.elements.contains { s in
                            s["segments"]?.elements.contains { queueFilter.contains($0["queueId"]?.stringValue ?? "") }
                                ?? false
                        } ?? false
                    } ?? false
            }
            let all: [(Date, JSONValue)] = visible.compactMap { details in
                guard let text = details["conversationStart"]?.stringValue,
                    let start = iso.date(from: text) ?? plain.date(from: text), range.contains(start), inQueues(details)
                else { return nil }
                return (start, details)
            }
            let sorted = all.sorted { $0.0 < $1.0 }.map(\.1)
            let first = min(sorted.count, (pageNumber - 1) * pageSize)
            let page = Array(sorted[first..<min(sorted.count, first + pageSize)])
            var answer: [String: Any] = ["totalHits": sorted.count]
            if !page.isEmpty { answer["conversations"] = page.map(\.foundationObject) }
            return Self.json(.ok, answer)
        case ("GET", ["users", "presences", "purecloud", "bulk"]):
            // `id` repeated (`?id=a&id=b`, as the SDKs send a "multi" collection) or comma
            // separated; at most 50 users. Unknown users are left out.
            let ids = Self.queryValues(request.target, "id").flatMap { $0.split(separator: ",").map(String.init) }
            guard !ids.isEmpty, ids.count <= 50 else {
                return Self.json(
                    .badRequest,
                    ["message": "id: 1 to 50 user ids", "code": "bad.request", "status": 400]
                )
            }
            let known = state.withLock { box in ids.compactMap { id in box.value.presences[id].map { (id, $0) } } }
            let presences: [[String: Any]] = known.map { id, p in
                [
                    "id": UUID().uuidString.lowercased(), "userId": id, "source": "PURECLOUD",
                    "presenceDefinition": [
                        "id": "pd-" + p.systemPresence.lowercased(), "systemPresence": p.systemPresence,
                    ],
                    "message": p.message, "modifiedDate": EventFields.isoString(milliseconds: p.modified),
                ]
            }
            return Self.json(.ok, presences)
        case ("POST", ["analytics", "queues", "observations", "query"]):
            // {"filter":{"type":"or","predicates":[{"dimension":"queueId","value":"…"}]},"metrics":[…]}
            let body = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any]
            let predicates = (body?["filter"] as? [String: Any])?["predicates"] as? [[String: Any]] ?? []
            let ids = predicates.compactMap { $0["dimension"] as? String == "queueId" ? $0["value"] as? String : nil }
            let observed = state.withLock { box in ids.map { ($0, box.value.observations[$0] ?? (0, 0, 0)) } }
            let results: [[String: Any]] = observed.map { id, o in
                [
                    "group": ["queueId": id],
                    "data": [
                        ["metric": "oWaiting", "stats": ["count": o.waiting]],
                        ["metric": "oInteracting", "stats": ["count": o.interacting]],
                        [
                            "metric": "oLongestWaiting",
                            "stats": ["max": o.longestWaitingMs, "count": o.waiting > 0 ? 1 : 0],
                        ],
                    ],
                ]
            }
            return Self.json(.ok, ["results": results])
        case ("GET", let p) where p.count == 3 && p[0] == "routing" && p[1] == "queues":
            guard let queue = state.withLock({ $0.value.queues[p[2]] }) else {
                return Self.json(.notFound, ["message": "Queue not found", "status": 404])
            }
            return Self.json(.ok, JSONValue.object(queue))
        case ("PUT", let p) where p.count == 3 && p[0] == "routing" && p[1] == "queues":
            guard var body = JSONValue.object(from: request.body) else {
                return Self.json(.badRequest, ["message": "invalid body", "status": 400])
            }
            // QueueRequest requires `name` (the SDK model marks it required; Genesys answers 400).
            guard let name = body["name"]?.stringValue, !name.isEmpty else {
                return Self.json(.badRequest, ["message": "name is required", "code": "bad.request", "status": 400])
            }
            guard state.withLock({ $0.value.queues[p[2]] != nil }) else {
                return Self.json(.notFound, ["message": "Queue not found", "status": 404])
            }
            body["id"] = .string(p[2])
            body["dateModified"] = .string(Self.timestamp())
            state.withLock {
                $0.value.queues[p[2]] = body
                $0.value.writes["PUT queue \(p[2])", default: 0] += 1
            }
            return Self.json(.ok, JSONValue.object(body))
        case ("GET", let p) where p.count == 4 && p[0] == "routing" && p[1] == "queues" && p[3] == "members":
            // QueueMemberEntityListing as the current SDK schema has it: entities, pageSize,
            // pageNumber, pageCount and page URIs; no `total`. pageSize ≤ 100 (default 25).
            let q = Self.query(request.target)
            let pageSize = q["pageSize"].map { Int($0) ?? -1 } ?? 25
            let pageNumber = q["pageNumber"].map { Int($0) ?? -1 } ?? 1
            guard (1...100).contains(pageSize), pageNumber >= 1 else {
                return Self.json(
                    .badRequest,
                    ["message": "pageSize must be 1-100 and pageNumber ≥ 1", "code": "bad.request", "status": 400]
                )
            }
            let ids = state.withLock { $0.value.members[p[2]] ?? [] }.sorted()
            let pageCount = max(1, (ids.count + pageSize - 1) / pageSize)
            let first = min(ids.count, (pageNumber - 1) * pageSize)
            let entities = ids[first..<min(ids.count, first + pageSize)].map { ["id": $0, "name": "Agent \($0)"] }
            let base = "/api/v2/routing/queues/\(p[2])/members?pageSize=\(pageSize)&pageNumber="
            var listing: [String: Any] = [
                "entities": entities, "pageSize": pageSize, "pageNumber": pageNumber, "pageCount": pageCount,
                "firstUri": base + "1", "lastUri": base + String(pageCount), "selfUri": base + String(pageNumber),
            ]
            if pageNumber < pageCount { listing["nextUri"] = base + String(pageNumber + 1) }
            if pageNumber > 1 { listing["previousUri"] = base + String(pageNumber - 1) }
            return Self.json(.ok, listing)
        case ("POST", let p) where p.count == 4 && p[0] == "routing" && p[1] == "queues" && p[3] == "members":
            guard let body = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [[String: Any]],
                body.count <= 100
            else { return Self.json(.badRequest, ["message": "expected up to 100 members", "status": 400]) }
            let ids = body.compactMap { $0["id"] as? String }
            let delete = Self.query(request.target)["delete"] == "true"
            state.withLock { box in
                var set = box.value.members[p[2]] ?? []
                if delete { set.subtract(ids) } else { set.formUnion(ids) }
                box.value.members[p[2]] = set
                box.value.writes[(delete ? "POST members delete " : "POST members ") + p[2], default: 0] += 1
            }
            return HTTPResponse(status: .ok)
        case ("GET", let p) where p.count == 4 && p[0] == "routing" && p[1] == "queues" && p[3] == "estimatedwaittime":
            // Set explicitly, else derived from the queue's observations (15 s per waiting
            // interaction), else 30 s.
            let seconds =
                state.withLock { box in
                    box.value.estimatedWaits[p[2]] ?? box.value.observations[p[2]].map { Double($0.waiting * 15) }
                } ?? 30
            return Self.json(
                .ok,
                // EstimatedWaitTimePredictions: intent is one of the SDK's enum values
                // (ALL, CALL, CALLBACK, CHAT, EMAIL, SOCIALEXPRESSION, VIDEOCOMM, MESSAGE).
                ["results": [["intent": "ALL", "formula": "BEST", "estimatedWaitTimeSeconds": seconds]]]
            )
        default:
            return Self.json(.notFound, ["message": "no such resource in the simulator", "status": 404])
        }
    }

    /// An ISO-8601 interval `start/end` (with or without fractional seconds).
    static func interval(_ text: String) -> Range<Date>? {
        let parts = text.split(separator: "/").map(String.init)
        guard parts.count == 2 else { return nil }
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let plain = ISO8601DateFormatter()
        guard let start = iso.date(from: parts[0]) ?? plain.date(from: parts[0]),
            let end = iso.date(from: parts[1]) ?? plain.date(from: parts[1]), start < end
        else { return nil }
        return start..<end
    }

    /// Every value of a repeated query parameter, in order.
    static func queryValues(_ target: String, _ name: String) -> [String] {
        guard let q = target.firstIndex(of: "?") else { return [] }
        return target[target.index(after: q)...].split(separator: "&").compactMap { pair in
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
            return kv.count == 2 && kv[0] == name ? kv[1] : nil
        }
    }

    static func query(_ target: String) -> [String: String] {
        guard let q = target.firstIndex(of: "?") else { return [:] }
        var out: [String: String] = [:]
        for pair in target[target.index(after: q)...].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
            if kv.count == 2 { out[kv[0]] = kv[1] }
        }
        return out
    }
}

/// Builds realistic conversation details (the shape of the analytics details endpoint).
public enum ConversationDetailsFactory {
    /// One inbound voice conversation: who took part (ids shared with its detail events, so
    /// an event rebuilt from these details has the identity the live one had) and when, in
    /// epoch milliseconds.
    public struct Shape: Sendable {
        public var conversationID: String
        public var queueID: String
        /// The answering agent's user id; nil when the caller abandoned.
        public var agentID: String?
        public var customerParticipantID = UUID().uuidString.lowercased()
        public var acdParticipantID = UUID().uuidString.lowercased()
        public var agentParticipantID = UUID().uuidString.lowercased()
        /// The customer's and the queue's session (detail events name one per conversation).
        public var sessionID = UUID().uuidString.lowercased()
        public var start: Int64
        public var queueStart: Int64
        /// When the caller left the queue: answered or abandoned (`acd.end`'s eventTime).
        public var queueEnd: Int64
        /// `conversationEnd` (`customer.end`'s eventTime).
        public var end: Int64

        public init(
            conversationID: String,
            queueID: String,
            agentID: String?,
            start: Int64,
            queueStart: Int64,
            queueEnd: Int64,
            end: Int64
        ) {
            self.conversationID = conversationID
            self.queueID = queueID
            self.agentID = agentID
            self.start = start
            self.queueStart = queueStart
            self.queueEnd = queueEnd
            self.end = end
        }

        public var abandoned: Bool { agentID == nil }
    }

    public static func details(
        conversationID: String,
        queueID: String,
        agentID: String?,
        start: Date,
        waitMilliseconds: Int,
        talkMilliseconds: Int,
        abandoned: Bool
    ) -> JSONValue {
        let t0 = Int64((start.timeIntervalSince1970 * 1000).rounded())
        let queueEnd = t0 + Int64(waitMilliseconds)
        return details(
            Shape(
                conversationID: conversationID,
                queueID: queueID,
                agentID: abandoned ? nil : agentID,
                start: t0,
                queueStart: t0,
                queueEnd: queueEnd,
                end: queueEnd + (abandoned ? 0 : Int64(talkMilliseconds))
            )
        )
    }

    /// The details Genesys's analytics API returns for `shape`: a customer, an `acd`
    /// participant whose session has `tAcd` (and `tAbandon` when abandoned) and, when
    /// answered, an agent with `tTalk` and `tHandle`.
    public static func details(_ shape: Shape) -> JSONValue {
        func time(_ ms: Int64) -> JSONValue { .string(EventFields.isoString(milliseconds: ms)) }
        func id() -> JSONValue { .string(UUID().uuidString.lowercased()) }
        func segment(_ from: Int64, _ to: Int64) -> JSONValue {
            [
                "segmentStart": time(from), "segmentEnd": time(to), "segmentType": "interact",
                "queueId": .string(shape.queueID),
            ]
        }
        func metric(_ name: String, _ milliseconds: Int64, _ at: Int64) -> JSONValue {
            ["name": .string(name), "value": .number(Double(milliseconds)), "emitDate": time(at)]
        }
        let wait = shape.queueEnd - shape.queueStart
        var acdMetrics = [metric(shape.abandoned ? "tAbandon" : "tAcd", wait, shape.queueEnd)]
        if shape.abandoned { acdMetrics.append(metric("tAcd", wait, shape.queueEnd)) }
        var participants: [JSONValue] = [
            [
                "participantId": .string(shape.customerParticipantID), "purpose": "customer",
                "sessions": [
                    [
                        "mediaType": "voice", "direction": "inbound", "sessionId": .string(shape.sessionID),
                        "segments": [segment(shape.start, shape.end)],
                    ]
                ],
            ],
            [
                "participantId": .string(shape.acdParticipantID), "purpose": "acd",
                "sessions": [
                    [
                        "mediaType": "voice", "direction": "inbound", "sessionId": .string(shape.sessionID),
                        "segments": [segment(shape.queueStart, shape.queueEnd)], "metrics": .array(acdMetrics),
                    ]
                ],
            ],
        ]
        if let agentID = shape.agentID {
            let talk = shape.end - shape.queueEnd
            participants.append([
                "participantId": .string(shape.agentParticipantID), "purpose": "agent", "userId": .string(agentID),
                "sessions": [
                    [
                        "mediaType": "voice", "direction": "inbound", "sessionId": id(),
                        "segments": [segment(shape.queueEnd, shape.end)],
                        "metrics": [metric("tTalk", talk, shape.end), metric("tHandle", talk, shape.end)],
                    ]
                ],
            ])
        }
        return [
            "conversationId": .string(shape.conversationID), "conversationStart": time(shape.start),
            "conversationEnd": time(shape.end), "originatingDirection": "inbound",
            "divisionIds": [id()], "participants": .array(participants),
        ]
    }
}

/// Injected faults at a rate, spread evenly instead of drawn at random: request `n` fails when
/// `⌊n·rate⌋` moved on, so a rate below ½ never fails two requests in a row and a client with a
/// few retries always gets through (a random draw made retry tests fail now and then).
struct FaultSpread {
    private var requests = 0

    mutating func next(rate: Double) -> Bool {
        requests += 1
        let r = min(max(rate, 0), 1)
        return (Double(requests) * r).rounded(.down) > (Double(requests - 1) * r).rounded(.down)
    }
}
