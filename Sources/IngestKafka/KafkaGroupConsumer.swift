import CRdKafka

/// A topic-partition and the next offset to consume from it.
public struct PartitionOffset: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    /// The offset of the next record to read (last processed + 1).
    public var offset: Int64

    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// A consumer-group member for at-least-once processing: offsets are committed only after
/// the application stores them (`enable.auto.offset.store=false`), and stored offsets are
/// committed automatically in the background, on rebalance and on close.
///
/// Not thread-safe: call it from one thread at a time (the worker's poll thread).
public final class KafkaGroupConsumer: @unchecked Sendable {
    // @unchecked: used from one thread at a time (documented); librdkafka handles are thread-safe.
    private let handle: OpaquePointer
    private let queue: OpaquePointer
    private var closed = false

    /// Settings for at-least-once consumption.
    public static let atLeastOnceDefaults: [String: String] = [
        "enable.auto.commit": "true",
        "enable.auto.offset.store": "false",
        "auto.commit.interval.ms": "1000",
        "auto.offset.reset": "earliest",
        "enable.partition.eof": "false",
    ]

    /// Subscribes `groupID` to `topics`.
    public init(configuration: KafkaClientConfiguration, groupID: String, topics: [String]) throws(KafkaError) {
        var configuration = configuration
        for (k, v) in Self.atLeastOnceDefaults where configuration.properties[k] == nil {
            configuration.properties[k] = v
        }
        configuration.properties["group.id"] = groupID
        let conf = try configuration.makeConf()
        let handle = try makeClientHandle(RD_KAFKA_CONSUMER, conf: conf)
        // Serve rebalances, errors and messages from the consumer queue.
        rd_kafka_poll_set_consumer(handle)
        self.handle = handle
        // A new reference we must rd_kafka_queue_destroy.
        self.queue = rd_kafka_queue_get_consumer(handle)
        let list = rd_kafka_topic_partition_list_new(Int32(topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for t in topics { rd_kafka_topic_partition_list_add(list, t, -1) }
        let err = rd_kafka_subscribe(handle, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            rd_kafka_queue_destroy(queue)
            rd_kafka_destroy(handle)
            throw KafkaError(err, context: "subscribe")
        }
    }

    deinit { close() }

    /// Leaves the group, committing stored offsets, and destroys the client.
    public func close() {
        guard !closed else { return }
        closed = true
        rd_kafka_queue_destroy(queue)
        rd_kafka_consumer_close(handle)
        rd_kafka_destroy(handle)
    }

    /// Up to `maxRecords` records, waiting at most `timeoutMilliseconds` for the first.
    /// Records are copied out and the C messages destroyed at once. Consumer errors that are
    /// not about a record (e.g. a transient broker error) are returned in `errors`.
    public func poll(maxRecords: Int, timeoutMilliseconds: Int32) -> (records: [KafkaRecord], errors: [KafkaError]) {
        var messages = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: maxRecords)
        let n = messages.withUnsafeMutableBufferPointer {
            rd_kafka_consume_batch_queue(queue, Int32(timeoutMilliseconds), $0.baseAddress, maxRecords)
        }
        var records: [KafkaRecord] = []
        var errors: [KafkaError] = []
        guard n > 0 else { return ([], []) }
        records.reserveCapacity(n)
        for i in 0..<n {
            guard let message = messages[i] else { continue }
            // We own every returned message: copy, then destroy.
            if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                records.append(KafkaConsumer.copyRecord(message))
            } else if message.pointee.err != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                var error = KafkaError(message.pointee.err)
                if let text = rd_kafka_message_errstr(message) { error.message = String(cString: text) }
                errors.append(error)
            }
            rd_kafka_message_destroy(message)
        }
        return (records, errors)
    }

    /// Marks records as processed: `offset` is the next one to read. Offsets of partitions no
    /// longer assigned (revoked meanwhile) are ignored by librdkafka; the new owner re-reads them.
    public func store(_ offsets: [PartitionOffset]) {
        guard !offsets.isEmpty else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(offsets.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for o in offsets {
            let tp = rd_kafka_topic_partition_list_add(list, o.topic, o.partition)!
            tp.pointee.offset = o.offset
        }
        _ = rd_kafka_offsets_store(handle, list)
    }

    /// The partitions currently assigned to this member.
    public func assignment() -> [PartitionOffset] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(handle, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        var out: [PartitionOffset] = []
        for i in 0..<Int(list.pointee.cnt) {
            let e = list.pointee.elems[i]
            out.append(PartitionOffset(topic: String(cString: e.topic), partition: e.partition, offset: e.offset))
        }
        return out
    }

    /// Stops (or resumes) fetching from every assigned partition; the member stays in the group.
    public func setPaused(_ paused: Bool) {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(handle, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        _ = paused ? rd_kafka_pause_partitions(handle, list) : rd_kafka_resume_partitions(handle, list)
    }

    /// Consumer lag per assigned partition: high-water mark (cached from fetches) minus position.
    /// The test broker's high-water marks are approximate.
    public func lag() -> [(PartitionOffset, Int64)] {
        var out: [(PartitionOffset, Int64)] = []
        for p in assignment() {
            var low: Int64 = 0
            var high: Int64 = 0
            guard
                rd_kafka_get_watermark_offsets(handle, p.topic, p.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR
            else { continue }
            let list = rd_kafka_topic_partition_list_new(1)!
            rd_kafka_topic_partition_list_add(list, p.topic, p.partition)
            _ = rd_kafka_position(handle, list)
            let position = list.pointee.elems[0].offset
            rd_kafka_topic_partition_list_destroy(list)
            if position >= 0 && high >= 0 { out.append((p, max(0, high - position))) }
        }
        return out
    }
}
