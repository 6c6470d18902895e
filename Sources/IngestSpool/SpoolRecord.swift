/// One event in the spool: what the forwarder will produce to Kafka, exactly as the gateway
/// would have produced it (topic, key, raw value, headers).
public struct SpoolRecord: Sendable, Equatable {
    /// Position in the spool, from 1, strictly increasing; assigned by ``SpoolLog/append``.
    public var sequence: UInt64
    public var topic: String
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [(name: String, value: [UInt8])]

    public init(
        sequence: UInt64 = 0,
        topic: String,
        key: [UInt8]?,
        value: [UInt8],
        headers: [(name: String, value: [UInt8])]
    ) {
        self.sequence = sequence
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
    }

    public static func == (a: SpoolRecord, b: SpoolRecord) -> Bool {
        a.sequence == b.sequence && a.topic == b.topic && a.key == b.key && a.value == b.value
            && a.headers.map(\.name) == b.headers.map(\.name) && a.headers.map(\.value) == b.headers.map(\.value)
    }
}

/// The on-disk frame of a record (little-endian):
///
///     magic "GSP1" (4) · payload length (4) · CRC-32C of the payload (4) · payload
///     payload = sequence (8) · topic length (2) · topic · key length (4, 0xFFFFFFFF: no key)
///               · key · header count (2) · [name length (2) · name · value length (4) · value]*
///               · value length (4) · value
///
/// A pure codec: every length read from disk is checked against what is left, so a torn or
/// corrupted frame is an error, never a trap.
public enum SpoolFrame {
    static let magic: [UInt8] = Array("GSP1".utf8)
    public static let headerSize = 12
    /// Larger payloads are refused on append and treated as corruption on read.
    public static let maxPayload = 64 << 20

    public enum DecodeResult: Equatable {
        case record(SpoolRecord, frameBytes: Int)
        /// Not enough bytes for a whole frame (a torn tail when it is the end of the file).
        case incomplete
        /// Bad magic, impossible length or checksum mismatch.
        case corrupt(String)
    }

    public static func encode(_ r: SpoolRecord, into out: inout [UInt8]) {
        // Written in place: the header's length and checksum are filled in once the payload
        // follows them (no intermediate payload array, no temporary per field).
        let frameStart = out.count
        out.reserveCapacity(frameStart + headerSize + r.value.count + 256)
        out += magic
        put32(0, &out)
        put32(0, &out)
        let payloadStart = out.count
        put64(r.sequence, &out)
        put16(UInt16(truncatingIfNeeded: r.topic.utf8.count), &out)
        out += r.topic.utf8
        if let key = r.key {
            put32(UInt32(truncatingIfNeeded: key.count), &out)
            out += key
        } else {
            put32(0xFFFF_FFFF, &out)
        }
        put16(UInt16(truncatingIfNeeded: r.headers.count), &out)
        for h in r.headers {
            put16(UInt16(truncatingIfNeeded: h.name.utf8.count), &out)
            out += h.name.utf8
            put32(UInt32(truncatingIfNeeded: h.value.count), &out)
            out += h.value
        }
        put32(UInt32(truncatingIfNeeded: r.value.count), &out)
        out += r.value
        let length = UInt32(out.count - payloadStart)
        out.withUnsafeMutableBytes { frame in
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: frame[payloadStart...]))
            frame.storeBytes(of: length.littleEndian, toByteOffset: frameStart + 4, as: UInt32.self)
            frame.storeBytes(of: crc.littleEndian, toByteOffset: frameStart + 8, as: UInt32.self)
        }
    }

    /// Whether `r` fits a frame (lengths within their fields, payload within the limit).
    public static func fits(_ r: SpoolRecord) -> Bool {
        let topic = r.topic.utf8.count
        guard topic <= 0xFFFF, r.headers.count <= 0xFFFF, (r.key?.count ?? 0) < 0xFFFF_FFFF else { return false }
        var size = 8 + 2 + topic + 4 + (r.key?.count ?? 0) + 2 + 4 + r.value.count
        for h in r.headers {
            guard h.name.utf8.count <= 0xFFFF else { return false }
            size += 2 + h.name.utf8.count + 4 + h.value.count
        }
        return size <= maxPayload
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) -> DecodeResult {
        guard bytes.count >= headerSize else { return .incomplete }
        guard bytes[0] == magic[0], bytes[1] == magic[1], bytes[2] == magic[2], bytes[3] == magic[3] else {
            return .corrupt("bad magic")
        }
        let length = Int(get32(bytes, 4))
        guard length >= 8 + 2 + 4 + 2 + 4, length <= maxPayload else { return .corrupt("impossible length \(length)") }
        guard bytes.count >= headerSize + length else { return .incomplete }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[headerSize..<(headerSize + length)])
        guard CRC32C.checksum(payload) == get32(bytes, 8) else { return .corrupt("checksum mismatch") }
        var reader = Reader(bytes: payload)
        guard let sequence = reader.u64(), let topicLength = reader.u16(), let topic = reader.bytes(Int(topicLength)),
            let keyLength = reader.u32()
        else { return .corrupt("truncated payload") }
        var key: [UInt8]?
        if keyLength != 0xFFFF_FFFF {
            guard let k = reader.bytes(Int(keyLength)) else { return .corrupt("truncated key") }
            key = k
        }
        guard let headerCount = reader.u16() else { return .corrupt("truncated headers") }
        var headers: [(name: String, value: [UInt8])] = []
        for _ in 0..<headerCount {
            guard let nameLength = reader.u16(), let name = reader.bytes(Int(nameLength)),
                let valueLength = reader.u32(),
                let value = reader.bytes(Int(valueLength))
            else { return .corrupt("truncated header") }
            headers.append((String(decoding: name, as: UTF8.self), value))
        }
        guard let valueLength = reader.u32(), let value = reader.bytes(Int(valueLength)), reader.atEnd else {
            return .corrupt("truncated value")
        }
        let record = SpoolRecord(
            sequence: sequence,
            topic: String(decoding: topic, as: UTF8.self),
            key: key,
            value: value,
            headers: headers
        )
        return .record(record, frameBytes: headerSize + length)
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0
        var atEnd: Bool { offset == bytes.count }

        mutating func bytes(_ n: Int) -> [UInt8]? {
            guard n >= 0, n <= bytes.count - offset else { return nil }
            defer { offset += n }
            return Array(bytes[offset..<(offset + n)])
        }
        mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
            guard MemoryLayout<T>.size <= bytes.count - offset else { return nil }
            defer { offset += MemoryLayout<T>.size }
            return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        mutating func u16() -> UInt16? { integer(UInt16.self) }
        mutating func u32() -> UInt32? { integer(UInt32.self) }
        mutating func u64() -> UInt64? { integer(UInt64.self) }
    }

    static func get32(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }
    static func put16(_ v: UInt16, _ out: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    static func put32(_ v: UInt32, _ out: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
    static func put64(_ v: UInt64, _ out: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
}
