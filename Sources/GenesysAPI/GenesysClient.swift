import Foundation
import IngestCore
import IngestHTTPClient
import Logging

/// How to reach and authenticate against Genesys Cloud.
public struct GenesysClientConfiguration: Sendable {
    public var clientID: String
    public var clientSecret: String
    /// e.g. `https://api.mypurecloud.com`, or a simulator's `http://127.0.0.1:PORT`.
    public var apiBaseURL: String
    /// e.g. `https://login.mypurecloud.com` (the simulator serves both).
    public var loginBaseURL: String
    public var requestTimeoutSeconds: Double = 10
    /// Give up on a 429 whose `Retry-After` is longer than this (as the official SDKs do).
    public var maxRetryAfterSeconds: Double = 180
    /// `Retry-After` assumed when a 429 carries none.
    public var defaultRetryAfterSeconds: Double = 3
    /// Back-off before each retry of a 502/503/504 or connection error (the SDKs: 3, 9, 27 s).
    public var serverErrorBackoffSeconds: [Double] = [3, 9, 27]

    public init(clientID: String, clientSecret: String, apiBaseURL: String, loginBaseURL: String) {
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.apiBaseURL = apiBaseURL
        self.loginBaseURL = loginBaseURL
    }

    /// For a region name from the Genesys host table.
    public init?(clientID: String, clientSecret: String, region: String) {
        guard let urls = GenesysRegion.baseURLs(region: region) else { return nil }
        self.init(clientID: clientID, clientSecret: clientSecret, apiBaseURL: urls.api, loginBaseURL: urls.login)
    }
}

/// A Genesys API failure, with the correlation id Genesys support asks for.
public enum GenesysAPIError: Error, Sendable, CustomStringConvertible {
    /// Credentials rejected (token endpoint, or 401/403 after one forced token refresh).
    case authentication(status: Int, message: String, correlationID: String?)
    /// A 429 asked us to wait longer than the configured maximum.
    case rateLimited(retryAfterSeconds: Double, correlationID: String?)
    /// 404: the resource does not exist (yet).
    case notFound(path: String, correlationID: String?)
    /// Another 4xx: the request is wrong; retrying will not help.
    case client(status: Int, message: String, correlationID: String?)
    /// 5xx or connection failures after every retry.
    case unavailable(message: String, correlationID: String?)

    public var description: String {
        switch self {
        case .authentication(let status, let message, let id):
            "Genesys authentication failed (\(status)): \(message)\(Self.suffix(id))"
        case .rateLimited(let seconds, let id):
            "Genesys rate limit: asked to wait \(Int(seconds)) s, more than allowed\(Self.suffix(id))"
        case .notFound(let path, let id): "Genesys: \(path) not found\(Self.suffix(id))"
        case .client(let status, let message, let id):
            "Genesys rejected the request (\(status)): \(message)\(Self.suffix(id))"
        case .unavailable(let message, let id): "Genesys unavailable: \(message)\(Self.suffix(id))"
        }
    }

    private static func suffix(_ id: String?) -> String { id.map { " [ININ-Correlation-Id \($0)]" } ?? "" }
}

/// An OAuth client-credentials token cache: one refresh in flight however many callers wait,
/// refreshed before expiry (lifetimes run from 5 minutes to 48 hours: `expires_in` decides).
actor OAuthTokenCache {
    private let configuration: GenesysClientConfiguration
    private let http: HTTPClient
    private let logger: Logger
    private var token: (value: String, expiresAt: ContinuousClock.Instant)?
    private var refreshing: Task<String, Error>?
    private(set) var refreshCount = 0

    init(configuration: GenesysClientConfiguration, http: HTTPClient, logger: Logger) {
        self.configuration = configuration
        self.http = http
        self.logger = logger
    }

    /// A valid token; refreshes when none is cached or it expires within its margin.
    func current() async throws -> String {
        if let token, token.expiresAt > .now { return token.value }
        if let refreshing { return try await refreshing.value }
        let task = Task { try await self.fetch() }
        refreshing = task
        defer { refreshing = nil }
        return try await task.value
    }

    /// Drops `rejected` (after a 401) so the next `current()` fetches a new token.
    func invalidate(_ rejected: String) {
        if token?.value == rejected { token = nil }
    }

    private func fetch() async throws -> String {
        let basic = Data("\(configuration.clientID):\(configuration.clientSecret)".utf8).base64EncodedString()
        let request = HTTPClientRequest(
            method: "POST",
            url: configuration.loginBaseURL + "/oauth/token",
            headers: [("Authorization", "Basic \(basic)"), ("Content-Type", "application/x-www-form-urlencoded")],
            body: Array("grant_type=client_credentials".utf8),
            timeoutMilliseconds: Int(configuration.requestTimeoutSeconds * 1000)
        )
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request)
        } catch let error as HTTPClientError {
            throw GenesysAPIError.unavailable(message: "token request failed: \(error.message)", correlationID: nil)
        }
        let data = Data(response.body)
        let correlation = response.header("ININ-Correlation-Id")
        guard response.status == 200 else {
            if response.status >= 500 {
                throw GenesysAPIError.unavailable(
                    message: "token endpoint answered \(response.status)",
                    correlationID: correlation
                )
            }
            throw GenesysAPIError.authentication(
                status: response.status,
                message: "client credentials rejected",
                correlationID: correlation
            )
        }
        guard let object = try? JSONValue.parse(data),
            let value = object["access_token"]?.stringValue,
            let expiresIn = object["expires_in"]?.numberValue,
            // From the wire: a lifetime Genesys could issue (5 min – 48 h; tests use seconds).
            expiresIn.isFinite, expiresIn >= 1, expiresIn <= 30 * 86_400
        else {
            throw GenesysAPIError.authentication(
                status: 200,
                message: "malformed token response",
                correlationID: correlation
            )
        }
        // Refresh a little early: 10 % of the lifetime, at most 60 s.
        let margin = min(60, expiresIn * 0.1)
        token = (value, .now + .seconds(expiresIn - margin))
        refreshCount += 1
        logger.debug("Genesys token refreshed", metadata: ["genesys.token.expiresIn": "\(Int(expiresIn))"])
        return value
    }
}

/// Calls the Genesys Cloud platform API with the behaviour the official SDKs have: a cached
/// client-credentials token (one forced refresh and retry on a 401), a rate budget shared with
/// other instances, 429s waited out per `Retry-After` without spending a retry attempt (giving
/// up past the maximum), and back-off retries of 502/503/504 and connection errors.
public final class GenesysClient: Sendable {
    public let configuration: GenesysClientConfiguration
    private let http: HTTPClient
    private let tokens: OAuthTokenCache
    private let budget: any RateBudget
    private let logger: Logger

    /// - Parameter http: the process's outbound client (``HTTPClient/shared`` unless a test
    ///   gives its own).
    public init(
        configuration: GenesysClientConfiguration,
        budget: any RateBudget,
        logger: Logger,
        http: HTTPClient = .shared
    ) {
        self.configuration = configuration
        self.http = http
        self.tokens = OAuthTokenCache(configuration: configuration, http: http, logger: logger)
        self.budget = budget
        self.logger = logger
    }

    /// How many tokens were fetched (for tests and metrics).
    public var tokenRefreshCount: Int { get async { await tokens.refreshCount } }

    /// A response body and its status.
    public struct Response: Sendable {
        public var status: Int
        public var body: Data
        public var correlationID: String?
    }

    /// `GET` (or another method) on an API path such as `/api/v2/analytics/conversations/details?id=a,b`.
    public func request(_ method: String, _ path: String, body: Data? = nil) async throws -> Response {
        let url = configuration.apiBaseURL + path
        var serverRetries = 0
        var forcedRefresh = false
        while true {
            try await budget.acquire()
            let token = try await tokens.current()
            var headers: [(name: String, value: String)] = [
                ("Authorization", "Bearer \(token)"), ("Accept", "application/json"),
            ]
            if body != nil { headers.append(("Content-Type", "application/json")) }
            let request = HTTPClientRequest(
                method: method,
                url: url,
                headers: headers,
                body: body.map { Array($0) },
                timeoutMilliseconds: Int(configuration.requestTimeoutSeconds * 1000)
            )
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request)
            } catch let error as HTTPClientError {
                if error.kind == .invalidRequest {
                    throw GenesysAPIError.client(status: 0, message: error.message, correlationID: nil)
                }
                if let wait = nextBackoff(&serverRetries) {
                    logger.notice(
                        "Genesys request failed; retrying",
                        metadata: ["genesys.path": "\(path)", "error": "\(error.message)", "retry.in": "\(wait)"]
                    )
                    try await Task.sleep(for: .seconds(wait))
                    continue
                }
                throw GenesysAPIError.unavailable(message: error.message, correlationID: nil)
            }
            let data = Data(response.body)
            budget.observe(
                count: ResponseHeaderNumbers.count(response.header("inin-ratelimit-count")),
                allowed: ResponseHeaderNumbers.count(response.header("inin-ratelimit-allowed")),
                resetSeconds: ResponseHeaderNumbers.retryAfterSeconds(response.header("inin-ratelimit-reset"))
            )
            let correlation = response.header("ININ-Correlation-Id")
            let status = response.status
            switch status {
            case 200..<300:
                return Response(status: status, body: data, correlationID: correlation)
            case 401 where !forcedRefresh:
                forcedRefresh = true
                await tokens.invalidate(token)
                continue
            case 401, 403:
                logger.warning(
                    "Genesys rejected our credentials",
                    metadata: ["genesys.path": "\(path)", "genesys.correlationId": "\(correlation ?? "-")"]
                )
                throw GenesysAPIError.authentication(
                    status: status,
                    message: Self.message(data),
                    correlationID: correlation
                )
            case 429:
                let retryAfter =
                    ResponseHeaderNumbers.retryAfterSeconds(response.header("Retry-After"))
                    ?? configuration.defaultRetryAfterSeconds
                if retryAfter > configuration.maxRetryAfterSeconds {
                    throw GenesysAPIError.rateLimited(retryAfterSeconds: retryAfter, correlationID: correlation)
                }
                logger.notice(
                    "Genesys rate limit hit; waiting",
                    metadata: ["genesys.retryAfter": "\(retryAfter)", "genesys.correlationId": "\(correlation ?? "-")"]
                )
                budget.pause(seconds: retryAfter)
                try await Task.sleep(for: .seconds(retryAfter))
            case 404:
                throw GenesysAPIError.notFound(path: path, correlationID: correlation)
            case 502, 503, 504:
                if let wait = nextBackoff(&serverRetries) {
                    logger.notice(
                        "Genesys server error; retrying",
                        metadata: [
                            "genesys.status": "\(status)", "genesys.correlationId": "\(correlation ?? "-")",
                            "retry.in": "\(wait)",
                        ]
                    )
                    try await Task.sleep(for: .seconds(wait))
                    continue
                }
                throw GenesysAPIError.unavailable(message: "status \(status)", correlationID: correlation)
            default:
                logger.warning(
                    "Genesys request rejected",
                    metadata: [
                        "genesys.status": "\(status)", "genesys.path": "\(path)",
                        "genesys.correlationId": "\(correlation ?? "-")",
                    ]
                )
                if status >= 500 {
                    throw GenesysAPIError.unavailable(message: "status \(status)", correlationID: correlation)
                }
                throw GenesysAPIError.client(
                    status: status,
                    message: Self.message(data),
                    correlationID: correlation
                )
            }
        }
    }

    /// The back-off before the next retry of a 5xx or connection error, nil when retries are spent.
    private func nextBackoff(_ retries: inout Int) -> Double? {
        guard retries < configuration.serverErrorBackoffSeconds.count else { return nil }
        defer { retries += 1 }
        return configuration.serverErrorBackoffSeconds[retries]
    }

    private static func message(_ data: Data) -> String {
        if let message = (try? JSONValue.parse(data))?["message"]?.stringValue { return message }
        return String(decoding: data.prefix(200), as: UTF8.self)
    }

    // MARK: - Conversation details

    /// Details of several conversations in one call (`GET …/details?id=a,b,c`, ≤ 100 ids),
    /// each a JSON object as Genesys sent it. Conversations Genesys does not have yet are simply
    /// absent from the result.
    public func conversationDetails(ids: [String]) async throws -> [JSONValue] {
        precondition(ids.count <= 100, "at most 100 ids per multi-get")
        let list = ids.map { $0.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? $0 }.joined(
            separator: ","
        )
        let response = try await request("GET", "/api/v2/analytics/conversations/details?id=\(list)")
        let object = try JSONValue.parse(response.body)
        guard object.objectValue != nil else {
            throw GenesysAPIError.client(
                status: response.status,
                message: "unexpected details body",
                correlationID: response.correlationID
            )
        }
        return object["conversations"]?.elements.filter { $0.objectValue != nil } ?? []
    }

    /// Details of the conversations that started in `[from, to)` (epoch milliseconds), through
    /// `POST /api/v2/analytics/conversations/details/query`, every page of it (100 a page),
    /// in intervals of at most 7 days (Genesys's limit). With `queueIDs`, only conversations
    /// with a segment in one of them (a `segmentFilters` on `queueId`, ≤ 100 per query).
    /// Pages of an interval still receiving data can shift while they are read (Genesys says
    /// so): a conversation seen twice is returned once.
    public func conversationDetailsQuery(
        from: Int64,
        to: Int64,
        queueIDs: [String] = [],
        pageSize: Int = 100
    ) async throws -> [JSONValue] {
        let week: Int64 = 7 * 86_400_000
        let queueBatches: [[String]] =
            queueIDs.isEmpty
            ? [[]]
            : stride(from: 0, to: queueIDs.count, by: 100).map {
                Array(queueIDs[$0..<min(queueIDs.count, $0 + 100)])
            }
        var seen: Set<String> = []
        var out: [JSONValue] = []
        var start = from
        while start < to {
            let end = min(to, start + week)
            for queues in queueBatches {
                var page = 1
                while true {
                    var query: [String: JSONValue] = [
                        "interval": .string(
                            EventFields.isoString(milliseconds: start) + "/" + EventFields.isoString(milliseconds: end)
                        ),
                        "order": "asc", "orderBy": "conversationStart",
                        "paging": ["pageSize": .number(Double(pageSize)), "pageNumber": .number(Double(page))],
                    ]
                    if !queues.isEmpty {
                        query["segmentFilters"] = [
                            [
                                "type": "or",
                                "predicates": .array(
                                    queues.map { ["type": "dimension", "dimension": "queueId", "value": .string($0)] }
                                ),
                            ]
                        ]
                    }
                    let response = try await request(
                        "POST",
                        "/api/v2/analytics/conversations/details/query",
                        body: JSONValue.object(query).jsonData
                    )
                    let conversations = (try? JSONValue.parse(response.body))?["conversations"]?.elements ?? []
                    for c in conversations {
                        guard let id = c["conversationId"]?.stringValue, seen.insert(id).inserted else { continue }
                        out.append(c)
                    }
                    // Genesys answers a page past the end without `conversations`.
                    if conversations.count < pageSize || page >= 10_000 { break }
                    page += 1
                }
            }
            start = end
        }
        return out
    }

    // MARK: - Presence

    /// The Genesys Cloud presence of up to 50 users
    /// (`GET /api/v2/users/presences/purecloud/bulk?id=…&id=…`): each a `UcUserPresence`
    /// object (`userId`, `source`, `presenceDefinition {id, systemPresence}`, `message`,
    /// `modifiedDate`) as Genesys sent it. Users Genesys does not know are absent.
    public func userPresences(ids: [String]) async throws -> [JSONValue] {
        precondition(ids.count <= 50, "at most 50 users per bulk presence read")
        guard !ids.isEmpty else { return [] }
        let query = ids.map {
            "id=" + ($0.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(["&", "="])) ?? $0)
        }.joined(separator: "&")
        let response = try await request("GET", "/api/v2/users/presences/purecloud/bulk?\(query)")
        guard let list = (try? JSONValue.parse(response.body))?.arrayValue else {
            throw GenesysAPIError.client(
                status: response.status,
                message: "unexpected bulk presence body",
                correlationID: response.correlationID
            )
        }
        return list.filter { $0.objectValue != nil }
    }

    /// Details of one conversation (`GET /api/v2/analytics/conversations/{id}/details`), a JSON
    /// object as Genesys sent it.
    public func conversationDetails(id: String) async throws -> JSONValue {
        let response = try await request("GET", "/api/v2/analytics/conversations/\(id)/details")
        let object = try JSONValue.parse(response.body)
        guard object.objectValue != nil else {
            throw GenesysAPIError.client(
                status: response.status,
                message: "unexpected details body",
                correlationID: response.correlationID
            )
        }
        return object
    }
}
