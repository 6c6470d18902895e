import IngestCore

/// Which topics go on which channel: `{id}` templates expanded with the configured queue and
/// user ids, then spread over channels of at most 1,000 topics (Genesys's per-channel limit);
/// more than 20 channels (the per user + app limit) is refused with the numbers. Pure.
public struct ChannelPlan: Sendable, Equatable {
    public static let maxTopicsPerChannel = 1000
    public static let maxChannels = 20

    /// Each channel's topics, in configuration order.
    public var channels: [[String]]
    /// The configured topics before expansion.
    public var templates: [String]

    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    public init(
        templates: [String],
        queueIDs: [String],
        userIDs: [String],
        maxTopicsPerChannel: Int = ChannelPlan.maxTopicsPerChannel
    ) throws(Failure) {
        var topics: [String] = []
        var seen = Set<String>()
        for template in templates {
            let expanded: [String]
            if template.contains("{id}") {
                let ids: [String]
                if template.hasPrefix("v2.routing.queues.") || template.hasPrefix("v2.analytics.queues.") {
                    ids = queueIDs
                } else if template.hasPrefix("v2.users.") {
                    ids = userIDs
                } else {
                    throw Failure(
                        description:
                            "topic \(template): only queue (v2.routing.queues.{id}…, v2.analytics.queues.{id}…) and user (v2.users.{id}…) templates can be expanded; list the ids in the topic"
                    )
                }
                guard !ids.isEmpty else {
                    let variable =
                        template.hasPrefix("v2.users.") ? "INGEST_BRIDGE_USER_IDS" : "INGEST_BRIDGE_QUEUE_IDS"
                    throw Failure(description: "topic \(template) needs ids to expand: set \(variable)")
                }
                expanded = ids.map { template.replacingOccurrences(of: "{id}", with: $0) }
            } else {
                expanded = [template]
            }
            for t in expanded where seen.insert(t).inserted { topics.append(t) }
        }
        guard !topics.isEmpty else { throw Failure(description: "no topics configured: set INGEST_BRIDGE_TOPICS") }
        var channels: [[String]] = []
        var i = 0
        while i < topics.count {
            channels.append(Array(topics[i..<min(topics.count, i + maxTopicsPerChannel)]))
            i += maxTopicsPerChannel
        }
        guard channels.count <= Self.maxChannels else {
            throw Failure(
                description:
                    "\(topics.count) topics need \(channels.count) channels of \(maxTopicsPerChannel), more than the \(Self.maxChannels) Genesys allows per OAuth client: subscribe to fewer ids or run a second bridge with another OAuth client"
            )
        }
        self.channels = channels
        self.templates = templates
    }

    /// The configured topics that `available` (the org's `availabletopics`, whose ids are
    /// templates with `{id}`) does not offer on WebSockets, with why.
    public func notOfferedOnWebSockets(
        _ available: [(id: String, onWebSockets: Bool)]
    ) -> [(topic: String, why: String)] {
        func matches(_ pattern: String, _ topic: String) -> Bool {
            let p = pattern.split(separator: ".", omittingEmptySubsequences: false)
            let t = topic.split(separator: ".", omittingEmptySubsequences: false)
            guard p.count == t.count else { return false }
            return zip(p, t).allSatisfy { $0 == $1 || $0 == "{id}" || $1 == "{id}" }
        }
        return templates.compactMap { topic in
            let found = available.filter { matches($0.id, topic) }
            if found.isEmpty { return (topic, "the org does not list it in availabletopics") }
            if !found.contains(where: \.onWebSockets) { return (topic, "the org offers it only on other transports") }
            return nil
        }
    }
}
