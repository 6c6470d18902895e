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

/// A change of a group member's assignment, as the rebalance callback saw it.
public struct RebalanceEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case assigned
        case revoked
    }

    public var kind: Kind
    /// The partitions assigned or revoked (offsets are not meaningful here).
    public var partitions: [TopicPartition]
    /// Cooperative (incremental) protocol: only these partitions change. Eager protocol
    /// (`range`, `roundrobin`): a revocation takes every partition, and the following
    /// assignment lists every partition the member holds next.
    public var incremental: Bool

    public init(kind: Kind, partitions: [TopicPartition], incremental: Bool) {
        self.kind = kind
        self.partitions = partitions
        self.incremental = incremental
    }
}

/// A topic and partition.
public struct TopicPartition: Sendable, Hashable, Comparable {
    public var topic: String
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (a: TopicPartition, b: TopicPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }
}

/// What the rebalance callback records for the member's owner. Lives as long as the consumer
/// (the callback reaches it through the client's opaque pointer, unretained).
final class RebalanceLog: @unchecked Sendable {
    // @unchecked: appended by the callback and drained by poll(), both on the one thread that
    // calls the consumer (librdkafka serves rebalance callbacks inside the poll call).
    var events: [RebalanceEvent] = []
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
    private let rebalanceLog: RebalanceLog
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
        // The callback finds the log through the client's opaque pointer (unretained: the log
        // is a stored property of this consumer and outlives the handle, destroyed in close()).
        let log = RebalanceLog()
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(log).toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
        let handle = try makeClientHandle(RD_KAFKA_CONSUMER, conf: conf)
        self.rebalanceLog = log
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

    /// Assignment changes since the last call, in the order they happened (each one was
    /// applied to the member by the rebalance callback during a poll). Records of newly
    /// assigned partitions come only from polls that follow their assignment event.
    public func takeRebalanceEvents() -> [RebalanceEvent] {
        defer { rebalanceLog.events.removeAll() }
        return rebalanceLog.events
    }

    /// Up to `maxRecords` records, waiting at most `timeoutMilliseconds` for the first.
    /// Records are copied out and the C messages destroyed at once. Consumer errors that are
    /// not about a record (e.g. a transient broker error) are returned in `errors`.
    /// Assignment changes served meanwhile are kept for ``takeRebalanceEvents()``.
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

/// Applies each assignment change librdkafka proposes (eager or cooperative) and records it.
/// Runs inside rd_kafka_consume_batch_queue / rd_kafka_consumer_close, on the polling thread.
/// `partitions` is owned by librdkafka for the duration of the call.
private let rebalanceCallback:
    @convention(c) (
        OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
        UnsafeMutableRawPointer?
    ) -> Void = { handle, err, partitions, opaque in
        guard let handle else { return }
        let incremental = rd_kafka_rebalance_protocol(handle).map { String(cString: $0) } == "COOPERATIVE"
        var list: [TopicPartition] = []
        if let partitions {
            for i in 0..<Int(partitions.pointee.cnt) {
                let e = partitions.pointee.elems[i]
                list.append(TopicPartition(topic: String(cString: e.topic), partition: e.partition))
            }
        }
        let kind: RebalanceEvent.Kind
        if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            kind = .assigned
            if incremental {
                // The returned error object is ours to destroy.
                if let e = rd_kafka_incremental_assign(handle, partitions) { rd_kafka_error_destroy(e) }
            } else {
                _ = rd_kafka_assign(handle, partitions)
            }
        } else {
            // Revocation, or an error that loses the assignment: give the partitions up.
            kind = .revoked
            if incremental {
                if let e = rd_kafka_incremental_unassign(handle, partitions) { rd_kafka_error_destroy(e) }
            } else {
                _ = rd_kafka_assign(handle, nil)
            }
        }
        if let opaque {
            let log = Unmanaged<RebalanceLog>.fromOpaque(opaque).takeUnretainedValue()
            log.events.append(RebalanceEvent(kind: kind, partitions: list.sorted(), incremental: incremental))
        }
    }
