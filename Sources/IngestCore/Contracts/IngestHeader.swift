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

/// Header names on dead-letter records (the original headers are kept too).
public enum DeadLetterHeader {
    public static let originTopic = "dlq-origin-topic"
    public static let originPartition = "dlq-origin-partition"
    public static let originOffset = "dlq-origin-offset"
    public static let originTimestamp = "dlq-origin-timestamp"
    public static let consumerGroup = "dlq-consumer-group"
    public static let handler = "dlq-handler"
    public static let attempts = "dlq-attempts"
    public static let errorClass = "dlq-error-class"
    public static let errorMessage = "dlq-error-message"
    public static let firstFailureAt = "dlq-first-failure-at"
    public static let lastFailureAt = "dlq-last-failure-at"
    /// Set by `ingestctl dlq replay` on records it re-publishes to the origin topic.
    public static let replayedFrom = "dlq-replayed-from"

    public static let all: Set<String> = [
        originTopic, originPartition, originOffset, originTimestamp, consumerGroup, handler, attempts, errorClass,
        errorMessage, firstFailureAt, lastFailureAt,
    ]
}
