import Foundation
import IngestCore

/// The routing and queue-observation calls the overflow controller makes (FACTS §7): whole
/// queue objects (no version or ETag: PUT replaces the queue, last writer wins), members
/// added and removed in batches of at most 100, estimated wait, and live observations.
public struct RoutingAPI: Sendable {
    public let client: GenesysClient

    public init(client: GenesysClient) {
        self.client = client
    }

    /// `GET /api/v2/routing/queues/{id}`.
    public func queue(_ id: String) async throws -> [String: JSONValue] {
        let response = try await client.request("GET", "/api/v2/routing/queues/\(Self.escape(id))")
        guard let object = try? JSONValue.parse(response.body).objectValue else {
            throw GenesysAPIError.client(
                status: response.status,
                message: "queue is not a JSON object",
                correlationID: response.correlationID
            )
        }
        return object
    }

    /// `PUT /api/v2/routing/queues/{id}` with the whole queue object; returns the stored queue.
    @discardableResult
    public func putQueue(_ id: String, _ queue: [String: JSONValue]) async throws -> [String: JSONValue] {
        let response = try await client.request(
            "PUT",
            "/api/v2/routing/queues/\(Self.escape(id))",
            body: JSONValue.object(queue).jsonData
        )
        return (try? JSONValue.parse(response.body).objectValue) ?? [:]
    }

    /// Every member's user id. Pages as the SDK documents `QueueMemberEntityListing`
    /// (`pageSize`, `pageNumber`, `pageCount`, `nextUri`; it has no `total`): the last page is
    /// the one at `pageCount`, or without `nextUri`, or shorter than the page size.
    public func members(_ id: String) async throws -> Set<String> {
        let pageSize = 100
        var out = Set<String>()
        var page = 1
        while true {
            let response = try await client.request(
                "GET",
                "/api/v2/routing/queues/\(Self.escape(id))/members?pageSize=\(pageSize)&pageNumber=\(page)"
            )
            let body = try? JSONValue.parse(response.body)
            let entities = body?["entities"]?.arrayValue ?? []
            for e in entities { if let uid = e["id"]?.stringValue { out.insert(uid) } }
            if entities.count < pageSize { return out }
            if let pageCount = body?["pageCount"]?.numberValue, pageCount.isFinite, Double(page) >= pageCount {
                return out
            }
            if body?["pageCount"] == nil, body?["nextUri"]?.stringValue == nil, body?["nextUri"] != nil {
                return out  // an explicit null nextUri: no further page
            }
            // 1,000 pages of 100 is far beyond any queue Genesys allows; stop rather than loop.
            if page >= 1000 { return out }
            page += 1
        }
    }

    /// `POST …/members` (add) in batches of at most 100.
    public func addMembers(_ id: String, _ userIDs: [String]) async throws {
        for batch in Self.batches(userIDs) {
            _ = try await client.request(
                "POST",
                "/api/v2/routing/queues/\(Self.escape(id))/members",
                body: JSONValue.array(batch.map { .object(["id": .string($0)]) }).jsonData
            )
        }
    }

    /// `POST …/members?delete=true` in batches of at most 100; a member that is not there
    /// (404) counts as removed.
    public func removeMembers(_ id: String, _ userIDs: [String]) async throws {
        for batch in Self.batches(userIDs) {
            do {
                _ = try await client.request(
                    "POST",
                    "/api/v2/routing/queues/\(Self.escape(id))/members?delete=true",
                    body: JSONValue.array(batch.map { .object(["id": .string($0)]) }).jsonData
                )
            } catch GenesysAPIError.notFound {
                continue
            }
        }
    }

    /// The longest estimated wait over the queue's intents, in seconds.
    public func estimatedWaitSeconds(_ id: String) async throws -> Double? {
        let response = try await client.request("GET", "/api/v2/routing/queues/\(Self.escape(id))/estimatedwaittime")
        let results = (try? JSONValue.parse(response.body))?["results"]?.arrayValue ?? []
        return results.compactMap { $0["estimatedWaitTimeSeconds"]?.numberValue }.max()
    }

    /// oWaiting and oLongestWaiting (seconds) from the observations query.
    public func observations(_ id: String) async throws -> (waiting: Double?, longestWaitingSeconds: Double?) {
        let query: JSONValue = .object([
            "filter": .object([
                "type": .string("or"),
                "predicates": .array([.object(["dimension": .string("queueId"), "value": .string(id)])]),
            ]),
            "metrics": .array([.string("oWaiting"), .string("oLongestWaiting")]),
        ])
        let response = try await client.request(
            "POST",
            "/api/v2/analytics/queues/observations/query",
            body: query.jsonData
        )
        var waiting: Double?
        var longest: Double?
        for result in (try? JSONValue.parse(response.body))?["results"]?.arrayValue ?? [] {
            for metric in result["data"]?.arrayValue ?? [] {
                switch metric["metric"]?.stringValue {
                case "oWaiting": waiting = (waiting ?? 0) + (metric["stats"]?["count"]?.numberValue ?? 0)
                case "oLongestWaiting":
                    let ms = metric["stats"]?["max"]?.numberValue ?? 0
                    longest = max(longest ?? 0, ms / 1000)
                default: break
                }
            }
        }
        return (waiting, longest)
    }

    /// The observations query for up to 100 queues (Genesys's predicate limit): each result's
    /// queue id, `group` and `data` (metric objects) as Genesys sent them.
    public func observationResults(
        queueIDs: [String]
    ) async throws -> [(
        queueID: String, group: [String: JSONValue], data: [JSONValue]
    )] {
        let query: JSONValue = .object([
            "filter": .object([
                "type": .string("or"),
                "predicates": .array(
                    queueIDs.map { .object(["dimension": .string("queueId"), "value": .string($0)]) }
                ),
            ]),
            "metrics": .array(["oWaiting", "oInteracting", "oOnQueueUsers", "oLongestWaiting"].map { .string($0) }),
        ])
        let response = try await client.request(
            "POST",
            "/api/v2/analytics/queues/observations/query",
            body: query.jsonData
        )
        return ((try? JSONValue.parse(response.body))?["results"]?.arrayValue ?? []).compactMap { result in
            guard let group = result["group"]?.objectValue, let id = group["queueId"]?.stringValue else { return nil }
            return (id, group, result["data"]?.arrayValue ?? [])
        }
    }

    /// `ids` in batches of at most 100.
    public static func batches(_ ids: [String]) -> [[String]] {
        stride(from: 0, to: ids.count, by: 100).map { Array(ids[$0..<min(ids.count, $0 + 100)]) }
    }

    static func escape(_ id: String) -> String {
        id.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/")))
            ?? id
    }
}

extension GenesysClientConfiguration {
    public static let variableNames = [
        "INGEST_GENESYS_REGION", "INGEST_GENESYS_API_URL", "INGEST_GENESYS_LOGIN_URL", "INGEST_GENESYS_CLIENT_ID",
        "INGEST_GENESYS_CLIENT_SECRET", "INGEST_GENESYS_CLIENT_SECRET_FILE", "INGEST_GENESYS_RATE_LIMIT",
        "INGEST_GENESYS_RATE_PERIOD_SECONDS",
    ]

    /// The Genesys client from `INGEST_GENESYS_*`: credentials, region or explicit URLs, and the
    /// rate limit shared by every instance using the client. `purpose` names who needs it.
    public static func from(
        environment env: EnvironmentReader,
        purpose: String
    ) throws(ConfigurationError) -> (GenesysClientConfiguration, rateLimit: Int, ratePeriodSeconds: Int) {
        guard let clientID = env.string("INGEST_GENESYS_CLIENT_ID"),
            let secret = try env.secret("INGEST_GENESYS_CLIENT_SECRET")
        else {
            throw ConfigurationError(
                "\(purpose) needs INGEST_GENESYS_CLIENT_ID and INGEST_GENESYS_CLIENT_SECRET (or _FILE)"
            )
        }
        let secretText = String(decoding: secret, as: UTF8.self)
        var client: GenesysClientConfiguration
        if let api = env.string("INGEST_GENESYS_API_URL") {
            client = GenesysClientConfiguration(
                clientID: clientID,
                clientSecret: secretText,
                apiBaseURL: api,
                loginBaseURL: env.string("INGEST_GENESYS_LOGIN_URL", default: api)
            )
        } else {
            let region = env.string("INGEST_GENESYS_REGION", default: "us-east-1")
            guard let c = GenesysClientConfiguration(clientID: clientID, clientSecret: secretText, region: region)
            else {
                throw ConfigurationError("INGEST_GENESYS_REGION=\(region) is not a Genesys Cloud region")
            }
            client = c
        }
        let limit = try env.int("INGEST_GENESYS_RATE_LIMIT", default: 300, range: 1...100_000)
        let period = try env.int("INGEST_GENESYS_RATE_PERIOD_SECONDS", default: 60, range: 1...3600)
        return (client, limit, period)
    }
}
