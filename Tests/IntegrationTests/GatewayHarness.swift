import Foundation
import IngestCore
import IngestKafka
import IngestTesting

/// A real `ingest-gateway` process on a free port, pointed at a real broker.
final class GatewayProcess {
    let child: ChildProcess
    let port: Int

    static let secrets = (primary: "gw-test-primary", secondary: "gw-test-secondary")

    /// The standard test sources: one per auth scheme.
    static let sourceEnvironment: [String: String] = [
        "INGEST_SOURCES": "genesys,openmsg,eventbridge,basic,webhooks",
        "INGEST_SOURCE_GENESYS_SECRET": secrets.primary,
        "INGEST_SOURCE_GENESYS_SECRET_2": secrets.secondary,
        "INGEST_SOURCE_GENESYS_SECRET_2_ID": "next",
        "INGEST_SOURCE_OPENMSG_AUTH": "open-messaging",
        "INGEST_SOURCE_OPENMSG_SECRET": "om-secret",
        "INGEST_SOURCE_EVENTBRIDGE_AUTH": "api-key",
        "INGEST_SOURCE_EVENTBRIDGE_API_KEY_HEADER": "X-EB-Key",
        "INGEST_SOURCE_EVENTBRIDGE_SECRET": "eb-key",
        "INGEST_SOURCE_BASIC_AUTH": "basic",
        "INGEST_SOURCE_BASIC_SECRET": "eventbridge:pw",
        "INGEST_SOURCE_WEBHOOKS_AUTH": "standard-webhooks",
        "INGEST_SOURCE_WEBHOOKS_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ]

    init(brokers: String, environment extra: [String: String] = [:]) throws {
        var env = Self.sourceEnvironment
        env["INGEST_KAFKA_BROKERS"] = brokers
        env["INGEST_HTTP_HOST"] = "127.0.0.1"
        env["INGEST_HTTP_PORT"] = "0"
        env["INGEST_TOPIC_PARTITIONS"] = "3"
        for (k, v) in extra { env[k] = v }
        child = try ChildProcess(executable: BuiltProducts.path("ingest-gateway"), environment: env, logName: "gateway")
        // Port 0: read the bound port from the start-up log line.
        guard let found = child.waitForOutput(#"http\.port=(\d+) \[IngestHTTP\]"#, timeout: 30).flatMap({ Int($0) })
        else {
            throw RawHTTPClientError(description: "gateway did not start: \(child.output)")
        }
        port = found
    }

    /// Sends one request on a new connection and reads the response.
    func post(
        path: String = "/events/genesys",
        body: [UInt8],
        headers: [(String, String)],
        method: String = "POST"
    ) throws -> RawHTTPResponse {
        try withGatewayOutput {
            let client = try RawHTTPClient(port: port)
            try client.send(RawHTTPClient.request(method: method, path: path, headers: headers, body: body))
            return try client.readResponse()
        }
    }

    func get(_ path: String) throws -> RawHTTPResponse {
        try withGatewayOutput {
            let client = try RawHTTPClient(port: port)
            try client.send(RawHTTPClient.request(method: "GET", path: path))
            return try client.readResponse()
        }
    }

    /// A failed exchange says what the gateway printed last (a crash, a sanitizer report).
    private func withGatewayOutput<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch {
            let state = child.isRunning ? "running" : "exited"
            throw RawHTTPClientError(description: "\(error) (gateway \(state)): \(child.output.suffix(4000))")
        }
    }
}

extension RawHTTPResponse {
    /// The `requestId` field of a gateway JSON answer.
    var requestID: String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
        return object["requestId"] as? String
    }
}

func readRecords(
    _ broker: TansuBroker,
    topics: [String] = TopicNaming().allTopics,
    expected: Int? = nil
)
    throws -> [KafkaRecord]
{
    try KafkaConsumer.readAll(
        configuration: KafkaClientConfiguration(bootstrapServers: broker.bootstrap),
        topics: topics,
        expected: expected,
        idleMilliseconds: 4000
    )
}

/// Genesys fixtures (Tests/Fixtures/genesys).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/genesys")

    static func bytes(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: directory.appendingPathComponent(name)))
    }
}

func nowSeconds() -> Int64 { Int64(Date().timeIntervalSince1970) }
