import CRdKafka
import CSystemShims
import Dispatch
import IngestCore
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A record header: name and raw value bytes.
public struct KafkaHeader: Sendable, Equatable {
    public var name: String
    public var value: [UInt8]

    public init(name: String, value: [UInt8]) {
        self.name = name
        self.value = value
    }

    public init(name: String, string: String) {
        self.init(name: name, value: Array(string.utf8))
    }
}

/// The outcome of one produced record, reported once the broker acknowledged it (or gave up).
public struct DeliveryReport: Sendable {
    /// The caller's token passed to ``KafkaProducer/produce(topic:key:value:headers:token:)``.
    public var token: UInt64
    /// nil when the broker acknowledged the record.
    public var error: KafkaError?
    public var partition: Int32
    public var offset: Int64
}

/// An idempotent librdkafka producer whose delivery reports arrive in batches on a Dispatch
/// queue, without a polling thread.
///
/// librdkafka signals its main queue through an eventfd (`rd_kafka_queue_io_event_enable`)
/// watched by a `DispatchSourceRead`; the handler drains every ready event at once and hands
/// the delivery reports to `onDeliveryReports` as one batch. ``produce(topic:key:value:headers:token:)``
/// is thread-safe and may be called from any queue.
public final class KafkaProducer: @unchecked Sendable {
    // @unchecked: the librdkafka handles are thread-safe per librdkafka's documentation; the
    // topic-handle cache is guarded by a LockedValue, the event source is confined to `reportQueue`.

    public typealias DeliveryHandler = @Sendable ([DeliveryReport]) -> Void
    public typealias ErrorHandler = @Sendable (KafkaError) -> Void

    private let handle: OpaquePointer
    private let mainQueue: OpaquePointer
    private let eventFD: Int32
    private let reportQueue: DispatchQueue?
    private let source: DispatchSourceRead?
    /// Topic handles by name, stored as bit patterns (`rd_kafka_topic_t *`), owned until `close()`.
    private let topics = LockedValue<[String: UInt]>([:])
    private let logger: Logger
    private let onDeliveryReports: DeliveryHandler
    private let onError: ErrorHandler
    private let closed = Atomic<Bool>(false)

    /// Settings the gateway relies on for durable, ordered, duplicate-free acknowledgements.
    public static let durableDefaults: [String: String] = [
        "acks": "all",
        "enable.idempotence": "true",
        "linger.ms": "1",
        "socket.nagle.disable": "true",
        "message.timeout.ms": "30000",
        "queue.buffering.max.messages": "200000",
        // Keyed records land where Java clients (and ``KafkaPartitioner``) put them.
        "partitioner": KafkaPartitioner.propertyValue,
    ]

    /// Who watches the eventfd that signals ready delivery reports.
    public enum ReportDriver: Sendable {
        /// The producer watches it with a `DispatchSourceRead` on a private serial queue.
        case privateQueue
        /// The owner watches ``eventFileDescriptor`` (e.g. in its own epoll set) and calls
        /// ``pollEvents()`` when it is readable, from one serial queue at a time. This saves a
        /// thread hop per batch when the owner's event loop is where the reports are needed.
        case external
    }

    /// - Parameters:
    ///   - configuration: librdkafka properties; ``durableDefaults`` are applied first and may be overridden.
    ///   - reportDriver: who watches for ready reports.
    ///   - onDeliveryReports: called with each batch of reports, on the queue that polls events.
    ///   - onError: called on the same queue for client-level errors (broker down, fatal errors).
    public init(
        configuration: KafkaClientConfiguration,
        logger: Logger,
        reportDriver: ReportDriver = .privateQueue,
        onDeliveryReports: @escaping DeliveryHandler,
        onError: @escaping ErrorHandler = { _ in }
    ) throws(KafkaError) {
        var configuration = configuration
        for (k, v) in Self.durableDefaults where configuration.properties[k] == nil {
            configuration.properties[k] = v
        }
        // librdkafka's own log lines are queued as events too, and go through swift-log.
        let logQueue = (configuration.properties["log.queue"] ?? "true") == "true"
        configuration.properties["log.queue"] = logQueue ? "true" : "false"
        let conf = try configuration.makeConf()
        // Delivery reports, errors and logs become events on the main queue (no callbacks, no rd_kafka_poll).
        rd_kafka_conf_set_events(conf, Int32(RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG))
        let handle = try makeClientHandle(RD_KAFKA_PRODUCER, conf: conf)
        // NULL: log events go to the main queue.
        if logQueue { _ = rd_kafka_set_log_queue(handle, nil) }
        let fd = eventfd(0, CSYS_EFD_NONBLOCK | CSYS_EFD_CLOEXEC)
        guard fd >= 0 else {
            rd_kafka_destroy(handle)
            throw KafkaError.configuration("eventfd failed: errno \(errno)")
        }
        self.handle = handle
        // rd_kafka_queue_get_main returns a new reference that we must rd_kafka_queue_destroy.
        let mainQueue = rd_kafka_queue_get_main(handle)!
        self.mainQueue = mainQueue
        self.eventFD = fd
        self.logger = logger
        self.onDeliveryReports = onDeliveryReports
        self.onError = onError
        // librdkafka writes this 8-byte payload to the eventfd when the queue turns non-empty.
        var one: UInt64 = 1
        withUnsafeBytes(of: &one) { rd_kafka_queue_io_event_enable(mainQueue, fd, $0.baseAddress, 8) }
        // librdkafka signals only when the queue turns non-empty; events queued before this
        // point (log lines from rd_kafka_new) would never be signalled, and the queue would
        // stay stuck. Signal once so the first poll drains them.
        _ = withUnsafeBytes(of: &one) { write(fd, $0.baseAddress, 8) }
        switch reportDriver {
        case .privateQueue:
            let queue = DispatchQueue(label: "genesys-ingest.kafka.delivery-reports")
            let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
            self.reportQueue = queue
            self.source = source
        case .external:
            self.reportQueue = nil
            self.source = nil
        }
        source?.setEventHandler { [unowned self] in self.pollEvents() }
        source?.resume()
    }

    /// The eventfd that becomes readable when events are ready (for ``ReportDriver/external``).
    public var eventFileDescriptor: Int32 { eventFD }

    deinit {
        close()
    }

    /// Stops watching for reports and destroys the client. Call ``flush(timeoutMilliseconds:)`` first
    /// to wait for outstanding acknowledgements.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        source?.cancel()
        reportQueue?.sync {}
        rd_kafka_queue_io_event_enable(mainQueue, -1, nil, 0)
        let topicHandles = topics.withLock { t in
            let all = Array(t.values)
            t.removeAll()
            return all
        }
        for t in topicHandles { rd_kafka_topic_destroy(OpaquePointer(bitPattern: t)) }
        rd_kafka_queue_destroy(mainQueue)
        rd_kafka_destroy(handle)
        Glibc.close(eventFD)
    }

    /// Enqueues a record. The delivery report for `token` arrives later through `onDeliveryReports`.
    ///
    /// - Parameter token: a non-zero caller id carried as the message opaque (not a retained object).
    /// - Throws: `KafkaError` when librdkafka refuses the record at once (queue full, unknown
    ///   topic, fatal producer state); no report follows then.
    public func produce(
        topic: String,
        key: [UInt8]?,
        value: UnsafeRawBufferPointer,
        headers: [KafkaHeader],
        token: UInt64
    ) throws(KafkaError) {
        let rkt = try topicHandle(topic)
        // Header names (NUL-terminated) and values packed into one buffer; librdkafka copies
        // headers, and RD_KAFKA_MSG_F_COPY makes it copy key and value, so every pointer only
        // needs to live for the duration of the call.
        var packed: [UInt8] = []
        var offsets: [(name: Int, value: Int, size: Int)] = []
        offsets.reserveCapacity(headers.count)
        for h in headers {
            let nameOffset = packed.count
            packed.append(contentsOf: h.name.utf8)
            packed.append(0)
            offsets.append((nameOffset, packed.count, h.value.count))
            packed.append(contentsOf: h.value)
        }
        let keyBytes = key ?? []
        let error: OpaquePointer? = packed.withUnsafeBufferPointer { pk in
            keyBytes.withUnsafeBufferPointer { kp in
                var vus = [rd_kafka_vu_t](repeating: rd_kafka_vu_t(), count: 5 + headers.count)
                vus[0].vtype = RD_KAFKA_VTYPE_RKT
                vus[0].u.rkt = rkt
                vus[1].vtype = RD_KAFKA_VTYPE_VALUE
                vus[1].u.mem.ptr = UnsafeMutableRawPointer(mutating: value.baseAddress)
                vus[1].u.mem.size = value.count
                vus[2].vtype = RD_KAFKA_VTYPE_KEY
                vus[2].u.mem.ptr = key == nil ? nil : UnsafeMutableRawPointer(mutating: kp.baseAddress)
                vus[2].u.mem.size = key == nil ? 0 : kp.count
                vus[3].vtype = RD_KAFKA_VTYPE_OPAQUE
                vus[3].u.ptr = UnsafeMutableRawPointer(bitPattern: UInt(token))
                vus[4].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                vus[4].u.i = RD_KAFKA_MSG_F_COPY
                let base = pk.baseAddress.map { UnsafeRawPointer($0) }
                for (i, o) in offsets.enumerated() {
                    vus[5 + i].vtype = RD_KAFKA_VTYPE_HEADER
                    vus[5 + i].u.header.name = base.map { ($0 + o.name).assumingMemoryBound(to: CChar.self) }
                    vus[5 + i].u.header.val = base.map { $0 + o.value }
                    vus[5 + i].u.header.size = o.size
                }
                return rd_kafka_produceva(handle, &vus, vus.count)
            }
        }
        if let error { throw KafkaError(consuming: error) }
    }

    /// Convenience for byte arrays.
    public func produce(
        topic: String,
        key: [UInt8]?,
        value: [UInt8],
        headers: [KafkaHeader],
        token: UInt64
    )
        throws(KafkaError)
    {
        let result = value.withUnsafeBytes { v in
            Result { () throws(KafkaError) in
                try produce(topic: topic, key: key, value: v, headers: headers, token: token)
            }
        }
        try result.get()
    }

    /// Drops every record still queued or in flight; their delivery reports follow with a
    /// purge error. Used before replacing a producer that can no longer deliver.
    public func purgeOutstanding() {
        _ = rd_kafka_purge(handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
    }

    /// Records not yet acknowledged (in the local queue or in flight).
    public var outstandingCount: Int { Int(rd_kafka_outq_len(handle)) }

    /// Waits up to `timeoutMilliseconds` for every outstanding record to be acknowledged,
    /// serving delivery reports meanwhile. Blocking: call it off the event loops, and only once
    /// nothing else polls this producer's events. Returns true when nothing is left.
    @discardableResult
    public func flush(timeoutMilliseconds: Int32) -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, timeoutMilliseconds)) * 1_000_000
        while true {
            pollEvents()
            if rd_kafka_outq_len(handle) == 0 { return true }
            let now = DispatchTime.now().uptimeNanoseconds
            if now >= deadline { return false }
            // With delivery-report events enabled, rd_kafka_flush waits without serving them.
            _ = rd_kafka_flush(handle, Int32(min(50, (deadline - now) / 1_000_000 + 1)))
        }
    }

    /// Asks a broker for cluster metadata; true when one answered within the timeout.
    /// Blocking: call it off the event loops.
    public func probeBroker(timeoutMilliseconds: Int32) -> Bool {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, nil, &metadata, timeoutMilliseconds)
        if let metadata { rd_kafka_metadata_destroy(metadata) }
        return err == RD_KAFKA_RESP_ERR_NO_ERROR
    }

    private func topicHandle(_ name: String) throws(KafkaError) -> OpaquePointer {
        let cached: UInt? = topics.withLock { $0[name] }
        if let cached, let handle = OpaquePointer(bitPattern: cached) { return handle }
        // rd_kafka_topic_new returns a handle we own until rd_kafka_topic_destroy (in close()).
        guard let created = rd_kafka_topic_new(handle, name, nil) else {
            throw KafkaError(rd_kafka_last_error(), context: "topic \(name)")
        }
        let createdBits = UInt(bitPattern: created)
        let winner: UInt = topics.withLock { t in
            if let existing = t[name] { return existing }
            t[name] = createdBits
            return createdBits
        }
        if winner != createdBits { rd_kafka_topic_destroy(created) }
        return OpaquePointer(bitPattern: winner)!
    }

    /// Resets the eventfd, then drains every ready event, delivering reports as one batch.
    /// With ``ReportDriver/external``, call it when ``eventFileDescriptor`` is readable, from
    /// one serial queue at a time.
    public func pollEvents() {
        guard !closed.load(ordering: .relaxed) else { return }
        var counter: UInt64 = 0
        _ = read(eventFD, &counter, 8)
        var reports: [DeliveryReport] = []
        while let event = rd_kafka_queue_poll(mainQueue, 0) {
            switch rd_kafka_event_type(event) {
            case Int32(RD_KAFKA_EVENT_DR):
                // Messages from the event must not be destroyed: the event owns them.
                while let message = rd_kafka_event_message_next(event) {
                    let m = message.pointee
                    let token = UInt64(UInt(bitPattern: m._private))
                    let error = m.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : KafkaError(m.err)
                    reports.append(
                        DeliveryReport(token: token, error: error, partition: m.partition, offset: m.offset)
                    )
                }
            case Int32(RD_KAFKA_EVENT_ERROR):
                let code = rd_kafka_event_error(event)
                var error = KafkaError(code)
                if let s = rd_kafka_event_error_string(event) { error.message = String(cString: s) }
                error.isFatal = rd_kafka_event_error_is_fatal(event) != 0
                logger.warning(
                    "Kafka client error",
                    metadata: ["kafka.error.code": "\(error.code)", "kafka.error": "\(error.message)"]
                )
                onError(error)
            case Int32(RD_KAFKA_EVENT_LOG):
                var facility: UnsafePointer<CChar>?
                var text: UnsafePointer<CChar>?
                var level: Int32 = 0
                if rd_kafka_event_log(event, &facility, &text, &level) == 0 {
                    let message = text.map { String(cString: $0) } ?? ""
                    let fac = facility.map { String(cString: $0) } ?? ""
                    // syslog levels 0-2 → error; 3-4 → notice (connection failures also arrive as
                    // error events, logged at warning above); 5-6 → info; 7 → debug.
                    let swiftLevel: Logger.Level =
                        level <= 2 ? .error : level <= 4 ? .notice : level <= 6 ? .info : .debug
                    logger.log(
                        level: swiftLevel,
                        "librdkafka",
                        metadata: ["kafka.facility": "\(fac)", "kafka.log": "\(message)"]
                    )
                }
            default:
                break
            }
            rd_kafka_event_destroy(event)
        }
        if !reports.isEmpty { onDeliveryReports(reports) }
    }
}
