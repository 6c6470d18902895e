import Foundation
import IngestCore
import IngestTesting
import Logging
import Testing

@testable import IngestSpool

/// Collects completions of appends.
final class Completions: Sendable {
    let durable = LockedValue<[UInt64]>([])
    let failed = LockedValue<[UInt64: String]>([:])

    func record(_ tokens: [UInt64], _ error: SpoolError?) {
        if let error {
            failed.withLock { for t in tokens { $0[t] = error.description } }
        } else {
            durable.withLock { $0 += tokens }
        }
    }

    func wait(for count: Int, seconds: Double = 20) -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if durable.withLock({ $0.count }) + failed.withLock({ $0.count }) >= count { return true }
            usleep(1000)
        }
        return false
    }
}

func temporarySpoolDirectory() -> String {
    let dir = NSTemporaryDirectory() + "spool-test-" + UUID().uuidString
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

func record(_ i: Int, size: Int = 200) -> SpoolRecord {
    SpoolRecord(
        topic: "genesys.raw.conversation",
        key: i % 5 == 0 ? nil : Array("conv-\(i % 17)".utf8),
        value: Array("{\"n\":\(i),\"pad\":\"\(String(repeating: "x", count: size))\"}".utf8),
        headers: [("ingest-request-id", Array("r-\(i)".utf8)), ("content-type", Array("application/json".utf8))]
    )
}

func readAll(_ log: SpoolLog, after: UInt64 = 0) -> [SpoolRecord] {
    let reader = SpoolReader(log: log, after: after)
    var out: [SpoolRecord] = []
    while true {
        let batch = reader.next(maxRecords: 500)
        if batch.isEmpty { return out }
        out += batch
    }
}

func segmentFiles(_ dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".spool") }.sorted()
}

@Suite("Spool write-ahead log: group commit, recovery, checkpoints", .elasticThreads)
struct SpoolLogTests {
    let logger = Logger(label: "spool-test")

    @Test func appendsFromManyThreadsBecomeDurableAndReadBackInOrder() throws {
        let dir = temporarySpoolDirectory()
        let done = Completions()
        var configuration = SpoolConfiguration(directory: dir)
        configuration.segmentBytes = 64 << 10  // several segments
        let log = try SpoolLog(configuration: configuration, logger: logger, onDurable: done.record)
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for i in 0..<500 { try? log.append(record(t * 1000 + i), token: UInt64(t * 1000 + i + 1)) }
        }
        #expect(done.wait(for: 2000))
        #expect(done.durable.withLock { Set($0) }.count == 2000 && done.failed.withLock { $0.isEmpty })
        let stats = log.stats
        #expect(stats.syncs < 2000, "group commit: \(stats.syncs) syncs for 2000 records")
        #expect(stats.durableSequence == 2000 && stats.segments > 1)
        let records = readAll(log)
        #expect(records.map(\.sequence) == Array(1...2000))
        let values = Set(records.map { String(decoding: $0.value, as: UTF8.self) })
        #expect(values.count == 2000)
        log.close()
        // Reopened: the same records, nothing acknowledged yet.
        let again = try SpoolLog(configuration: configuration, logger: logger) { _, _ in }
        #expect(again.recovery.pendingRecords == 2000 && again.recovery.tornBytes == 0)
        #expect(readAll(again) == records)
        again.close()
    }

    @Test func aTornLastRecordIsCutOffAndAppendsContinue() throws {
        let dir = temporarySpoolDirectory()
        let done = Completions()
        let configuration = SpoolConfiguration(directory: dir)
        let log = try SpoolLog(configuration: configuration, logger: logger, onDurable: done.record)
        for i in 0..<10 { try log.append(record(i), token: UInt64(i + 1)) }
        #expect(done.wait(for: 10))
        log.close()
        let file = dir + "/" + segmentFiles(dir).last!
        let size = try FileManager.default.attributesOfItem(atPath: file)[.size] as! Int
        #expect(truncate(file, off_t(size - 30)) == 0, "tear the last record")

        let reopened = try SpoolLog(configuration: configuration, logger: logger, onDurable: done.record)
        #expect(reopened.recovery.tornBytes > 0 && reopened.recovery.quarantinedSegments.isEmpty)
        #expect(readAll(reopened).map(\.sequence) == Array(1...9))
        try reopened.append(record(99), token: 99)
        #expect(done.wait(for: 11))
        #expect(readAll(reopened).map(\.sequence) == Array(1...10), "the torn record's sequence is reused")
        reopened.close()
    }

    /// The checkpoint is overwritten in place in alternating slots: a torn write leaves the
    /// previous checkpoint readable (older is safe: a few records are sent again), and the
    /// first layout (a decimal number) is still read and upgraded.
    @Test func aTornCheckpointFallsBackToThePreviousOne() throws {
        let dir = temporarySpoolDirectory()
        var checkpoint = try SpoolCheckpoint(directory: dir, sequence: 0)
        try checkpoint.write(41)
        try checkpoint.write(42)
        #expect(SpoolCheckpoint.read(directory: dir) == 42)
        // Tear the slot written last (the second one): the first still says 41.
        let f = open(dir + "/acknowledged", O_WRONLY)
        var garbage: [UInt8] = [0xFF, 0x00, 0x13]
        #expect(pwrite(f, &garbage, 3, 512 + 5) == 3)
        close(f)
        #expect(SpoolCheckpoint.read(directory: dir) == 41)
        // The file keeps its size: writing needs no new disk space.
        try checkpoint.write(43)
        #expect(SpoolCheckpoint.read(directory: dir) == 43)
        #expect((try FileManager.default.attributesOfItem(atPath: dir + "/acknowledged")[.size] as? Int) == 4096)
        checkpoint.close()

        let legacy = temporarySpoolDirectory()
        #expect(FileManager.default.createFile(atPath: legacy + "/acknowledged", contents: Data("17\n".utf8)))
        #expect(SpoolCheckpoint.read(directory: legacy) == 17)
        let log = try SpoolLog(configuration: SpoolConfiguration(directory: legacy), logger: logger) { _, _ in }
        #expect(log.acknowledgedSequence == 17)
        log.close()
        #expect(SpoolCheckpoint.read(directory: legacy) == 17, "upgraded in place, same value")
        #expect((try FileManager.default.attributesOfItem(atPath: legacy + "/acknowledged")[.size] as? Int) == 4096)
    }

    @Test func aCorruptedByteQuarantinesTheSegmentAndKeepsTheRest() throws {
        let dir = temporarySpoolDirectory()
        let done = Completions()
        let configuration = SpoolConfiguration(directory: dir)
        let log = try SpoolLog(configuration: configuration, logger: logger, onDurable: done.record)
        for i in 0..<20 { try log.append(record(i), token: UInt64(i + 1)) }
        #expect(done.wait(for: 20))
        log.close()
        let name = segmentFiles(dir).first!
        let path = dir + "/" + name
        var bytes = Array(FileManager.default.contents(atPath: path)!)
        bytes[bytes.count / 2] ^= 0xFF  // a flipped byte inside some record
        FileManager.default.createFile(atPath: path, contents: Data(bytes))

        let reopened = try SpoolLog(configuration: configuration, logger: logger) { _, _ in }
        #expect(reopened.recovery.quarantinedSegments == [name])
        #expect(reopened.recovery.corruptBytes > 0)
        #expect(FileManager.default.fileExists(atPath: dir + "/quarantine/" + name), "the original is kept aside")
        let sequences = readAll(reopened).map(\.sequence)
        #expect(sequences.count == 19, "one record lost, the others kept: \(sequences)")
        #expect(sequences == sequences.sorted() && sequences.first == 1 && sequences.last == 20)
        reopened.close()
    }

    @Test func aFullSpoolRefusesUntilAcknowledgementsFreeSpace() throws {
        let dir = temporarySpoolDirectory()
        let done = Completions()
        var configuration = SpoolConfiguration(directory: dir)
        configuration.maxBytes = 40_000
        configuration.segmentBytes = 8_000
        let log = try SpoolLog(configuration: configuration, logger: logger, onDurable: done.record)
        var accepted = 0
        var refusal: SpoolError?
        for i in 0..<1000 {
            do {
                try log.append(record(i), token: UInt64(i + 1))
                accepted += 1
                if accepted % 10 == 0 { _ = done.wait(for: accepted) }
            } catch {
                refusal = error
                break
            }
        }
        guard case .full = refusal else {
            Issue.record("expected a full spool, got \(String(describing: refusal))")
            return
        }
        #expect(done.wait(for: accepted))
        #expect(accepted > 50 && accepted < 1000)
        #expect(throws: SpoolError.self) { try log.append(record(5000), token: 5000) }
        let before = segmentFiles(dir).count
        try log.acknowledge(through: UInt64(accepted))
        #expect(segmentFiles(dir).count < before, "acknowledged segments are deleted")
        #expect(SpoolCheckpoint.read(directory: dir) == UInt64(accepted), "the checkpoint is durable")
        try log.append(record(5001), token: 5001)
        #expect(done.wait(for: accepted + 1))
        log.close()
        // After a restart only the unacknowledged record is left.
        let reopened = try SpoolLog(configuration: configuration, logger: logger) { _, _ in }
        #expect(readAll(reopened, after: reopened.acknowledgedSequence).map(\.sequence) == [UInt64(accepted + 1)])
        reopened.close()
    }

    @Test func framesRoundTripAndDamagedFramesAreErrorsNotTraps() {
        var out: [UInt8] = []
        let r = SpoolRecord(sequence: 7, topic: "t", key: nil, value: [1, 2, 3], headers: [("h", [9])])
        SpoolFrame.encode(r, into: &out)
        out.withUnsafeBytes { all in
            #expect(SpoolFrame.decode(all) == .record(r, frameBytes: out.count))
            #expect(SpoolFrame.decode(UnsafeRawBufferPointer(rebasing: all[0..<(all.count - 1)])) == .incomplete)
        }
        var damaged = out
        damaged[damaged.count - 1] ^= 1
        damaged.withUnsafeBytes { #expect(SpoolFrame.decode($0) == .corrupt("checksum mismatch")) }
        var huge = out
        huge[4] = 0xFF
        huge[5] = 0xFF
        huge[6] = 0xFF
        huge[7] = 0x7F
        huge.withUnsafeBytes {
            guard case .corrupt = SpoolFrame.decode($0) else {
                Issue.record("an impossible length must be corruption")
                return
            }
        }
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283, "the CRC-32C check value")
    }

    /// The instruction path and the sliced table agree on every length and alignment, chained
    /// or not (a record's checksum must not depend on the CPU that wrote it).
    @Test func checksumPathsAgree() {
        var rng = SystemRandomNumberGenerator()
        let data = (0..<4099).map { _ in UInt8.random(in: 0...255, using: &rng) }
        data.withUnsafeBytes { all in
            #expect(CRC32C.softwareChecksum(UnsafeRawBufferPointer(rebasing: all[0..<9])) != 0)
            for start in 0..<9 {
                for length in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1500, 4090] where start + length <= all.count {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                    #expect(CRC32C.checksum(slice) == CRC32C.softwareChecksum(slice), "start \(start) length \(length)")
                    let half = length / 2
                    let first = UnsafeRawBufferPointer(rebasing: all[start..<(start + half)])
                    let second = UnsafeRawBufferPointer(rebasing: all[(start + half)..<(start + length)])
                    #expect(CRC32C.checksum(second, seed: CRC32C.checksum(first)) == CRC32C.checksum(slice))
                }
            }
        }
        "123456789".utf8.withContiguousStorageIfAvailable {
            #expect(CRC32C.softwareChecksum(UnsafeRawBufferPointer($0)) == 0xE306_9283)
        }
    }
}
