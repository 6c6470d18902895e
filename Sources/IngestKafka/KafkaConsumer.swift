import CRdKafka

/// A consumed record, copied out of librdkafka (the C message is destroyed at once).
public struct KafkaRecord: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// Milliseconds since the epoch, or -1 when unavailable.
    public var timestamp: Int64

    public init(
        topic: String,
        partition: Int32,
        offset: Int64,
        key: [UInt8]?,
        value: [UInt8],
        headers: [KafkaHeader] = [],
        timestamp: Int64 = -1
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }

    /// The first header named `name`, as UTF-8 text.
    public func header(_ name: String) -> String? {
        headers.first { $0.name == name }.map { String(decoding: $0.value, as: UTF8.self) }
    }
}

/// A simple consumer over explicitly assigned partitions (no group rebalancing). Used by
/// tools and tests to read topics from the beginning; not thread-safe (one caller at a time).
public final class KafkaConsumer {
    private let handle: OpaquePointer

    public init(configuration: KafkaClientConfiguration) throws(KafkaError) {
        var configuration = configuration
        if configuration.properties["group.id"] == nil {
            configuration.properties["group.id"] = "genesys-ingest-reader-\(UInt64.random(in: 0...UInt64.max))"
        }
        configuration.properties["enable.auto.commit"] = configuration.properties["enable.auto.commit"] ?? "false"
        configuration.properties["auto.offset.reset"] = configuration.properties["auto.offset.reset"] ?? "earliest"
        let conf = try configuration.makeConf()
        self.handle = try makeClientHandle(RD_KAFKA_CONSUMER, conf: conf)
        // Route the main queue to the consumer queue so rd_kafka_consumer_poll serves everything.
        rd_kafka_poll_set_consumer(handle)
    }

    deinit {
        rd_kafka_consumer_close(handle)
        rd_kafka_destroy(handle)
    }

    /// Assigns every partition of `topics` starting at the earliest offset.
    public func assignFromBeginning(topics: [String], timeoutMilliseconds: Int32 = 5000) throws(KafkaError) {
        let list = rd_kafka_topic_partition_list_new(16)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics {
            let count = try KafkaMetadata.partitionCount(
                handle: handle,
                topic: topic,
                timeoutMilliseconds: timeoutMilliseconds
            )
            for p in 0..<count {
                let tp = rd_kafka_topic_partition_list_add(list, topic, p)!
                tp.pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
            }
        }
        let err = rd_kafka_assign(handle, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "assign") }
    }

    /// Returns the next record, or nil when none arrived within the timeout.
    public func poll(timeoutMilliseconds: Int32) throws(KafkaError) -> KafkaRecord? {
        guard let message = rd_kafka_consumer_poll(handle, timeoutMilliseconds) else { return nil }
        defer { rd_kafka_message_destroy(message) }
        let m = message.pointee
        if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return nil }
        if m.err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(m.err, context: "consume") }
        return Self.copyRecord(message)
    }

    static func copyRecord(_ message: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaRecord {
        let m = message.pointee
        let topic = String(cString: rd_kafka_topic_name(m.rkt))
        let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
        let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
        var headers: [KafkaHeader] = []
        var hdrs: OpaquePointer?
        // The headers object belongs to the message; it must not be destroyed separately.
        if rd_kafka_message_headers(message, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            let count = rd_kafka_header_cnt(hdrs)
            for i in 0..<count {
                var name: UnsafePointer<CChar>?
                var val: UnsafeRawPointer?
                var size = 0
                if rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR, let name {
                    let bytes = val.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
                    headers.append(KafkaHeader(name: String(cString: name), value: bytes))
                }
            }
        }
        var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(message, &tsType)
        return KafkaRecord(
            topic: topic,
            partition: m.partition,
            offset: m.offset,
            key: key,
            value: value,
            headers: headers,
            timestamp: ts
        )
    }

    /// Reads `topics` from the beginning until `expected` records arrived (then a short grace
    /// period to catch extras) or until nothing new arrived for `idleMilliseconds`. Counting
    /// by consuming, because the test broker reports wrong high-water marks.
    public static func readAll(
        configuration: KafkaClientConfiguration,
        topics: [String],
        expected: Int? = nil,
        idleMilliseconds: Int32 = 3000,
        graceMilliseconds: Int32 = 700
    ) throws(KafkaError) -> [KafkaRecord] {
        let consumer = try KafkaConsumer(configuration: configuration)
        try consumer.assignFromBeginning(topics: topics)
        var records: [KafkaRecord] = []
        var idle: Int32 = 0
        let step: Int32 = 100
        while true {
            let limit = (expected.map { records.count >= $0 } ?? false) ? graceMilliseconds : idleMilliseconds
            if idle >= limit { break }
            if let record = try consumer.poll(timeoutMilliseconds: step) {
                records.append(record)
                idle = 0
            } else {
                idle += step
            }
        }
        return records
    }
}

enum KafkaMetadata {
    /// The partition count of `topic` (0 when the broker does not know it).
    static func partitionCount(
        handle: OpaquePointer,
        topic: String,
        timeoutMilliseconds: Int32
    ) throws(KafkaError)
        -> Int32
    {
        guard let rkt = rd_kafka_topic_new(handle, topic, nil) else {
            throw KafkaError(rd_kafka_last_error(), context: "topic \(topic)")
        }
        defer { rd_kafka_topic_destroy(rkt) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, rkt, &metadata, timeoutMilliseconds)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError(err, context: "metadata for \(topic)")
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        let md = metadata.pointee
        guard md.topic_cnt > 0 else { return 0 }
        let t = md.topics[0]
        if t.err != RD_KAFKA_RESP_ERR_NO_ERROR && t.err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART {
            throw KafkaError(t.err, context: "metadata for \(topic)")
        }
        return t.partition_cnt
    }
}
