import Foundation
import IngestCore
import IngestTesting
import Logging
import Synchronization
import Testing

@testable import IngestKafka

/// Collects delivery reports and lets a test wait for a number of them.
final class ReportCollector: Sendable {
    let reports = LockedValue<[DeliveryReport]>([])

    func add(_ batch: [DeliveryReport]) { reports.withLock { $0 += batch } }

    func wait(for count: Int, timeout: Double = 20) async -> [DeliveryReport] {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            let current = reports.withLock { $0 }
            if current.count >= count { return current }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return reports.withLock { $0 }
    }
}

@Suite("librdkafka client", .serialized, .elasticThreads)
struct KafkaClientTests {
    @Test func loadedLibrdkafkaIsAtLeastTheCompiledOne() throws {
        #expect(LibrdkafkaVersion.runtimeNumber >= LibrdkafkaVersion.compiledNumber)
        try LibrdkafkaVersion.check()
        #expect(LibrdkafkaVersion.runtime.hasPrefix(LibrdkafkaVersion.format(LibrdkafkaVersion.runtimeNumber)))
        // Tansu needs >= 2.3 (2.0.2 fails its handshake).
        #expect(LibrdkafkaVersion.runtimeNumber >= 0x0203_0000)
    }

    @Test func invalidPropertiesGiveATypedError() {
        let config = KafkaClientConfiguration(bootstrapServers: "127.0.0.1:1", properties: ["acks": "sometimes"])
        #expect(throws: KafkaError.self) {
            _ = try KafkaProducer(configuration: config, logger: Logger(label: "t"), onDeliveryReports: { _ in })
        }
    }

    /// Fast unit test on librdkafka's built-in mock cluster.
    @Test func producesWithHeadersOnTheMockCluster() async throws {
        let collector = ReportCollector()
        let config = KafkaClientConfiguration(
            bootstrapServers: "",
            properties: ["test.mock.num.brokers": "1", "bootstrap.servers": ""]
        )
        let producer = try KafkaProducer(
            configuration: config,
            logger: Logger(label: "t"),
            onDeliveryReports: { collector.add($0) }
        )
        for i in 1...50 {
            try producer.produce(
                topic: "mock-topic",
                key: Array("k\(i % 3)".utf8),
                value: Array("v\(i)".utf8),
                headers: [KafkaHeader(name: "h", string: "\(i)")],
                token: UInt64(i)
            )
        }
        let reports = await collector.wait(for: 50)
        #expect(reports.count == 50)
        #expect(reports.allSatisfy { $0.error == nil })
        #expect(Set(reports.map(\.token)) == Set((1...50).map(UInt64.init)))
        #expect(producer.flush(timeoutMilliseconds: 5000))
        producer.close()
    }

    @Test func realBrokerRoundTripKeepsKeyValueAndHeaders() async throws {
        let broker = try TansuBroker()
        let kafka = KafkaClientConfiguration(bootstrapServers: broker.bootstrap)
        let admin = try KafkaAdmin(configuration: kafka)
        #expect(try admin.createTopics([.init(name: "roundtrip", partitions: 3)]) == ["roundtrip"])
        #expect(try admin.createTopics([.init(name: "roundtrip", partitions: 3)]).isEmpty, "already exists is fine")
        #expect(try admin.partitionCount(topic: "roundtrip") == 3)

        let collector = ReportCollector()
        let producer = try KafkaProducer(
            configuration: kafka,
            logger: Logger(label: "t"),
            onDeliveryReports: { collector.add($0) }
        )
        let binary: [UInt8] = [0, 1, 2, 255, 10, 13]
        for i in 1...30 {
            try producer.produce(
                topic: "roundtrip",
                key: Array("key-\(i % 4)".utf8),
                value: Array("value-\(i)".utf8) + binary,
                headers: [KafkaHeader(name: "n", string: "\(i)"), KafkaHeader(name: "empty", value: [])],
                token: UInt64(i)
            )
        }
        let reports = await collector.wait(for: 30)
        #expect(reports.count == 30 && reports.allSatisfy { $0.error == nil })
        producer.close()

        let records = try KafkaConsumer.readAll(configuration: kafka, topics: ["roundtrip"], expected: 30)
        #expect(records.count == 30)
        for r in records {
            let n = Int(r.header("n") ?? "") ?? -1
            #expect(r.value == Array("value-\(n)".utf8) + binary)
            #expect(r.key == Array("key-\(n % 4)".utf8))
            #expect(r.header("empty") == "")
        }
        // Same key → same partition.
        let partitionsByKey = Dictionary(grouping: records, by: { $0.key ?? [] }).mapValues { Set($0.map(\.partition)) }
        #expect(partitionsByKey.values.allSatisfy { $0.count == 1 })
    }

    @Test func unreachableBrokerFailsTheProbe() throws {
        let producer = try KafkaProducer(
            configuration: KafkaClientConfiguration(bootstrapServers: "127.0.0.1:\(Network.freePort())"),
            logger: Logger(label: "t"),
            onDeliveryReports: { _ in }
        )
        #expect(!producer.probeBroker(timeoutMilliseconds: 500))
        producer.close()
    }
}
