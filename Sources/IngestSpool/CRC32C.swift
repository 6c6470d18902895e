import CSystemShims

/// CRC-32C (Castagnoli), the checksum of every spool record: detects torn writes and flipped
/// bits. Computed with the CPU's CRC32 instruction where there is one (x86-64 SSE4.2, ARMv8
/// CRC; a sliced table otherwise): every record is checksummed when written and again when
/// the forwarder reads it, so a byte-at-a-time table cost ≈ 13 % of the gateway's CPU in
/// `spool` mode (profile in the README).
enum CRC32C {
    static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        csys_crc32c(seed, bytes.baseAddress, bytes.count)
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// The table implementation alone, for tests comparing the two paths.
    static func softwareChecksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        csys_crc32c_software(seed, bytes.baseAddress, bytes.count)
    }
}
