import Foundation
import IngestCore
import IngestKafka

extension DeadLetterQuery {
    /// Whether `r` (a dead letter) matches every filter set.
    public func matches(_ r: KafkaRecord) -> Bool {
        if let errorClass, r.header(DeadLetterHeader.errorClass) != errorClass { return false }
        if let handler, r.header(DeadLetterHeader.handler) != handler { return false }
        if let errorText,
            !(r.header(DeadLetterHeader.errorMessage) ?? "").localizedCaseInsensitiveContains(errorText)
        {
            return false
        }
        let failedAt = Int64(r.header(DeadLetterHeader.lastFailureAt) ?? "") ?? r.timestamp
        if let since, failedAt < since { return false }
        if let until, failedAt >= until { return false }
        if let header, r.header(header.name) != header.value { return false }
        if conversationID != nil || queueID != nil {
            let derived = try? DedupKey.derive(from: r.value, digest: { _ in "" })
            let key = r.key.map { String(decoding: $0, as: UTF8.self) }
            if let conversationID, derived?.conversationID != conversationID && key != conversationID { return false }
            if let queueID {
                let info = try? EnvelopeInspector().inspect(r.value)
                let bodyQueue =
                    Self.value(at: ["detail", "eventBody", "queueId"], in: r.value)
                    ?? Self.value(at: ["eventBody", "queueId"], in: r.value)
                if !(info?.family == .queue && info?.key == queueID) && bodyQueue != queueID { return false }
            }
        }
        if let jsonPath, Self.value(at: jsonPath.path, in: r.value) != jsonPath.value { return false }
        return true
    }
}

extension RecordPosition {
    public init(_ r: KafkaRecord) { self.init(topic: r.topic, partition: r.partition, offset: r.offset) }
}

/// Where dead letters are read from: the broker in production, a list in handler tests.
public protocol DeadLetterSource: Sendable {
    /// Calls `visit` with the records of `topics` (topics that do not exist are skipped), one
    /// at a time, until `visit` returns false, `limit` records were read, or nothing more
    /// arrives. Returns how many were read and whether the limit cut the scan short.
    func scan(topics: [String], limit: Int, visit: (KafkaRecord) -> Bool) throws -> (read: Int, truncated: Bool)
}

/// Reads dead-letter topics from the broker, from their beginning, one record in memory at a
/// time (a topic of millions of dead letters is streamed, never loaded).
public struct KafkaDeadLetterSource: DeadLetterSource {
    let kafka: KafkaClientConfiguration
    /// No record for this long = the end (the test broker's high-water marks cannot be trusted).
    var idleMilliseconds: Int32 = 800

    public init(kafka: KafkaClientConfiguration) { self.kafka = kafka }

    public func scan(topics: [String], limit: Int, visit: (KafkaRecord) -> Bool) throws -> (read: Int, truncated: Bool)
    {
        let admin = try KafkaAdmin(configuration: kafka)
        let existing = try topics.filter { try admin.partitionCount(topic: $0) > 0 }
        guard !existing.isEmpty else { return (0, false) }
        let consumer = try KafkaConsumer(configuration: kafka)
        try consumer.assignFromBeginning(topics: existing)
        var read = 0
        var idle: Int32 = 0
        while idle < idleMilliseconds {
            guard read < limit else { return (read, true) }
            guard let r = try consumer.poll(timeoutMilliseconds: 100) else {
                idle += 100
                continue
            }
            idle = 0
            read += 1
            if !visit(r) { break }
        }
        return (read, false)
    }
}
