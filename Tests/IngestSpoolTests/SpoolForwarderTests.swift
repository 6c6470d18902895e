import Foundation
import IngestCore
import IngestKafka
import IngestTesting
import Logging
import Testing

@testable import IngestSpool

@Suite("Spool forwarder: records reach a real broker and the checkpoint follows", .serialized, .elasticThreads)
struct SpoolForwarderTests {
    let logger = Logger(label: "spool-forwarder-test")

    func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(5000)
        }
        return condition()
    }

    /// Every record the broker acknowledges is checkpointed, also the ones acknowledged just
    /// after a checkpoint was written (they were once left unwritten until the next advance,
    /// which never came when nothing more arrived: a full spool stayed full).
    @Test func everyAcknowledgedRecordIsCheckpointedAndItsSegmentsDeleted() throws {
        let broker = try TansuBroker()
        defer { broker.stop() }
        let kafka = KafkaClientConfiguration(bootstrapServers: broker.bootstrap)
        _ = try KafkaAdmin(configuration: kafka).createTopics([.init(name: "genesys.raw.conversation", partitions: 3)])
        let dir = temporarySpoolDirectory()
        var configuration = SpoolConfiguration(directory: dir)
        configuration.segmentBytes = 8 << 10
        let completions = Completions()
        let log = try SpoolLog(configuration: configuration, logger: logger) { completions.record($0, $1) }
        let forwarder = SpoolForwarder(log: log, kafka: kafka, logger: logger)
        forwarder.start()
        defer {
            forwarder.stop()
            log.close()
        }
        var appended: UInt64 = 0
        // Rounds of one record each, the next one appended right after the previous one was
        // checkpointed: its acknowledgement lands within 100 ms of that checkpoint.
        for round in 0..<20 {
            appended += 1
            try log.append(record(round), token: appended)
            forwarder.notify()
            let target = appended
            #expect(
                waitUntil(seconds: 15) { log.acknowledgedSequence >= target },
                "record \(target) checkpointed (checkpoint at \(log.acknowledgedSequence))"
            )
        }
        // A burst that spans many segments: all of it checkpointed, the covered segments gone.
        for i in 0..<300 {
            appended += 1
            try log.append(record(100 + i, size: 400), token: appended)
        }
        forwarder.notify()
        let total = appended
        #expect(
            waitUntil(seconds: 30) { log.acknowledgedSequence == total },
            "checkpoint \(log.acknowledgedSequence) of \(total)"
        )
        #expect(
            waitUntil(seconds: 5) { segmentFiles(dir).count == 1 },
            "only the open segment is left: \(segmentFiles(dir))"
        )
        #expect(forwarder.lag == 0)
    }
}
