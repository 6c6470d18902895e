import Foundation
import IngestCore
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Where and how big the spool is.
public struct SpoolConfiguration: Sendable {
    public var directory: String
    /// High-water mark: appends beyond it are refused (the gateway answers 503).
    public var maxBytes: Int64 = 1 << 30
    /// A segment is closed once it reaches this size (it may exceed it by one sync batch).
    public var segmentBytes: Int64 = 64 << 20
    /// At most this much is written per `fdatasync` (a batch is everything appended while the
    /// previous sync ran, up to this).
    public var maxBatchBytes = 8 << 20

    public init(directory: String) {
        self.directory = directory
    }
}

/// Why the spool did not take or keep a record.
public enum SpoolError: Error, Equatable, CustomStringConvertible {
    /// The high-water mark is reached: retry later (the forwarder frees space as Kafka acks).
    case full(bytes: Int64, limit: Int64)
    case tooLarge
    /// A write or sync failed (disk full, I/O error): the batch is not durable.
    case io(String)
    case closed

    public var description: String {
        switch self {
        case .full(let bytes, let limit): "spool full (\(bytes) of \(limit) bytes)"
        case .tooLarge: "record too large for the spool"
        case .io(let message): "spool write failed: \(message)"
        case .closed: "spool closed"
        }
    }
}

/// What recovery found when the spool was opened.
public struct SpoolRecovery: Sendable, Equatable {
    /// Bytes of a torn last record, truncated.
    public var tornBytes = 0
    /// Segments with corrupted records: moved to `quarantine/`, their readable records kept.
    public var quarantinedSegments: [String] = []
    /// Corrupted bytes skipped in those segments (the records in them are lost).
    public var corruptBytes = 0
    /// Records found that Kafka has not acknowledged yet.
    public var pendingRecords = 0
}

/// Sizes and positions, for metrics and `ingestctl spool stats`.
public struct SpoolStats: Sendable, Equatable {
    public var segments: Int
    public var bytes: Int64
    /// Sequence of the last record made durable.
    public var durableSequence: UInt64
    /// Sequence up to which Kafka acknowledged everything (made durable too).
    public var acknowledgedSequence: UInt64
    public var syncs: Int
    public var syncedRecords: Int
}

/// The spool's write-ahead log: segment files of checksummed records in one directory, a
/// group-committing writer (one `fdatasync` per batch), and a checkpoint of what Kafka has
/// acknowledged. A record is *durable* — and its append is completed — only after the sync
/// that covers it. Segments are deleted once every record in them is acknowledged, after the
/// checkpoint that says so is itself durable.
///
/// Layout: `segment-<first sequence, 20 digits>.spool`, `acknowledged` (the checkpoint),
/// `quarantine/` (segments that held corrupted records).
///
/// Threads: ``append(_:token:)`` from any thread; one writer thread writes and syncs; the
/// forwarder reads with ``SpoolReader`` and calls ``acknowledge(through:)``. Shared state is
/// behind `lock`.
public final class SpoolLog: @unchecked Sendable {
    public typealias Completion = @Sendable (_ tokens: [UInt64], _ error: SpoolError?) -> Void

    struct Segment {
        var firstSequence: UInt64
        var lastSequence: UInt64
        var path: String
        /// Bytes known durable (readable by the forwarder).
        var durableBytes: Int64
    }

    private struct State {
        var segments: [Segment] = []
        var pending: [UInt8] = []
        var pendingTokens: [UInt64] = []
        var pendingLastSequence: UInt64 = 0
        var nextSequence: UInt64 = 1
        var bytes: Int64 = 0
        var durableSequence: UInt64 = 0
        var acknowledged: UInt64 = 0
        var closing = false
        var closed = false
        var syncs = 0
        var syncedRecords = 0
        var lastError: String?
    }

    public let configuration: SpoolConfiguration
    public let recovery: SpoolRecovery
    private let logger: Logger
    private let onDurable: Completion
    private let condition = NSCondition()
    private var state = State()  // guarded by `condition`
    /// The open segment; used by the writer thread only (and by init/close).
    private var fd: Int32 = -1
    private var writer: Thread?
    private let writerDone = DispatchSemaphore(value: 0)
    /// Written by `acknowledge` only, under `checkpointLock`.
    private var checkpoint: SpoolCheckpoint
    private let checkpointLock = NSLock()

    public init(configuration: SpoolConfiguration, logger: Logger, onDurable: @escaping Completion) throws(SpoolError) {
        self.configuration = configuration
        self.logger = logger
        self.onDurable = onDurable
        let dir = configuration.directory
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw .io("cannot create \(dir): \(error.localizedDescription)")
        }
        let (recovered, report) = try Self.recover(directory: dir, logger: logger)
        recovery = report
        checkpoint = try SpoolCheckpoint(directory: dir, sequence: recovered.acknowledged)
        state.acknowledged = recovered.acknowledged
        state.segments = recovered.segments
        state.nextSequence = recovered.lastSequence + 1
        state.durableSequence = recovered.lastSequence
        state.bytes = recovered.segments.reduce(0) { $0 + $1.durableBytes }
        try openNewSegment()
        let thread = Thread { [unowned self] in self.writeLoop() }
        thread.name = "genesys-ingest.spool.writer"
        writer = thread
        thread.start()
    }

    deinit { close() }

    // MARK: - Appending

    /// Queues `record` for the next sync; `onDurable` reports `token` once it is on disk (or
    /// failed). Throws at once when the spool is full or closed.
    public func append(_ record: SpoolRecord, token: UInt64) throws(SpoolError) {
        guard SpoolFrame.fits(record) else { throw .tooLarge }
        condition.lock()
        defer { condition.unlock() }
        guard !state.closing else { throw .closed }
        let projected = state.bytes + Int64(state.pending.count + record.value.count + 256)
        guard projected <= configuration.maxBytes else {
            throw .full(bytes: state.bytes + Int64(state.pending.count), limit: configuration.maxBytes)
        }
        var r = record
        r.sequence = state.nextSequence
        state.nextSequence += 1
        SpoolFrame.encode(r, into: &state.pending)
        state.pendingTokens.append(token)
        state.pendingLastSequence = r.sequence
        condition.signal()
    }

    /// Stops accepting, syncs what is queued, stops the writer.
    public func close() {
        condition.lock()
        guard !state.closing else {
            condition.unlock()
            return
        }
        state.closing = true
        condition.broadcast()
        condition.unlock()
        if writer != nil { writerDone.wait() }
        condition.lock()
        state.closed = true
        condition.unlock()
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
        checkpointLock.withLock { checkpoint.close() }
    }

    public var stats: SpoolStats {
        condition.lock()
        defer { condition.unlock() }
        return SpoolStats(
            segments: state.segments.count,
            bytes: state.bytes + Int64(state.pending.count),
            durableSequence: state.durableSequence,
            acknowledgedSequence: state.acknowledged,
            syncs: state.syncs,
            syncedRecords: state.syncedRecords
        )
    }

    /// The last write error, until a write succeeds again (readiness reports it).
    public var writeError: String? {
        condition.lock()
        defer { condition.unlock() }
        return state.lastError
    }

    // MARK: - The writer thread

    private func writeLoop() {
        while true {
            condition.lock()
            while state.pending.isEmpty && !state.closing { condition.wait() }
            if state.pending.isEmpty && state.closing {
                condition.unlock()
                writerDone.signal()
                return
            }
            let batch = state.pending
            let tokens = state.pendingTokens
            let last = state.pendingLastSequence
            state.pending = []
            state.pendingTokens = []
            let first = last - UInt64(tokens.count) + 1
            condition.unlock()

            let error = writeAndSync(batch, first: first, last: last)
            condition.lock()
            if let error {
                state.lastError = error.description
            } else {
                state.lastError = nil
                state.durableSequence = last
                state.bytes += Int64(batch.count)
                state.syncs += 1
                state.syncedRecords += tokens.count
            }
            condition.unlock()
            onDurable(tokens, error)
        }
    }

    /// Writes one batch to the open segment (rotating first if it is full) and syncs it.
    private func writeAndSync(_ batch: [UInt8], first: UInt64, last: UInt64) -> SpoolError? {
        condition.lock()
        let current = state.segments.last
        // After a failed write (a full disk) an open segment that Kafka has acknowledged
        // entirely is closed, so it can be deleted and its space reused: otherwise a spool
        // whose data all sits in its open segment could never free anything.
        let reclaim =
            state.lastError != nil
            && current.map { $0.durableBytes > 0 && $0.lastSequence <= state.acknowledged }
                ?? false
        condition.unlock()
        if let current, current.durableBytes >= configuration.segmentBytes || reclaim {
            do { try openNewSegment() } catch { return error }
        }
        if reclaim { deleteAcknowledgedSegments() }
        condition.lock()
        let before = state.segments.last?.durableBytes ?? 0
        condition.unlock()
        var written = 0
        while written < batch.count {
            let n = batch.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let message = String(cString: strerror(errno))
                // Leave no torn record behind: the next batch starts at a frame boundary.
                _ = ftruncate(fd, off_t(before))
                _ = lseek(fd, off_t(before), SEEK_SET)
                return .io(message)
            }
            written += n
        }
        if fdatasync(fd) != 0 {
            let message = String(cString: strerror(errno))
            _ = ftruncate(fd, off_t(before))
            _ = lseek(fd, off_t(before), SEEK_SET)
            return .io("fdatasync: \(message)")
        }
        condition.lock()
        var segment = state.segments.removeLast()
        if segment.durableBytes == 0 { segment.firstSequence = first }
        segment.lastSequence = last
        segment.durableBytes += Int64(batch.count)
        state.segments.append(segment)
        condition.unlock()
        return nil
    }

    /// Opens a fresh segment named after the next sequence and makes its name durable.
    private func openNewSegment() throws(SpoolError) {
        condition.lock()
        let next = state.nextSequence
        if let last = state.segments.last, last.durableBytes == 0 {
            condition.unlock()
            return  // the open one is still empty
        }
        condition.unlock()
        let path = Self.segmentPath(configuration.directory, firstSequence: next)
        let newFD = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard newFD >= 0 else { throw .io("cannot create \(path): \(String(cString: strerror(errno)))") }
        guard Self.syncDirectory(configuration.directory) else {
            Glibc.close(newFD)
            throw .io("cannot sync \(configuration.directory)")
        }
        if fd >= 0 { Glibc.close(fd) }
        fd = newFD
        condition.lock()
        state.segments.append(Segment(firstSequence: next, lastSequence: next - 1, path: path, durableBytes: 0))
        condition.unlock()
    }

    // MARK: - The forwarder's side

    /// The segments as they are now (durable sizes), oldest first.
    func segmentsSnapshot() -> [Segment] {
        condition.lock()
        defer { condition.unlock() }
        return state.segments
    }

    public var durableSequence: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return state.durableSequence
    }

    public var acknowledgedSequence: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return state.acknowledged
    }

    /// Records that Kafka acknowledged every record up to `sequence`: the checkpoint is made
    /// durable first, then the segments it covers entirely are deleted.
    public func acknowledge(through sequence: UInt64) throws(SpoolError) {
        condition.lock()
        guard sequence > state.acknowledged else {
            condition.unlock()
            return
        }
        condition.unlock()
        checkpointLock.lock()
        do {
            try checkpoint.write(sequence)
        } catch {
            checkpointLock.unlock()
            throw error
        }
        checkpointLock.unlock()
        condition.lock()
        state.acknowledged = sequence
        condition.unlock()
        deleteAcknowledgedSegments()
    }

    /// Deletes the segments the checkpoint covers entirely, never the open (last) one.
    private func deleteAcknowledgedSegments() {
        condition.lock()
        var deletable: [Segment] = []
        while state.segments.count > 1, let first = state.segments.first, first.lastSequence <= state.acknowledged {
            deletable.append(state.segments.removeFirst())
            state.bytes -= first.durableBytes
        }
        condition.unlock()
        for s in deletable { unlink(s.path) }
    }

    // MARK: - Files

    static func segmentPath(_ dir: String, firstSequence: UInt64) -> String {
        let digits = String(firstSequence)
        return dir + "/segment-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".spool"
    }

    static func syncDirectory(_ dir: String) -> Bool {
        let d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard d >= 0 else { return false }
        defer { Glibc.close(d) }
        return fsync(d) == 0
    }

    static func readCheckpoint(_ dir: String) -> UInt64 { SpoolCheckpoint.read(directory: dir) }

    /// The whole file at `path` (segments are bounded).
    static func readFile(_ path: String) -> [UInt8]? {
        FileManager.default.contents(atPath: path).map { Array($0) }
    }

    struct Recovered {
        var segments: [Segment]
        var lastSequence: UInt64
        var acknowledged: UInt64
    }

    /// Scans every segment: truncates a torn last record, rewrites segments with corrupted
    /// records without them (the original goes to `quarantine/`), drops fully acknowledged
    /// segments. Never fails on bad data; fails only when the directory cannot be written.
    static func recover(directory dir: String, logger: Logger) throws(SpoolError) -> (Recovered, SpoolRecovery) {
        var report = SpoolRecovery()
        let acknowledged = readCheckpoint(dir)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix("segment-") && $0.hasSuffix(".spool") }.sorted()
        var segments: [Segment] = []
        var lastSequence = acknowledged
        for (i, name) in names.enumerated() {
            let path = dir + "/" + name
            guard let bytes = readFile(path) else { continue }
            var records = 0
            var first: UInt64 = 0
            var last: UInt64 = 0
            var offset = 0
            var goodEnd = 0
            var corrupt = 0
            var kept: [UInt8] = []  // readable frames, in case the segment must be rewritten
            bytes.withUnsafeBytes { all in
                while offset < all.count {
                    switch SpoolFrame.decode(UnsafeRawBufferPointer(rebasing: all[offset...])) {
                    case .record(let r, let size):
                        if records == 0 { first = r.sequence }
                        if r.sequence > last { last = r.sequence }
                        records += 1
                        kept += all[offset..<(offset + size)]
                        offset += size
                        goodEnd = offset
                    case .incomplete where i == names.count - 1 && corrupt == 0:
                        // A torn last write: cut it off.
                        report.tornBytes = all.count - offset
                        offset = all.count
                    case .incomplete, .corrupt:
                        // Skip to the next frame that decodes (resynchronise on the magic).
                        var next = offset + 1
                        while next < all.count {
                            if all[next] == SpoolFrame.magic[0],
                                case .record = SpoolFrame.decode(UnsafeRawBufferPointer(rebasing: all[next...]))
                            {
                                break
                            }
                            next += 1
                        }
                        corrupt += next - offset
                        offset = next
                    }
                }
            }
            if corrupt > 0 {
                report.corruptBytes += corrupt
                let quarantine = dir + "/quarantine"
                try? FileManager.default.createDirectory(atPath: quarantine, withIntermediateDirectories: true)
                let tmp = path + ".rewrite"
                guard FileManager.default.createFile(atPath: tmp, contents: Data(kept)) else {
                    throw .io("cannot rewrite \(path)")
                }
                let f = open(tmp, O_RDONLY | O_CLOEXEC)
                if f >= 0 {
                    _ = fsync(f)
                    Glibc.close(f)
                }
                guard rename(path, quarantine + "/" + name) == 0, rename(tmp, path) == 0, syncDirectory(dir) else {
                    throw .io("cannot quarantine \(path): \(String(cString: strerror(errno)))")
                }
                report.quarantinedSegments.append(name)
                logger.error(
                    "spool segment held corrupted records: moved to quarantine/, its readable records kept",
                    metadata: ["spool.segment": "\(name)", "spool.corrupt_bytes": "\(corrupt)"]
                )
            } else if report.tornBytes > 0 && i == names.count - 1 {
                guard truncate(path, off_t(goodEnd)) == 0 else { throw .io("cannot truncate \(path)") }
                logger.warning(
                    "spool: a torn last record was cut off (it was never acknowledged)",
                    metadata: ["spool.segment": "\(name)", "spool.torn_bytes": "\(report.tornBytes)"]
                )
            }
            let size = Int64(corrupt > 0 ? kept.count : goodEnd)
            if records == 0 || last <= acknowledged {
                // Empty, or entirely acknowledged: nothing left to forward.
                unlink(path)
                continue
            }
            lastSequence = max(lastSequence, last)
            segments.append(Segment(firstSequence: first, lastSequence: last, path: path, durableBytes: size))
            report.pendingRecords += records
        }
        if !segments.isEmpty || !names.isEmpty { _ = syncDirectory(dir) }
        return (Recovered(segments: segments, lastSequence: lastSequence, acknowledged: acknowledged), report)
    }
}
