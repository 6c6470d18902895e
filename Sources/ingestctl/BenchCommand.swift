import ArgumentParser
import Foundation
import IngestAnalytics
import IngestCore
import IngestKafka

/// `ingestctl bench-analytics`: events/s through the wait-time aggregation on one core and
/// sketch memory per queue and window (Scripts/bench-analytics runs it on a release build).
struct BenchAnalytics: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-analytics",
        abstract: "Measure the wait-time aggregation: events/s on one core, sketch bytes per queue and window."
    )

    @Option(help: "Events to aggregate.") var events: Int = 5_000_000
    @Option(help: "Distinct queues.") var queues: Int = 100

    func run() throws {
        var aggregator = QueueWaitAggregator()
        let queueIDs = (0..<queues).map { "queue-\($0)" }
        // Pre-generate inputs so the measurement is the aggregation alone.
        var state: UInt64 = 1
        let start: Int64 = 1_794_999_600_000
        var inputs: [WaitObservation] = []
        inputs.reserveCapacity(1_000_000)
        for i in 0..<1_000_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let u = Double(state >> 11) / Double(1 << 53)
            inputs.append(
                WaitObservation(
                    queueID: queueIDs[i % queueIDs.count],
                    mediaType: "voice",
                    eventTimeMilliseconds: start + Int64(i) * 3_600_000 / 1_000_000,
                    waitMilliseconds: -log(1 - u) * 30_000,
                    outcome: u < 0.1 ? .abandoned : .answered
                )
            )
        }
        let clock = ContinuousClock()
        let began = clock.now
        var done = 0
        var shift: Int64 = 0
        while done < events {
            for var o in inputs.prefix(events - done) {
                o.eventTimeMilliseconds += shift
                _ = aggregator.add(o)
            }
            done += min(inputs.count, events - done)
            shift += 3_600_000
            aggregator.evict()
        }
        let seconds =
            Double((clock.now - began).components.attoseconds) / 1e18 + Double((clock.now - began).components.seconds)
        let key = QueueWaitAggregator.QueueKey(queueID: queueIDs[0], mediaType: "voice")
        var bytes: [Int: Int] = [:]
        for minutes in [5, 15, 60] { bytes[minutes] = aggregator.stateBytes(key, minutes: minutes) }
        print(
            String(
                format: "aggregated %d events over %d queues in %.2f s: %.0f events/s on one core",
                events,
                queues,
                seconds,
                Double(events) / seconds
            )
        )
        print("sketch state per queue: 5-min window \(bytes[5]!) B, 15-min \(bytes[15]!) B, 60-min \(bytes[60]!) B")
    }
}

/// `ingestctl bench-consume`: the ceiling for the worker benchmark — librdkafka consuming the
/// topic in a consumer group (the worker's consumer and batch size) and doing nothing else.
/// The clock starts at the first record (the group join is excluded), as in the worker run.
struct BenchConsume: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-consume",
        abstract: "Measure the consume-only ceiling: events/s of a consumer group that does nothing."
    )

    @OptionGroup var broker: BrokerOptions
    @Option(help: "Topic.") var topic: String = "genesys.raw.conversation"
    @Option(help: "Records to read.") var count: Int = 200_000
    @Option(help: "Records per poll (the worker's INGEST_WORKER_BATCH_SIZE).") var batch: Int = 1000
    @Option(help: "Extra librdkafka properties, k=v,k=v (as INGEST_KAFKA_CONSUMER_PROPERTIES).")
    var properties: String = "max.poll.interval.ms=7000,session.timeout.ms=6000"

    func run() throws {
        var kafka = broker.kafka
        for pair in properties.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).trimmingASCIIWhitespace() }
            guard kv.count == 2 else { throw ValidationError("--properties wants k=v pairs, got '\(pair)'") }
            kafka.properties[kv[0]] = kv[1]
        }
        let consumer = try KafkaGroupConsumer(
            configuration: kafka,
            groupID: "bench-consume-\(UUID().uuidString.prefix(8))",
            topics: [topic]
        )
        defer { consumer.close() }
        let clock = ContinuousClock()
        var read = 0
        var started: ContinuousClock.Instant?
        let deadline = clock.now + .seconds(600)
        while read < count && clock.now < deadline {
            let (records, _) = consumer.poll(maxRecords: batch, timeoutMilliseconds: 100)
            if !records.isEmpty && started == nil { started = clock.now }
            read += records.count
        }
        guard let started, read >= count else { throw ValidationError("read only \(read) of \(count) records") }
        let seconds =
            Double((clock.now - started).components.attoseconds) / 1e18
            + Double((clock.now - started).components.seconds)
        print(String(format: "consumed %d records in %.2f s: %.0f events/s", read, seconds, Double(read) / seconds))
    }
}
