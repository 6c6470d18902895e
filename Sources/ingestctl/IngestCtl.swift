import ArgumentParser
import Foundation
import GenesysSimulator
import IngestCore
import IngestCrypto
import IngestHTTPClient
import IngestKafka
import Logging
import Synchronization

/// `ingestctl`: operator tool — send signed test events, set up topics, read raw topics.
@main
struct IngestCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingestctl",
        abstract: "Operate GenesysIngest: send signed test events, manage topics, inspect records.",
        subcommands: [
            Send.self, Produce.self, Topics.self, Count.self, Tail.self, DLQ.self, Simulate.self, Overflow.self,
            BenchAnalytics.self, BenchConsume.self, Spool.self, Console.self,
        ]
    )
}

struct BrokerOptions: ParsableArguments {
    @Option(help: "Kafka bootstrap servers.")
    var brokers: String = ProcessInfo.processInfo.environment["INGEST_KAFKA_BROKERS"] ?? "127.0.0.1:9092"

    var kafka: KafkaClientConfiguration { KafkaClientConfiguration(bootstrapServers: brokers) }
}

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "POST signed Genesys conversation events (EventBridge envelopes) to a gateway."
    )

    @Option(help: "Gateway source URL (http:// or https://).") var url: String = "http://127.0.0.1:8080/events/genesys"
    @Option(help: "Auth scheme: \(AuthScheme.allCases.map(\.rawValue).joined(separator: ", ")).")
    var auth: String = "genesys-hmac"
    @Option(help: "Secret (or user:password for basic). Defaults to $INGESTCTL_SECRET.")
    var secret: String?
    @Option(help: "Header for the api-key scheme.") var apiKeyHeader: String = "X-API-Key"
    @Option(help: "Number of events.") var count: Int = 1
    @Option(help: "Events per second (0 = as fast as possible).") var rate: Double = 0
    @Option(help: "Approximate body size in bytes.") var size: Int = 1500
    @Option(help: "Send this file's bytes as the body instead of generated events.") var file: String?

    func run() async throws {
        guard let scheme = AuthScheme(rawValue: auth) else { throw ValidationError("unknown auth scheme '\(auth)'") }
        guard let secret = secret ?? ProcessInfo.processInfo.environment["INGESTCTL_SECRET"] else {
            throw ValidationError("give --secret or set INGESTCTL_SECRET")
        }
        guard let parsed = URLComponents(string: url), parsed.scheme == "http" || parsed.scheme == "https" else {
            throw ValidationError("--url must be an http:// or https:// URL")
        }
        let fixed = try file.map { Array(try Data(contentsOf: URL(fileURLWithPath: $0))) }
        // The process's outbound client: one kept-alive connection, proxies and CAs from the
        // environment like every other outbound request of the product.
        let client = HTTPClient.shared
        var statuses: [Int: Int] = [:]
        let pacer = RatePacer(perSecond: rate)
        for i in 0..<count {
            let body = fixed ?? EventFactory.conversationEvent(targetSize: size)
            let headers = RequestSigner.headers(
                scheme: scheme,
                secret: secret,
                body: body,
                apiKeyHeader: apiKeyHeader,
                now: Int64(Date().timeIntervalSince1970)
            )
            let response: HTTPClientResponse
            do {
                response = try await client.execute(
                    HTTPClientRequest(
                        method: "POST",
                        url: url,
                        headers: [("Content-Type", "application/json")] + headers.map { ($0.0, $0.1) },
                        body: body
                    )
                )
            } catch let error as HTTPClientError {
                throw ValidationError("cannot reach the gateway: \(error.message)")
            }
            statuses[response.status, default: 0] += 1
            if count == 1 || response.status != 202 {
                print("\(response.status) \(String(decoding: response.body, as: UTF8.self))")
            }
            let wait = pacer.delay(before: i + 1)
            if wait > .zero { try await Task.sleep(for: wait) }
        }
        let elapsed = pacer.elapsedSeconds()
        let summary = statuses.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        print("sent \(count) in \(String(format: "%.2f", elapsed)) s — \(summary)")
        if statuses.keys.contains(where: { $0 != 202 }) { throw ExitCode(1) }
    }
}

struct Produce: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Produce generated conversation events straight to Kafka (load for worker benchmarks)."
    )
    @OptionGroup var broker: BrokerOptions
    @Option(help: "Topic.") var topic: String = "genesys.raw.conversation"
    @Option(help: "Number of events.") var count: Int = 10_000
    @Option(help: "Distinct conversations (Kafka keys).") var conversations: Int = 1000
    @Option(help: "Approximate body size in bytes.") var size: Int = 1500
    @Option(help: "Produce acd.end events over this many queues instead (analytics load; 0: conversation events).")
    var acdEndQueues: Int = 0

    func run() throws {
        let failures = FailureCount()
        let producer = try KafkaProducer(
            configuration: broker.kafka,
            logger: Logger(label: "ingestctl"),
            onDeliveryReports: { reports in
                failures.count.add(reports.filter { $0.error != nil }.count, ordering: .relaxed)
            }
        )
        let ids = (0..<max(1, conversations)).map { _ in EventFactory.uuid() }
        let stopwatch = RatePacer(perSecond: 0)
        let now = WallClock.nowMilliseconds()
        for i in 0..<count {
            let conversation = ids[i % ids.count]
            let body =
                acdEndQueues > 0
                ? EventFactory.acdEndEvent(
                    conversationID: conversation,
                    queueID: "bench-queue-\(i % acdEndQueues)",
                    waitMilliseconds: (i &* 7919) % 300_000,
                    outcome: i % 9 == 0 ? "ABANDON" : "ANSWERED",
                    eventTime: now + Int64(i / 1000)
                )
                : EventFactory.conversationEvent(conversationID: conversation, targetSize: size)
            // Back off while the local queue is full.
            while !produceOnce(producer, key: Array(conversation.utf8), value: body, token: UInt64(i + 1)) {
                Thread.sleep(forTimeInterval: 0.005)
            }
        }
        guard producer.flush(timeoutMilliseconds: 120_000) else {
            throw ValidationError("not every record was acknowledged")
        }
        producer.close()
        let failed = failures.count.load(ordering: .relaxed)
        print(
            "produced \(count - failed) of \(count) events in \(String(format: "%.1f", stopwatch.elapsedSeconds())) s"
        )
        if failed > 0 { throw ExitCode(1) }
    }

    /// False when the local queue is full; other errors are fatal for the command.
    private func produceOnce(_ producer: KafkaProducer, key: [UInt8], value: [UInt8], token: UInt64) -> Bool {
        let result = Result { () throws(KafkaError) in
            try producer.produce(topic: topic, key: key, value: value, headers: [], token: token)
        }
        switch result {
        case .success: return true
        case .failure(let error):
            if error.isQueueFull { return false }
            FileHandle.standardError.write(Data("produce failed: \(error)\n".utf8))
            Foundation.exit(1)
        }
    }
}

/// Failed deliveries, counted from the producer's report queue.
final class FailureCount: Sendable {
    let count = Atomic<Int>(0)
}

struct Topics: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or describe the raw topics.",
        subcommands: [Create.self, Describe.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the raw topics (existing ones are left alone)."
        )
        @OptionGroup var broker: BrokerOptions
        @Option(help: "Topic prefix.") var prefix: String = "genesys.raw"
        @Option(help: "Partitions per topic.") var partitions: Int32 = 6
        @Option(help: "Replication factor.") var replication: Int32 = 1
        @Option(help: "Create only this topic (full name) instead of the raw set.") var topic: String?

        func run() throws {
            let admin = try KafkaAdmin(configuration: broker.kafka)
            let names = topic.map { [$0] } ?? TopicNaming(prefix: prefix).allTopics
            let created = try admin.createTopics(
                names.map { .init(name: $0, partitions: partitions, replicationFactor: replication) }
            )
            for name in names {
                print(
                    "\(name): \(created.contains(name) ? "created" : "exists") (\(try admin.partitionCount(topic: name)) partitions)"
                )
            }
        }
    }

    struct Describe: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show partition counts of the raw topics.")
        @OptionGroup var broker: BrokerOptions
        @Option(help: "Topic prefix.") var prefix: String = "genesys.raw"

        func run() throws {
            let admin = try KafkaAdmin(configuration: broker.kafka)
            for name in TopicNaming(prefix: prefix).allTopics {
                print("\(name): \(try admin.partitionCount(topic: name)) partitions")
            }
        }
    }
}

struct Count: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Count records in topics by consuming them to the end (high-water marks can be wrong)."
    )
    @OptionGroup var broker: BrokerOptions
    @Option(name: .customLong("topic"), help: "Topic to count (repeatable).") var topics: [String] = []
    @Option(help: "Stop after this many milliseconds without a new record.") var idleMs: Int32 = 3000
    @Flag(help: "Also count distinct values of the ingest-request-id header.") var distinct = false

    func run() throws {
        let names = topics.isEmpty ? TopicNaming().allTopics : topics
        let records = try KafkaConsumer.readAll(configuration: broker.kafka, topics: names, idleMilliseconds: idleMs)
        print(records.count)
        if distinct {
            print(Set(records.compactMap { $0.header("ingest-request-id") }).count)
        }
    }
}

struct Tail: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print records of a topic from the beginning.")
    @OptionGroup var broker: BrokerOptions
    @Option(help: "Topic to read.") var topic: String = "genesys.raw.conversation"
    @Option(help: "Stop after this many records.") var limit: Int = 20

    func run() throws {
        let records = try KafkaConsumer.readAll(configuration: broker.kafka, topics: [topic], idleMilliseconds: 2000)
        for r in records.prefix(limit) {
            let key = r.key.map { String(decoding: $0, as: UTF8.self) } ?? "-"
            let headers = r.headers.map { "\($0.name)=\(String(decoding: $0.value, as: UTF8.self))" }
            print("\(r.topic)/\(r.partition)@\(r.offset) key=\(key) \(headers.joined(separator: " "))")
            print(String(decoding: r.value, as: UTF8.self))
        }
    }
}
