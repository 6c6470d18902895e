/// Kafka header names that the gateway, the workers and `ingestctl` share.
public enum IngestHeader {
    public static let contentType = "content-type"
    public static let receivedAt = "ingest-received-at"
    public static let source = "ingest-source"
    public static let requestID = "ingest-request-id"
    public static let keyID = "ingest-key-id"
    public static let topicName = "genesys-topic-name"
    /// The Genesys envelope id, copied by the gateway when the event has one.
    public static let eventID = "genesys-event-id"
    /// The id of a record the product itself produced (enriched records, queue summaries,
    /// audit records): deterministic for one logical record, so a re-publication after a crash
    /// carries the same id and is recognised downstream as the same event.
    public static let producedEventID = "ingest-event-id"
}
