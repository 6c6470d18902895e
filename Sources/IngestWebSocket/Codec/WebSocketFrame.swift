/// RFC 6455 framing: the frame decoder and encoder of the WebSocket client. Pure value types
/// (no I/O), tested and fuzzed on their own; the connection in `Client/` drives them.

/// Frame opcodes (RFC 6455 §5.2). Others are reserved and refused.
public enum WebSocketOpcode: UInt8, Sendable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// One frame as read from (or written to) the wire, unmasked.
public struct WebSocketFrame: Sendable, Equatable {
    public var fin: Bool
    public var opcode: WebSocketOpcode
    public var payload: [UInt8]

    public init(fin: Bool = true, opcode: WebSocketOpcode, payload: [UInt8]) {
        self.fin = fin
        self.opcode = opcode
        self.payload = payload
    }
}

/// Why a peer's bytes are not acceptable WebSocket; each maps to the close code to answer with.
public enum WebSocketProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    case reservedBitsSet
    case unknownOpcode(UInt8)
    case fragmentedControlFrame
    case controlFrameTooLong(Int)
    case maskedFrameFromServer
    case unmaskedFrameFromClient
    case nonMinimalLength
    case lengthTooLarge
    case frameTooLarge(limit: Int)
    case messageTooLarge(limit: Int)
    case unexpectedContinuation
    case expectedContinuation
    case invalidUTF8
    case invalidClosePayload
    case invalidCloseCode(UInt16)

    /// The close code to send (RFC 6455 §7.4.1).
    public var closeCode: UInt16 {
        switch self {
        case .invalidUTF8: 1007
        case .frameTooLarge, .messageTooLarge: 1009
        default: 1002
        }
    }

    public var description: String {
        switch self {
        case .reservedBitsSet: "a reserved bit is set (no extension was negotiated)"
        case .unknownOpcode(let op): "reserved opcode \(op)"
        case .fragmentedControlFrame: "a control frame is fragmented"
        case .controlFrameTooLong(let n): "a control frame carries \(n) bytes (at most 125)"
        case .maskedFrameFromServer: "the server masked a frame"
        case .unmaskedFrameFromClient: "the client did not mask a frame"
        case .nonMinimalLength: "a payload length is not minimally encoded"
        case .lengthTooLarge: "a 64-bit payload length has its high bit set"
        case .frameTooLarge(let limit): "a frame is larger than \(limit) bytes"
        case .messageTooLarge(let limit): "a message is larger than \(limit) bytes"
        case .unexpectedContinuation: "a continuation frame without a message to continue"
        case .expectedContinuation: "a new data frame while a fragmented message is unfinished"
        case .invalidUTF8: "a text message or close reason is not valid UTF-8"
        case .invalidClosePayload: "a close frame carries one byte (a code needs two)"
        case .invalidCloseCode(let code): "close code \(code) may not be sent"
        }
    }
}

/// Incremental frame decoder: feed bytes as they arrive, take frames. A client decodes
/// server frames (never masked); a server (the simulator's endpoint) decodes client frames
/// (always masked) and unmasks them. Every length from the wire is checked against
/// ``maxFramePayload`` before anything is allocated for it.
public struct WebSocketFrameDecoder: Sendable {
    public enum Peer: Sendable { case server, client }
    public let maxFramePayload: Int
    /// Who sends the frames this decoder reads.
    public let sender: Peer
    private var buffer: [UInt8] = []
    private var readIndex = 0

    public init(maxFramePayload: Int = 16 << 20, framesFrom sender: Peer = .server) {
        self.maxFramePayload = maxFramePayload
        self.sender = sender
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
    }

    /// Bytes received and not yet decoded.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// The next complete frame, or nil when more bytes are needed.
    public mutating func next() throws(WebSocketProtocolError) -> WebSocketFrame? {
        let available = buffer.count - readIndex
        guard available >= 2 else { return nil }
        let b0 = buffer[readIndex]
        let b1 = buffer[readIndex + 1]
        guard b0 & 0x70 == 0 else { throw .reservedBitsSet }
        guard let opcode = WebSocketOpcode(rawValue: b0 & 0x0F) else { throw .unknownOpcode(b0 & 0x0F) }
        let fin = b0 & 0x80 != 0
        let masked = b1 & 0x80 != 0
        switch sender {
        case .server: guard !masked else { throw .maskedFrameFromServer }
        case .client: guard masked else { throw .unmaskedFrameFromClient }
        }
        var headerLength = 2
        var length = Int(b1 & 0x7F)
        if length == 126 {
            guard available >= 4 else { return nil }
            length = Int(buffer[readIndex + 2]) << 8 | Int(buffer[readIndex + 3])
            guard length >= 126 else { throw .nonMinimalLength }
            headerLength = 4
        } else if length == 127 {
            guard available >= 10 else { return nil }
            var value: UInt64 = 0
            for i in 2..<10 { value = value << 8 | UInt64(buffer[readIndex + i]) }
            guard value & (1 << 63) == 0 else { throw .lengthTooLarge }
            guard value > 0xFFFF else { throw .nonMinimalLength }
            // Checked before conversion: a length beyond the limit never becomes an allocation.
            guard value <= UInt64(maxFramePayload) else { throw .frameTooLarge(limit: maxFramePayload) }
            length = Int(value)
            headerLength = 10
        }
        if opcode.isControl {
            guard fin else { throw .fragmentedControlFrame }
            guard length <= 125 else { throw .controlFrameTooLong(length) }
        }
        guard length <= maxFramePayload else { throw .frameTooLarge(limit: maxFramePayload) }
        let maskLength = masked ? 4 : 0
        guard available - headerLength - maskLength >= length else { return nil }
        let key = Array(buffer[(readIndex + headerLength)..<(readIndex + headerLength + maskLength)])
        let start = readIndex + headerLength + maskLength
        var payload = Array(buffer[start..<(start + length)])
        if masked { for i in 0..<payload.count { payload[i] ^= key[i & 3] } }
        readIndex = start + length
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
            readIndex = 0
        } else if readIndex >= 64 << 10 {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
        return WebSocketFrame(fin: fin, opcode: opcode, payload: payload)
    }
}

/// Encodes client-to-server frames (always masked, RFC 6455 §5.3).
public enum WebSocketFrameEncoder {
    /// `maskKey` must be 4 bytes from a strong source (the connection draws them from OpenSSL).
    public static func encode(_ frame: WebSocketFrame, maskKey: [UInt8]) -> [UInt8] {
        precondition(maskKey.count == 4, "a WebSocket mask key is 4 bytes")
        var out = header(frame, masked: true)
        out += maskKey
        for (i, b) in frame.payload.enumerated() { out.append(b ^ maskKey[i & 3]) }
        return out
    }

    /// A server's frame (never masked).
    public static func encodeUnmasked(_ frame: WebSocketFrame) -> [UInt8] {
        header(frame, masked: false) + frame.payload
    }

    /// FIN, opcode, mask bit and the minimal length encoding (RFC 6455 §5.2).
    private static func header(_ frame: WebSocketFrame, masked: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(frame.payload.count + 14)
        out.append((frame.fin ? 0x80 : 0) | frame.opcode.rawValue)
        let mask: UInt8 = masked ? 0x80 : 0
        let n = frame.payload.count
        if n < 126 {
            out.append(mask | UInt8(n))
        } else if n <= 0xFFFF {
            out += [mask | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
        } else {
            out.append(mask | 127)
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: UInt64(n) >> UInt64(shift)))
            }
        }
        return out
    }

    /// A close frame's payload: the code (big endian) and a UTF-8 reason cut to fit 125 bytes.
    public static func closePayload(code: UInt16, reason: String) -> [UInt8] {
        var payload = [UInt8(code >> 8), UInt8(code & 0xFF)]
        var reasonBytes = Array(reason.utf8)
        while reasonBytes.count > 123 {
            reasonBytes.removeLast()
            // Never cut inside a UTF-8 sequence.
            while let last = reasonBytes.last, last & 0xC0 == 0x80 { reasonBytes.removeLast() }
            if let last = reasonBytes.last, last >= 0xC0 { reasonBytes.removeLast() }
        }
        payload += reasonBytes
        return payload
    }
}
