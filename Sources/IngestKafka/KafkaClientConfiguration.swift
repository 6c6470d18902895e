import CRdKafka

/// librdkafka configuration properties, applied to a fresh `rd_kafka_conf_t`.
public struct KafkaClientConfiguration: Sendable {
    public var properties: [String: String]

    public init(bootstrapServers: String, properties: [String: String] = [:]) {
        self.properties = properties
        self.properties["bootstrap.servers"] = bootstrapServers
    }

    /// Builds an `rd_kafka_conf_t`. The caller owns the result until `rd_kafka_new` succeeds
    /// (which takes ownership); on failure the caller must `rd_kafka_conf_destroy` it.
    func makeConf() throws(KafkaError) -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            let result = rd_kafka_conf_set(conf, key, value, &errstr, errstr.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError.configuration("invalid Kafka property \(key): \(errorText(errstr))")
            }
        }
        return conf
    }
}

/// Builds a client handle of `type` from `conf`, taking ownership of `conf` on success only
/// ("rd_kafka_new only frees the conf upon success").
func makeClientHandle(_ type: rd_kafka_type_t, conf: OpaquePointer) throws(KafkaError) -> OpaquePointer {
    var errstr = [CChar](repeating: 0, count: 512)
    guard let handle = rd_kafka_new(type, conf, &errstr, errstr.count) else {
        rd_kafka_conf_destroy(conf)
        throw KafkaError.configuration("cannot create Kafka client: \(errorText(errstr))")
    }
    return handle
}

/// The NUL-terminated text in an `errstr` buffer.
func errorText(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
