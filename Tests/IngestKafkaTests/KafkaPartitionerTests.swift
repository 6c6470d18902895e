import Foundation
import IngestCore
import IngestTesting
import Logging
import Testing

@testable import IngestKafka

@Suite("Partitioner: murmur2 like the Java client and librdkafka")
struct KafkaPartitionerTests {
    /// The Java client's own test vectors (`UtilsTest.testMurmur2`).
    @Test func murmur2MatchesTheJavaClientsVectors() {
        let cases: [(String, Int32)] = [
            ("21", -973_932_308), ("foobar", -790_332_482), ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971), ("abc", 479_470_107),
        ]
        for (key, expected) in cases {
            #expect(Int32(bitPattern: KafkaPartitioner.murmur2(Array(key.utf8))) == expected, "\(key)")
        }
    }

    /// The product's producers place keyed records exactly where `KafkaPartitioner` says:
    /// librdkafka's `murmur2_random`, on a real broker, for 300 queue-id-like keys.
    @Test func producersPlaceKeysWhereThePartitionerSays() async throws {
        let broker = try TansuBroker()
        let kafka = KafkaClientConfiguration(bootstrapServers: broker.bootstrap)
        try KafkaAdmin(configuration: kafka).createTopics([.init(name: "placed", partitions: 6)])
        let producer = try AcknowledgedProducer(configuration: kafka, logger: Logger(label: "p"))
        let keys = (0..<300).map { i in i % 3 == 0 ? "q-\(i)" : UUID().uuidString.lowercased() }
        for key in keys {
            try await producer.send(topic: "placed", key: Array(key.utf8), value: Array("v".utf8), headers: [])
        }
        producer.close()
        let records = try KafkaConsumer.readAll(configuration: kafka, topics: ["placed"], expected: keys.count)
        #expect(records.count == keys.count)
        #expect(Set(records.map(\.partition)).count == 6, "keys spread over every partition")
        for r in records {
            let key = try #require(r.key)
            #expect(r.partition == KafkaPartitioner.partition(key: key, partitionCount: 6))
        }
    }
}
