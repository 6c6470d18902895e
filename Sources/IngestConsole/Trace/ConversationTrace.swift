import Dispatch
import Foundation
import IngestCore
import IngestCrypto
import IngestKafka

/// Everything the product holds about one conversation, in time order: its records on the
/// raw topics, their dead letters, the enriched record, the analytics waits — each with how
/// the workers handled it (the idempotency store's state of each handler's key: `done`,
/// `claimed`, or nothing: not handled yet, or released after a failure). The question ops ask
/// ("why was this call not enriched?"), which no Kafka console can answer.
struct ConversationTrace {
    struct Entry {
        var record: KafkaRecord
        var topicName: String?
        /// Handler → `done` / `claimed`.
        var handled: [String: String]
        var dedupKey: String?
    }

    /// Scans `topics` for records of `conversationID` (by key, or by the conversation the
    /// record names), at most `limit` records read per topic set.
    static func collect(
        conversationID: String,
        topics: [String],
        source: any DeadLetterSource,
        limit: Int
    ) throws -> (entries: [Entry], truncated: Bool) {
        var entries: [Entry] = []
        let scan = try source.scan(topics: topics, limit: limit) { r in
            let key = r.key.map { String(decoding: $0, as: UTF8.self) }
            let derived = try? DedupKey.derive(
                from: r.value,
                producedEventID: r.header(IngestHeader.producedEventID),
                digest: SHA256Digest.hex
            )
            guard key == conversationID || derived?.conversationID == conversationID else { return true }
            if entries.count < 2000 {
                entries.append(Entry(record: r, topicName: derived?.topicName, handled: [:], dedupKey: derived?.key))
            }
            return true
        }
        entries.sort {
            ($0.record.timestamp, $0.record.topic, $0.record.offset) < (
                $1.record.timestamp, $1.record.topic, $1.record.offset
            )
        }
        return (entries, scan.truncated)
    }

    /// Fills each entry's handling state from `store` for `handlers` (dead letters and the
    /// product's own output topics are looked up too: a replayed dead letter has the key of
    /// its original event).
    static func handling(
        _ entries: inout [Entry],
        handlers: [String],
        store: any IdempotencyStore
    ) throws {
        let keys = entries.compactMap(\.dedupKey).flatMap { k in handlers.map { "\($0)|\(k)" } }
        let states = try blocking { try await store.keyStates(keys) }
        for i in entries.indices {
            guard let k = entries[i].dedupKey else { continue }
            for h in handlers { if let s = states["\(h)|\(k)"] { entries[i].handled[h] = s } }
        }
    }
}

/// Runs `work` to completion from a thread that may block (the console's request queue, not
/// the cooperative pool).
func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let result = LockedValue<Result<T, any Error>?>(nil)
    Task {
        do {
            let value = try await work()
            result.withLock { $0 = .success(value) }
        } catch {
            result.withLock { $0 = .failure(error) }
        }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0! }.get()
}
