#if canImport(Glibc)
import Glibc
#endif

/// The spool's checkpoint — the last sequence Kafka acknowledged contiguously — in a file that
/// never needs new disk space once it exists, so a full disk can still advance it (and so get
/// segments deleted and space back).
///
/// Layout of `acknowledged`: one 4096-byte file, created whole (written, synced, renamed into
/// place), with two 512-byte slots at offsets 0 and 512. A slot is 16 bytes: the sequence
/// (UInt64, little endian), a constant tag, and the CRC-32C of both. Writes alternate between
/// the slots and are followed by `fdatasync`, so a torn write damages only the slot being
/// written and the other still holds the previous checkpoint (older is safe: the forwarder
/// sends a few records again). The valid slot with the higher sequence wins. A file holding a
/// decimal number (the first layout) is read as that number and replaced on open.
///
/// Confined to its owner's lock (``SpoolLog`` serialises `write`).
struct SpoolCheckpoint {
    static let fileSize = 4096
    static let slotOffsets: [Int64] = [0, 512]
    static let tag: UInt32 = 0x4B43_5347  // "GSCK"

    let path: String
    private var fd: Int32
    private var nextSlot = 0

    /// Opens (creating or upgrading) the checkpoint file in `directory`, holding `sequence`.
    init(directory: String, sequence: UInt64) throws(SpoolError) {
        path = directory + "/acknowledged"
        // A file in this layout is opened in place (no space needed: a restart on a full disk
        // works); a missing or first-layout one is written whole first.
        if SpoolLog.readFile(path)?.count != Self.fileSize {
            try Self.create(path, directory: directory, sequence: sequence)
        }
        fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io("cannot open \(path): \(String(cString: strerror(errno)))") }
    }

    /// Writes the whole file with both slots at `sequence`, synced, renamed into place.
    private static func create(_ path: String, directory: String, sequence: UInt64) throws(SpoolError) {
        let tmp = path + ".tmp"
        var bytes = [UInt8](repeating: 0, count: fileSize)
        for offset in slotOffsets { encode(sequence, into: &bytes, at: Int(offset)) }
        let f = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard f >= 0 else { throw .io("cannot write \(tmp): \(String(cString: strerror(errno)))") }
        let ok = bytes.withUnsafeBytes { Glibc.write(f, $0.baseAddress!, $0.count) } == bytes.count && fsync(f) == 0
        let writeErrno = errno
        Glibc.close(f)
        guard ok else {
            unlink(tmp)
            throw .io("cannot write the checkpoint \(tmp): \(String(cString: strerror(writeErrno)))")
        }
        guard rename(tmp, path) == 0, SpoolLog.syncDirectory(directory) else {
            throw .io("cannot make the checkpoint durable: \(String(cString: strerror(errno)))")
        }
    }

    /// Makes `sequence` the durable checkpoint: overwrites one slot in place and syncs.
    mutating func write(_ sequence: UInt64) throws(SpoolError) {
        var slot = [UInt8](repeating: 0, count: 16)
        Self.encode(sequence, into: &slot, at: 0)
        let offset = Self.slotOffsets[nextSlot]
        let n = slot.withUnsafeBytes { pwrite(fd, $0.baseAddress!, 16, off_t(offset)) }
        guard n == 16, fdatasync(fd) == 0 else {
            throw .io("cannot make the checkpoint durable: \(String(cString: strerror(errno)))")
        }
        nextSlot = 1 - nextSlot
    }

    func close() { Glibc.close(fd) }

    /// The checkpoint in `directory`: 0 when there is none (nothing was ever acknowledged).
    static func read(directory: String) -> UInt64 {
        guard let bytes = SpoolLog.readFile(directory + "/acknowledged"), !bytes.isEmpty else { return 0 }
        if bytes.count < fileSize {
            // The first layout: a decimal number and a newline.
            return UInt64(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        return slotOffsets.compactMap { decode(bytes, at: Int($0)) }.max() ?? 0
    }

    static func encode(_ sequence: UInt64, into bytes: inout [UInt8], at offset: Int) {
        for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: sequence >> (8 * UInt64(i))) }
        for i in 0..<4 { bytes[offset + 8 + i] = UInt8(truncatingIfNeeded: tag >> (8 * UInt32(i))) }
        let crc = bytes.withUnsafeBytes {
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + 12)]))
        }
        for i in 0..<4 { bytes[offset + 12 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
    }

    /// The sequence in the slot at `offset`, or nil when the slot is torn or empty.
    static func decode(_ bytes: [UInt8], at offset: Int) -> UInt64? {
        guard offset + 16 <= bytes.count else { return nil }
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) } }
        guard u32(offset + 8) == tag else { return nil }
        let crc = bytes.withUnsafeBytes {
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + 12)]))
        }
        guard crc == u32(offset + 12) else { return nil }
        return (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }
}
