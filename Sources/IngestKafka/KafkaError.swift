import CRdKafka

/// An error reported by librdkafka or by this module's use of it.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// The `rd_kafka_resp_err_t` value (negative values are librdkafka-internal codes).
    public var code: Int32
    public var message: String
    public var isRetriable: Bool
    public var isFatal: Bool

    public init(code: Int32, message: String, isRetriable: Bool = false, isFatal: Bool = false) {
        self.code = code
        self.message = message
        self.isRetriable = isRetriable
        self.isFatal = isFatal
    }

    init(_ err: rd_kafka_resp_err_t, context: String? = nil) {
        let text = String(cString: rd_kafka_err2str(err))
        self.code = err.rawValue
        self.message = context.map { "\($0): \(text)" } ?? text
        self.isRetriable = false
        self.isFatal = false
    }

    /// Takes ownership of `error` and destroys it.
    init(consuming error: OpaquePointer) {
        self.code = rd_kafka_error_code(error).rawValue
        self.message = String(cString: rd_kafka_error_string(error))
        self.isRetriable = rd_kafka_error_is_retriable(error) != 0
        self.isFatal = rd_kafka_error_is_fatal(error) != 0
        rd_kafka_error_destroy(error)
    }

    public var description: String { "Kafka error \(code): \(message)" }

    /// The local producer queue is full (`queue.buffering.max.messages` reached).
    public var isQueueFull: Bool { code == RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue }
    /// librdkafka lost every broker connection.
    public var isAllBrokersDown: Bool { code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue }

    static func configuration(_ message: String) -> KafkaError {
        KafkaError(code: RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue, message: message)
    }
}

/// The librdkafka library in use and the version this program was compiled against.
public enum LibrdkafkaVersion {
    /// The version of the library loaded at run time, e.g. "2.8.0".
    public static var runtime: String { String(cString: rd_kafka_version_str()) }
    public static var runtimeNumber: Int32 { rd_kafka_version() }
    /// The version of the headers at compile time (`RD_KAFKA_VERSION`).
    public static var compiledNumber: Int32 { crdkafka_header_version() }

    public static func format(_ number: Int32) -> String {
        "\(number >> 24 & 0xFF).\(number >> 16 & 0xFF).\(number >> 8 & 0xFF)"
    }

    /// Fails when the loaded library is older than the headers we were built with — the sign
    /// that the loader picked up a system librdkafka (Debian bookworm's 2.0.2) instead of the
    /// one we compiled against.
    public static func check() throws(KafkaError) {
        guard runtimeNumber >= compiledNumber else {
            throw KafkaError.configuration(
                "librdkafka \(runtime) was loaded but this program was built against "
                    + "\(format(compiledNumber)); install the newer library where the loader finds it "
                    + "(Scripts/install-deps puts it in /usr/local/lib and runs ldconfig)"
            )
        }
    }
}
