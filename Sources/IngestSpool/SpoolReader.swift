#if canImport(Glibc)
import Glibc
#endif

/// Reads the spool's durable records in order, across segments. Confined to one thread (the
/// forwarder's).
public final class SpoolReader {
    private let log: SpoolLog
    /// Records up to this sequence are skipped.
    private var after: UInt64
    private var path: String?
    private var fd: Int32 = -1
    private var offset: Int64 = 0
    private var buffer: [UInt8] = []

    public init(log: SpoolLog, after sequence: UInt64) {
        self.log = log
        self.after = sequence
    }

    deinit { closeFile() }

    /// Starts again from the first record after `sequence`.
    public func rewind(after sequence: UInt64) {
        closeFile()
        after = sequence
    }

    /// Up to `maxRecords` durable records (about `maxBytes`), in spool order; empty when the
    /// reader has caught up with the writer.
    public func next(maxRecords: Int, maxBytes: Int = 4 << 20) -> [SpoolRecord] {
        var out: [SpoolRecord] = []
        var bytes = 0
        while out.count < maxRecords && bytes < maxBytes {
            let segments = log.segmentsSnapshot()
            if path == nil {
                guard let s = segments.first(where: { $0.lastSequence > after && $0.durableBytes > 0 }) else {
                    return out
                }
                guard open(s.path) else { return out }
            }
            guard let index = segments.firstIndex(where: { $0.path == path }) else {
                // Deleted under us (cannot happen for unacknowledged data): start over.
                closeFile()
                continue
            }
            let segment = segments[index]
            if offset >= segment.durableBytes {
                guard index + 1 < segments.count, segments[index + 1].durableBytes > 0 else { return out }
                guard open(segments[index + 1].path) else { return out }
                continue
            }
            // Read what is durable, at most maxBytes (and at least one whole frame).
            let want = Int(min(segment.durableBytes - offset, Int64(max(maxBytes - bytes, 64 << 10))))
            if buffer.count < want { buffer = [UInt8](repeating: 0, count: want) }
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, want, off_t(offset)) }
            guard n > 0 else { return out }
            var consumed = 0
            buffer.withUnsafeBytes { all in
                let chunk = UnsafeRawBufferPointer(rebasing: all[0..<n])
                while consumed < n && out.count < maxRecords {
                    guard
                        case .record(let r, let size) = SpoolFrame.decode(
                            UnsafeRawBufferPointer(rebasing: chunk[consumed...])
                        )
                    else { break }
                    consumed += size
                    if r.sequence > after {
                        out.append(r)
                        bytes += size
                    }
                }
            }
            if consumed == 0 {
                // A frame larger than the buffer: read it whole next time.
                if want < Int(segment.durableBytes - offset) {
                    buffer = [UInt8](repeating: 0, count: Int(segment.durableBytes - offset))
                    continue
                }
                return out  // durable bytes always end on a frame boundary; nothing to read
            }
            offset += Int64(consumed)
            if let last = out.last { after = last.sequence }
        }
        return out
    }

    private func open(_ p: String) -> Bool {
        closeFile()
        let f = Glibc.open(p, O_RDONLY | O_CLOEXEC)
        guard f >= 0 else { return false }
        fd = f
        path = p
        offset = 0
        return true
    }

    private func closeFile() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        path = nil
        offset = 0
    }
}
