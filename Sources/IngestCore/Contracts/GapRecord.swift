/// A period in which a channel was not connected and subscribed: what was published on its
/// topics then is lost unless reconciled (Genesys does not queue or replay notifications).
/// Published as JSON on the gaps topic by the bridge, read by the reconcile handler: the
/// contract between them lives here.
public struct GapRecord: Codable, Sendable, Equatable {
    /// The channel's topics (the bridge's configuration, not Genesys's channel id).
    public var topics: [String]
    /// Epoch milliseconds: the last moment the channel was known to be receiving.
    public var from: Int64
    /// Epoch milliseconds: the moment it was subscribed and connected again.
    public var to: Int64
    /// Why: `startup`, `heartbeat-timeout`, `socket-closing`, `closed`, `connection-lost`, `error`.
    public var reason: String
    /// The configured channel this gap belongs to (index in the channel plan).
    public var channel: Int
    /// A human-readable detail (the error), without credentials.
    public var detail: String?

    public init(topics: [String], from: Int64, to: Int64, reason: String, channel: Int, detail: String? = nil) {
        self.topics = topics
        self.from = from
        self.to = to
        self.reason = reason
        self.channel = channel
        self.detail = detail
    }

    /// The deterministic id of this gap (a re-publication after a crash is the same gap).
    public var eventID: String { "gap:\(channel):\(from)" }
}

extension IngestHeader {
    /// On records the reconcile handler published for a gap: the gap's event id.
    public static let reconciledGap = "ingest-reconciled-gap"
}
