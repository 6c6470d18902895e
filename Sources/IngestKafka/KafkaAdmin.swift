import CRdKafka
import Logging

/// Topic administration (create, describe). Blocking calls: use from tools, start-up or tests.
public final class KafkaAdmin {
    private let handle: OpaquePointer

    public init(configuration: KafkaClientConfiguration) throws(KafkaError) {
        var configuration = configuration
        // Asking about a topic must not create it (a producer handle's metadata requests
        // would, with the broker's default partition count).
        if configuration.properties["allow.auto.create.topics"] == nil {
            configuration.properties["allow.auto.create.topics"] = "false"
        }
        let conf = try configuration.makeConf()
        self.handle = try makeClientHandle(RD_KAFKA_PRODUCER, conf: conf)
    }

    deinit { rd_kafka_destroy(handle) }

    public struct TopicSpec: Sendable {
        public var name: String
        public var partitions: Int32
        public var replicationFactor: Int32

        public init(name: String, partitions: Int32, replicationFactor: Int32 = 1) {
            self.name = name
            self.partitions = partitions
            self.replicationFactor = replicationFactor
        }
    }

    /// Creates topics; a topic that already exists is not an error.
    /// - Returns: the names of the topics that were newly created.
    @discardableResult
    public func createTopics(_ specs: [TopicSpec], timeoutMilliseconds: Int32 = 10_000) throws(KafkaError) -> [String] {
        guard !specs.isEmpty else { return [] }
        var errstr = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        // Each NewTopic is ours until rd_kafka_NewTopic_destroy_array below.
        defer { newTopics.withUnsafeMutableBufferPointer { rd_kafka_NewTopic_destroy_array($0.baseAddress, $0.count) } }
        for spec in specs {
            guard
                let nt = rd_kafka_NewTopic_new(
                    spec.name,
                    spec.partitions,
                    spec.replicationFactor,
                    &errstr,
                    errstr.count
                )
            else {
                throw KafkaError.configuration("invalid topic \(spec.name): \(errorText(errstr))")
            }
            newTopics.append(nt)
        }
        let queue = rd_kafka_queue_new(handle)!
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeoutMilliseconds, &errstr, errstr.count)
        newTopics.withUnsafeMutableBufferPointer {
            rd_kafka_CreateTopics(handle, $0.baseAddress, $0.count, options, queue)
        }
        guard let event = rd_kafka_queue_poll(queue, timeoutMilliseconds + 2000) else {
            throw KafkaError.configuration("timed out creating topics")
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        if eventError != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(eventError, context: "create topics")
        }
        guard let result = rd_kafka_event_CreateTopics_result(event) else {
            throw KafkaError.configuration("unexpected admin result")
        }
        var count = 0
        let results = rd_kafka_CreateTopics_result_topics(result, &count)
        var created: [String] = []
        for i in 0..<count {
            guard let r = results?[i] else { continue }
            let err = rd_kafka_topic_result_error(r)
            let name = String(cString: rd_kafka_topic_result_name(r))
            if err == RD_KAFKA_RESP_ERR_NO_ERROR {
                created.append(name)
            } else if err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                let message = rd_kafka_topic_result_error_string(r).map { String(cString: $0) } ?? ""
                throw KafkaError(code: err.rawValue, message: "create topic \(name): \(message)")
            }
        }
        return created
    }

    /// The number of partitions of `topic`, or 0 when it does not exist.
    public func partitionCount(topic: String, timeoutMilliseconds: Int32 = 5000) throws(KafkaError) -> Int32 {
        try KafkaMetadata.partitionCount(handle: handle, topic: topic, timeoutMilliseconds: timeoutMilliseconds)
    }
}

extension KafkaAdmin {
    /// Start-up's best effort: creates whichever of `specs` are missing and logs what it
    /// created, or — when the broker cannot be reached or refuses — a warning, and goes on
    /// (topics may be auto-created, or created by whoever runs the cluster).
    public static func ensureTopics(_ specs: [TopicSpec], kafka: KafkaClientConfiguration, logger: Logger) {
        do {
            try KafkaAdmin(configuration: kafka).ensureTopics(specs, logger: logger)
        } catch {
            logger.warning(
                "could not ensure the topics exist; they will be auto-created if the broker allows it",
                metadata: ["error": "\(error)"]
            )
        }
    }

    /// The same through this admin client: one kept for the process's lifetime already knows
    /// the cluster when a broker comes back (a fresh one first has to find the controller).
    public func ensureTopics(_ specs: [TopicSpec], logger: Logger) {
        do {
            let created = try createTopics(specs, timeoutMilliseconds: 5000)
            if !created.isEmpty { logger.info("created topics", metadata: ["kafka.topics": "\(created)"]) }
        } catch {
            logger.warning(
                "could not ensure the topics exist; they will be auto-created if the broker allows it",
                metadata: ["error": "\(error)"]
            )
        }
    }
}
