import Foundation
import GenesysSimulator
import IngestCore
import IngestKafka
import IngestStore
import IngestTesting
import IngestWorker
import Logging
import Testing

@testable import IngestEnrichment

@Suite("Conversation enrichment", .serialized, .elasticThreads)
struct EnrichmentTests {
    @Test func derivedFieldsFromTheRealDetailsShape() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(
                "Fixtures/genesys/rest.analytics.conversations.details.query.conversation-element.json"
            )
        let derived = DerivedFields(details: try JSONValue.parse(Data(contentsOf: url)))
        #expect(derived.tAcdMs == 11179)
        #expect(derived.talkMs == 374_561)
        #expect(derived.holdMs == 544_176)
        #expect(derived.handleMs == 918_737)
        #expect(derived.queueIds == ["a623d83c-96d7-4baa-af1f-d46ad6700d8b"])
        #expect(derived.agentIds == ["50fcd33c-f432-4726-abc9-979f3ca01555"])
        #expect(derived.abandoned == false)
        #expect(derived.mediaType == "chat")
        #expect(derived.direction == "inbound")
    }

    /// Metric values are integers from the wire: one too large for an Int, or not a number,
    /// is left out instead of trapping the worker.
    @Test func outOfRangeMetricsAreLeftOut() {
        let details: JSONValue = [
            "participants": [
                [
                    "purpose": "acd",
                    "sessions": [
                        [
                            "mediaType": "voice",
                            "metrics": [
                                ["name": "tAcd", "value": 1e300], ["name": "tTalk", "value": "12"],
                                ["name": "tHeld", "value": 2500],
                            ],
                        ]
                    ],
                ]
            ]
        ]
        let derived = DerivedFields(details: details)
        #expect(derived.tAcdMs == nil && derived.talkMs == nil && derived.holdMs == 2500)
        #expect(derived.mediaType == "voice" && derived.abandoned == false)
    }

    /// Generator → gateway → Kafka → enrichment worker → enriched topic. Details appear 1.5 s
    /// after each conversation ends, so the first fetches find nothing: every ended
    /// conversation must still be enriched, exactly once.
    @Test func everyEndedConversationIsEnrichedExactlyOnce() async throws {
        let broker = try TansuBroker()
        let kafka = KafkaClientConfiguration(bootstrapServers: broker.bootstrap)
        try KafkaAdmin(configuration: kafka).createTopics([.init(name: "genesys.raw.conversation", partitions: 3)])
        var simConfig = SimulatorConfiguration()
        simConfig.detailsDelayMilliseconds = 1500
        let simulator = GenesysSimulator(configuration: simConfig, logger: Logger(label: "sim"))
        try simulator.start()

        let gateway = try ChildProcess(
            executable: BuiltProducts.path("ingest-gateway"),
            environment: [
                "INGEST_KAFKA_BROKERS": broker.bootstrap, "INGEST_HTTP_HOST": "127.0.0.1", "INGEST_HTTP_PORT": "0",
                "INGEST_SOURCE_GENESYS_SECRET": "enrich-test", "INGEST_CREATE_TOPICS": "false",
            ],
            logName: "gateway"
        )
        let gatewayPort = try #require(gateway.waitForOutput(#"http\.port=(\d+) \[IngestHTTP\]"#, timeout: 30))
        let store = FileManager.default.temporaryDirectory.appendingPathComponent("enrich-\(UUID()).sqlite").path
        // With PostgreSQL available, also upsert into the enriched_conversations table.
        let postgres = ProcessInfo.processInfo.environment["INGEST_TEST_POSTGRES_URL"]
        let schema = "enrich_" + UUID().uuidString.prefix(8).lowercased()
        var tableEnvironment: [String: String] = [:]
        if let postgres {
            tableEnvironment = ["INGEST_ENRICH_TABLE_URL": postgres, "INGEST_ENRICH_TABLE_SCHEMA": schema]
        }
        let worker = try ChildProcess(
            executable: BuiltProducts.path("ingest-worker"),
            environment: tableEnvironment.merging([
                "INGEST_KAFKA_BROKERS": broker.bootstrap, "INGEST_WORKER_HANDLERS": "enrich",
                "INGEST_WORKER_TOPICS": "genesys.raw.conversation", "INGEST_STORE_URL": "sqlite:" + store,
                "INGEST_WORKER_HTTP_HOST": "127.0.0.1", "INGEST_WORKER_HTTP_PORT": "0", "INGEST_WORKER_GROUP": "enrich",
                "INGEST_WORKER_CONCURRENCY": "64",
                "INGEST_KAFKA_CONSUMER_PROPERTIES": "max.poll.interval.ms=7000,session.timeout.ms=6000",
                "INGEST_GENESYS_API_URL": simulator.baseURL, "INGEST_GENESYS_CLIENT_ID": "sim-client",
                "INGEST_GENESYS_CLIENT_SECRET": "sim-secret", "INGEST_ENRICH_RETRY_DELAY_MS": "500",
                "INGEST_ENRICH_BATCH_WINDOW_MS": "100",
            ]) { $1 },
            logName: "worker"
        )
        #expect(worker.waitForOutput(#"worker\.http\.port=(\d+)"#, timeout: 20) != nil, "\(worker.output)")

        var options = TrafficGenerator.Options(
            gatewayURL: "http://127.0.0.1:\(gatewayPort)/events/genesys",
            secret: "enrich-test"
        )
        options.conversationsPerSecond = 30
        let generator = TrafficGenerator(options: options, simulator: simulator, logger: Logger(label: "gen"))
        await generator.run(conversations: 30)
        #expect(generator.statistics.failed == 0)
        let ended = Set(generator.endedConversations)
        #expect(ended.count == 30)
        // Queue observations were posted too, keyed by queue id.
        let observations = try KafkaConsumer.readAll(
            configuration: kafka,
            topics: ["genesys.raw.queue"],
            idleMilliseconds: 1500
        )
        #expect(!observations.isEmpty)
        #expect(
            Set(observations.compactMap { $0.key.map { String(decoding: $0, as: UTF8.self) } }).isSubset(
                of: Set(options.queueIDs)
            )
        )

        var records: [KafkaRecord] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            records = try KafkaConsumer.readAll(
                configuration: kafka,
                topics: ["genesys.conversations.enriched"],
                expected: 30,
                idleMilliseconds: 1000
            )
            if records.count >= 30 { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        try await Task.sleep(for: .seconds(2))
        records = try KafkaConsumer.readAll(
            configuration: kafka,
            topics: ["genesys.conversations.enriched"],
            expected: 30
        )
        let keys = records.compactMap { $0.key.map { String(decoding: $0, as: UTF8.self) } }
        #expect(records.count == 30, "\(records.count) enriched records; worker log: \(worker.output.suffix(1500))")
        #expect(Set(keys) == ended, "every ended conversation enriched")
        #expect(Set(keys).count == keys.count, "each exactly once")
        let first = try #require(records.first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(first.value)) as? [String: Any])
        let derived = try #require(object["derived"] as? [String: Any])
        #expect(derived["tAcdMs"] as? Int != nil)
        #expect((derived["queueIds"] as? [String])?.isEmpty == false)
        // Batching: far fewer API calls than conversations, none rate-limited.
        let stats = simulator.statistics
        #expect(stats.rateLimited == 0)
        #expect(stats.apiRequests < 30, "multi-get batches (\(stats.apiRequests) requests)")
        if let postgres {
            let table = try await EnrichedConversationTable(url: postgres, schema: schema)
            #expect(try await table.enrichedConversationCount() == 30, "one row per conversation")
            // A reporting database gets only the enrichment table, none of the worker's.
            let tables = try await table.tablesInSchema()
            #expect(tables == ["enriched_conversations"], "\(tables)")
            await table.close()
        }
        _ = gateway
        await simulator.stop()
    }

    /// Two worker processes share one OAuth client: their combined requests stay under the
    /// simulator's limit (20 per 6 s) because the budget is counted in their shared store.
    @Test func twoWorkerProcessesShareOneRateBudget() async throws {
        let broker = try TansuBroker()
        let kafka = KafkaClientConfiguration(bootstrapServers: broker.bootstrap)
        try KafkaAdmin(configuration: kafka).createTopics([.init(name: "genesys.raw.conversation", partitions: 4)])
        var simConfig = SimulatorConfiguration()
        simConfig.requestsPerMinute = 20
        simConfig.rateWindowSeconds = 6
        let simulator = GenesysSimulator(configuration: simConfig, logger: Logger(label: "sim"))
        try simulator.start()
        let store = FileManager.default.temporaryDirectory.appendingPathComponent("budget-\(UUID()).sqlite").path
        let environment = [
            "INGEST_KAFKA_BROKERS": broker.bootstrap, "INGEST_WORKER_HANDLERS": "enrich",
            "INGEST_WORKER_TOPICS": "genesys.raw.conversation", "INGEST_STORE_URL": "sqlite:" + store,
            "INGEST_WORKER_HTTP_HOST": "127.0.0.1", "INGEST_WORKER_HTTP_PORT": "0", "INGEST_WORKER_GROUP": "budget",
            "INGEST_KAFKA_CONSUMER_PROPERTIES": "max.poll.interval.ms=7000,session.timeout.ms=6000",
            "INGEST_GENESYS_API_URL": simulator.baseURL, "INGEST_GENESYS_CLIENT_ID": "sim-client",
            "INGEST_GENESYS_CLIENT_SECRET": "sim-secret", "INGEST_GENESYS_RATE_LIMIT": "20",
            "INGEST_GENESYS_RATE_PERIOD_SECONDS": "6", "INGEST_ENRICH_BATCH_SIZE": "2",
            "INGEST_ENRICH_BATCH_WINDOW_MS": "50",
        ]
        let workers = try (0..<2).map { _ in
            try ChildProcess(
                executable: BuiltProducts.path("ingest-worker"),
                environment: environment,
                logName: "worker"
            )
        }
        for w in workers { #expect(w.waitForOutput(#"(worker consuming)"#, timeout: 20) != nil) }
        try await Task.sleep(for: .seconds(8))  // both members joined and partitions split

        let producer = try AcknowledgedProducer(configuration: kafka, logger: Logger(label: "test"))
        for (id, body) in TrafficGenerator.endedConversations(60, simulator: simulator) {
            try await producer.send(topic: "genesys.raw.conversation", key: Array(id.utf8), value: body, headers: [])
        }
        producer.close()
        var records: [KafkaRecord] = []
        let deadline = ContinuousClock.now + .seconds(90)
        while ContinuousClock.now < deadline && Set(records.compactMap(\.key)).count < 60 {
            try await Task.sleep(for: .seconds(2))
            records = try KafkaConsumer.readAll(
                configuration: kafka,
                topics: ["genesys.conversations.enriched"],
                expected: 60,
                idleMilliseconds: 1000
            )
        }
        #expect(Set(records.compactMap(\.key)).count == 60)
        let stats = simulator.statistics
        #expect(stats.rateLimited == 0, "the shared budget kept both instances under the limit")
        #expect(stats.maxPerMinute <= 20)
        #expect(stats.apiRequests >= 30)
        #expect(workers.allSatisfy { $0.isRunning })
        await simulator.stop()
    }
}
