import Foundation
import IngestCore

/// The notification service's REST side (`../shared/genesys/WEBSOCKET.md` §1a): channels,
/// subscriptions (replaced with `PUT`, `ignoreErrors=true` so one unpermitted topic does not
/// fail the whole request) and the topics the org offers. The WebSocket itself is read by the
/// bridge.
public struct NotificationsAPI: Sendable {
    public let client: GenesysClient

    public init(client: GenesysClient) {
        self.client = client
    }

    /// A channel: its socket URL (the id inside it is the only credential) and when it expires.
    public struct Channel: Sendable, Equatable, Codable {
        public var id: String
        public var connectUri: String
        public var expires: Date?

        public init(id: String, connectUri: String, expires: Date?) {
            self.id = id
            self.connectUri = connectUri
            self.expires = expires
        }
    }

    /// A topic's subscription outcome.
    public struct Subscription: Sendable, Equatable, Codable {
        public var id: String
        /// `Permitted` or `Rejected`.
        public var state: String?
        public var rejectionReason: String?
        public var missingPermissions: [String]?

        public var isPermitted: Bool { state == nil || state == "Permitted" }
    }

    public struct AvailableTopic: Sendable, Equatable, Codable {
        public var id: String
        /// `All`, `Websocket`, `EventBridge`, `ProcessAutomation`.
        public var transports: [String]?

        public var isOfferedOnWebSockets: Bool {
            guard let transports else { return true }
            return transports.contains("All") || transports.contains("Websocket")
        }
    }

    /// `POST /api/v2/notifications/channels`.
    public func createChannel() async throws -> Channel {
        let response = try await client.request("POST", "/api/v2/notifications/channels", body: Data("{}".utf8))
        return try decode(Channel.self, response, what: "channel")
    }

    /// `PUT /api/v2/notifications/channels/{id}/subscriptions?ignoreErrors=true`: the channel
    /// gets exactly `topics`; returns each topic's outcome.
    public func replaceSubscriptions(channelID: String, topics: [String]) async throws -> [Subscription] {
        let body = try JSONEncoder().encode(topics.map { ["id": $0] })
        let response = try await client.request(
            "PUT",
            "/api/v2/notifications/channels/\(RoutingAPI.escape(channelID))/subscriptions?ignoreErrors=true",
            body: body
        )
        struct Listing: Decodable { var entities: [Subscription]? }
        return try decode(Listing.self, response, what: "subscriptions").entities ?? []
    }

    /// `GET /api/v2/notifications/availabletopics?expand=transports`.
    public func availableTopics() async throws -> [AvailableTopic] {
        let response = try await client.request("GET", "/api/v2/notifications/availabletopics?expand=transports")
        struct Listing: Decodable { var entities: [AvailableTopic]? }
        return try decode(Listing.self, response, what: "available topics").entities ?? []
    }

    private func decode<T: Decodable>(_ type: T.Type, _ response: GenesysClient.Response, what: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { d in
            let text = try d.singleValueContainer().decode(String.self)
            // Our own parser (EventFields): ICU's crashed on malformed input.
            if let ms = EventFields.isoMilliseconds(text) { return Date(timeIntervalSince1970: Double(ms) / 1000) }
            throw DecodingError.dataCorrupted(
                .init(codingPath: d.codingPath, debugDescription: "not ISO-8601: \(text)")
            )
        }
        do { return try decoder.decode(T.self, from: response.body) } catch {
            throw GenesysAPIError.client(
                status: response.status,
                message: "\(what) answer not understood: \(error)",
                correlationID: response.correlationID
            )
        }
    }
}
