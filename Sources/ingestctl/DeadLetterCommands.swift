import ArgumentParser
import Foundation
import IngestCore
import IngestCrypto
import IngestKafka
import IngestWorker
import Logging
import Synchronization

/// `ingestctl dlq …`: inspect and replay dead-lettered events.
struct DLQ: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "List, show, replay and count dead-lettered events (<topic>.dlq).",
        subcommands: [List.self, Show.self, Replay.self, Stats.self]
    )

    /// Which dead letters a command works on.
    struct Filters: ParsableArguments {
        @Option(
            name: .customLong("topic"),
            help: "Dead-letter or origin topic (repeatable; default: every raw topic's .dlq)."
        )
        var topics: [String] = []
        @Option(help: "Topic prefix of the raw topics.") var prefix: String = "genesys.raw"
        @Option(help: "Only this error class (poison, retryable, delay).") var errorClass: String?
        @Option(help: "Only events of this conversation id.") var conversation: String?
        @Option(help: "Only dead-lettered at or after this time (ISO 8601 or epoch ms).") var since: String?
        @Option(help: "Only dead-lettered before this time (ISO 8601 or epoch ms).") var until: String?

        var dlqTopics: [String] {
            let base = topics.isEmpty ? TopicNaming(prefix: prefix).allTopics : topics
            return base.map { $0.hasSuffix(".dlq") ? $0 : $0 + ".dlq" }
        }

        func validate() throws {
            if let since, Self.parseTime(since) == nil {
                throw ValidationError("--since '\(since)' is not ISO 8601 or epoch ms")
            }
            if let until, Self.parseTime(until) == nil {
                throw ValidationError("--until '\(until)' is not ISO 8601 or epoch ms")
            }
        }

        static func parseTime(_ text: String) -> Int64? {
            if let ms = Int64(text) { return ms }
            return EventFields.isoMilliseconds(text)
        }

        func matches(_ r: KafkaRecord) -> Bool {
            if let errorClass, r.header("dlq-error-class") != errorClass { return false }
            let failedAt = Int64(r.header("dlq-last-failure-at") ?? "") ?? r.timestamp
            if let since, let t = Self.parseTime(since), failedAt < t { return false }
            if let until, let t = Self.parseTime(until), failedAt >= t { return false }
            if let conversation {
                let derived = try? DedupKey.derive(from: r.value, digest: SHA256Digest.hex)
                let key = r.key.map { String(decoding: $0, as: UTF8.self) }
                if derived?.conversationID != conversation && key != conversation { return false }
            }
            return true
        }

        /// Reads the matching dead letters (topics that do not exist are skipped).
        func read(_ broker: BrokerOptions) throws -> [KafkaRecord] {
            let admin = try KafkaAdmin(configuration: broker.kafka)
            let existing = try dlqTopics.filter { try admin.partitionCount(topic: $0) > 0 }
            guard !existing.isEmpty else { return [] }
            return try KafkaConsumer.readAll(configuration: broker.kafka, topics: existing, idleMilliseconds: 2500)
                .filter(matches)
        }
    }

    static func time(_ ms: String?) -> String {
        guard let ms, let v = Double(ms) else { return "-" }
        return ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: v / 1000))
    }

    static func json(_ r: KafkaRecord) -> [String: Any] {
        var headers: [String: String] = [:]
        for h in r.headers { headers[h.name] = String(decoding: h.value, as: UTF8.self) }
        return [
            "topic": r.topic, "partition": Int(r.partition), "offset": Int(r.offset),
            "key": r.key.map { String(decoding: $0, as: UTF8.self) } ?? NSNull(), "headers": headers,
            "value": String(decoding: r.value, as: UTF8.self),
        ]
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters (table or JSON lines).")
        @OptionGroup var broker: BrokerOptions
        @OptionGroup var filters: Filters
        @Flag(help: "One JSON object per line.") var json = false

        func run() throws {
            let records = try filters.read(broker)
            if json {
                for r in records {
                    let data = try JSONSerialization.data(withJSONObject: DLQ.json(r), options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                }
                return
            }
            print("LOCATION\tORIGIN\tCLASS\tATTEMPTS\tLAST FAILURE\tKEY\tERROR")
            for r in records {
                let origin =
                    "\(r.header(DeadLetterHeader.originTopic) ?? "?")/\(r.header("dlq-origin-partition") ?? "?")@\(r.header("dlq-origin-offset") ?? "?")"
                print(
                    [
                        "\(r.topic)/\(r.partition)@\(r.offset)", origin, r.header("dlq-error-class") ?? "-",
                        r.header("dlq-attempts") ?? "-", DLQ.time(r.header("dlq-last-failure-at")),
                        r.key.map { String(decoding: $0, as: UTF8.self) } ?? "-", r.header("dlq-error-message") ?? "",
                    ].joined(separator: "\t")
                )
            }
            print("\(records.count) dead letter(s)")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one dead letter: headers and pretty-printed value."
        )
        @OptionGroup var broker: BrokerOptions
        @Option(help: "Dead-letter topic.") var topic: String
        @Option(help: "Partition.") var partition: Int32
        @Option(help: "Offset.") var offset: Int64

        func run() throws {
            let dlqTopic = topic.hasSuffix(".dlq") ? topic : topic + ".dlq"
            let records = try KafkaConsumer.readAll(
                configuration: broker.kafka,
                topics: [dlqTopic],
                idleMilliseconds: 2500
            )
            guard let r = records.first(where: { $0.partition == partition && $0.offset == offset }) else {
                throw ValidationError("no record at \(dlqTopic)/\(partition)@\(offset)")
            }
            print(
                "\(r.topic)/\(r.partition)@\(r.offset)  key=\(r.key.map { String(decoding: $0, as: UTF8.self) } ?? "-")"
            )
            for h in r.headers {
                let value = String(decoding: h.value, as: UTF8.self)
                print("  \(h.name): \(h.name.hasSuffix("-at") ? "\(value) (\(DLQ.time(value)))" : value)")
            }
            if let object = try? JSONSerialization.jsonObject(with: Data(r.value)),
                let pretty = try? JSONSerialization.data(
                    withJSONObject: object,
                    options: [.prettyPrinted, .sortedKeys]
                )
            {
                print(String(decoding: pretty, as: UTF8.self))
            } else {
                print(String(decoding: r.value, as: UTF8.self))
            }
        }
    }

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Re-publish dead letters to their origin topic (same key and value, the product's headers, plus dlq-replayed-from)."
        )
        @OptionGroup var broker: BrokerOptions
        @OptionGroup var filters: Filters
        @Flag(help: "Show what would be replayed; publish nothing.") var dryRun = false
        @Option(help: "Records per second (0 = unlimited).") var rate: Double = 0
        @Option(help: "Who is replaying (recorded in the audit topic).")
        var actor: String = ProcessInfo.processInfo.environment["USER"] ?? "unknown"
        @Option(help: "Audit topic.") var auditTopic: String = "ingest.dlq.audit"

        func run() throws {
            let records = try filters.read(broker)
            if dryRun {
                for r in records {
                    print(
                        "would replay \(r.topic)/\(r.partition)@\(r.offset) → \(r.header(DeadLetterHeader.originTopic) ?? "?")"
                    )
                }
                print("dry run: \(records.count) record(s) would be replayed; nothing published")
                return
            }
            let failures = LockedValue<[String]>([])
            let producer = try KafkaProducer(
                configuration: broker.kafka,
                logger: Logger(label: "ingestctl"),
                onDeliveryReports: { reports in
                    for r in reports where r.error != nil {
                        failures.withLock { $0.append("record \(r.token): \(r.error!.message)") }
                    }
                }
            )
            let pacer = RatePacer(perSecond: rate)
            for (i, r) in records.enumerated() {
                guard let replay = DeadLetterRedrive.replay(of: r) else { continue }
                try producer.produce(
                    topic: replay.topic,
                    key: replay.key,
                    value: replay.value,
                    headers: replay.headers,
                    token: UInt64(i + 1)
                )
                progress(i + 1, records.count)
                let wait = pacer.delay(before: i + 1)
                if wait > .zero { Thread.sleep(forTimeInterval: wait.inSeconds) }
            }
            let audit: [String: Any] = [
                "actor": actor, "at": ISO8601DateFormatter().string(from: Date()), "count": records.count,
                "records": records.map { "\($0.topic)/\($0.partition)@\($0.offset)" },
                "filters": [
                    "topics": filters.dlqTopics, "errorClass": filters.errorClass as Any,
                    "conversation": filters.conversation as Any, "since": filters.since as Any,
                    "until": filters.until as Any,
                ],
            ]
            let auditBytes = Array(try JSONSerialization.data(withJSONObject: audit, options: [.sortedKeys]))
            try producer.produce(
                topic: auditTopic,
                key: Array(actor.utf8),
                value: auditBytes,
                headers: [],
                token: UInt64.max >> 1
            )
            let flushed = producer.flush(timeoutMilliseconds: 30_000)
            producer.close()
            FileHandle.standardError.write(Data("\n".utf8))
            let failed = failures.withLock { $0 }
            guard flushed, failed.isEmpty else {
                throw ValidationError(
                    "replay incomplete: \(failed.count) failed, flushed=\(flushed): \(failed.prefix(3))"
                )
            }
            print("replayed \(records.count) record(s); audit record written to \(auditTopic)")
        }

        private func progress(_ done: Int, _ total: Int) {
            let width = 30
            let filled = total == 0 ? width : done * width / total
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            FileHandle.standardError.write(Data("\r[\(bar)] \(done)/\(total)".utf8))
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Count dead letters by topic and error class.")
        @OptionGroup var broker: BrokerOptions
        @OptionGroup var filters: Filters

        func run() throws {
            let records = try filters.read(broker)
            var counts: [String: Int] = [:]
            for r in records { counts["\(r.topic)\t\(r.header("dlq-error-class") ?? "-")", default: 0] += 1 }
            print("TOPIC\tCLASS\tCOUNT")
            for (k, v) in counts.sorted(by: { $0.key < $1.key }) { print("\(k)\t\(v)") }
            print("total\t\t\(records.count)")
        }
    }
}
