import IngestCore
import Testing

@testable import IngestGateway

private struct MissingFile: Error {}

private func reader(_ values: [String: String], files: [String: String] = [:]) -> EnvironmentReader {
    EnvironmentReader(values) { path in
        guard let text = files[path] else { throw MissingFile() }
        return Array(text.utf8)
    }
}

@Suite("Gateway configuration from the environment")
struct ConfigurationTests {
    @Test func defaultsWithOneSecret() throws {
        let config = try GatewayConfiguration(
            environment: reader(["INGEST_SOURCE_GENESYS_SECRET": "s"]),
            defaultEventLoops: 3
        )
        #expect(config.port == 8080)
        #expect(config.eventLoopCount == 3)
        #expect(config.maxBodyBytes == 512_000)
        #expect(config.ackDeadlineMilliseconds == 2000)
        #expect(config.sources.count == 1)
        #expect(config.sources[0].path == "/events/genesys")
        #expect(config.sources[0].scheme == .genesysHMAC)
        #expect(config.sources[0].secrets.map(\.id) == ["primary"])
    }

    @Test func severalSourcesWithRotationAndFiles() throws {
        let config = try GatewayConfiguration(
            environment: reader(
                [
                    "INGEST_SOURCES": "genesys, eventbridge,open-msg",
                    "INGEST_SOURCE_GENESYS_SECRET": "a",
                    "INGEST_SOURCE_GENESYS_SECRET_2_FILE": "/run/secrets/next",
                    "INGEST_SOURCE_GENESYS_SECRET_2_ID": "2026-11",
                    "INGEST_SOURCE_EVENTBRIDGE_AUTH": "api-key",
                    "INGEST_SOURCE_EVENTBRIDGE_API_KEY_HEADER": "X-EB-Key",
                    "INGEST_SOURCE_EVENTBRIDGE_SECRET": "k",
                    "INGEST_SOURCE_OPEN_MSG_AUTH": "open-messaging",
                    "INGEST_SOURCE_OPEN_MSG_PATH": "/om",
                    "INGEST_SOURCE_OPEN_MSG_SECRET": "m",
                    "INGEST_KAFKA_PROPERTIES": "compression.type=lz4, linger.ms=2",
                ],
                files: ["/run/secrets/next": "rotated\n"]
            ),
            defaultEventLoops: 1
        )
        #expect(config.sources.map(\.name) == ["genesys", "eventbridge", "open-msg"])
        #expect(config.sources[0].secrets.map(\.id) == ["primary", "2026-11"])
        #expect(config.sources[0].secrets[1].bytes == Array("rotated".utf8))
        #expect(config.sources[1].apiKeyHeader == "X-EB-Key")
        #expect(config.sources[2].path == "/om")
        #expect(config.kafkaProperties == ["compression.type": "lz4", "linger.ms": "2"])
    }

    @Test(
        arguments: [
            (["INGEST_HTTP_PORT": "99999", "INGEST_SOURCE_GENESYS_SECRET": "s"], "INGEST_HTTP_PORT"),
            ([:], "INGEST_SOURCE_GENESYS_SECRET"),
            (["INGEST_SOURCE_GENESYS_SECRET": "s", "INGEST_SOURCE_GENESYS_SECRET_FILE": "/x"], "only one"),
            (["INGEST_SOURCE_GENESYS_SECRET_FILE": "/missing"], "cannot read"),
            (["INGEST_SOURCE_GENESYS_AUTH": "hmac", "INGEST_SOURCE_GENESYS_SECRET": "s"], "not one of"),
            (["INGEST_SOURCE_GENESYS_AUTH": "basic", "INGEST_SOURCE_GENESYS_SECRET": "nocolon"], "user:password"),
            (["INGEST_SOURCE_GENESYS_PATH": "/metrics", "INGEST_SOURCE_GENESYS_SECRET": "s"], "reserved"),
            (["INGEST_CREATE_TOPICS": "maybe", "INGEST_SOURCE_GENESYS_SECRET": "s"], "true or false"),
            (["INGEST_KAFKA_PROPERTIES": "acks", "INGEST_SOURCE_GENESYS_SECRET": "s"], "key=value"),
            (
                [
                    "INGEST_SOURCES": "a,b", "INGEST_SOURCE_A_SECRET": "s", "INGEST_SOURCE_B_SECRET": "s",
                    "INGEST_SOURCE_B_PATH": "/events/a",
                ], "two sources"
            ),
        ] as [([String: String], String)]
    )
    func badSettingsNameTheVariable(values: [String: String], expected: String) {
        do {
            _ = try GatewayConfiguration(environment: reader(values), defaultEventLoops: 1)
            Issue.record("expected an error mentioning \(expected)")
        } catch {
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func secretsAreNeverPrinted() {
        let secret = SourceSecret(id: "primary", bytes: Array("hunter2".utf8))
        #expect(!"\(secret)".contains("hunter2"))
        #expect(!String(reflecting: secret).contains("hunter2"))
    }
}
