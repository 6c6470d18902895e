/// What a peer said, once frames are put together.
public enum WebSocketMessage: Sendable, Equatable {
    case text(String)
    case binary([UInt8])
    case ping([UInt8])
    case pong([UInt8])
    /// The peer's close frame: its code (1005 when it gave none) and reason.
    case close(code: UInt16, reason: String)
}

/// Joins fragmented data frames into messages and validates what RFC 6455 requires of them:
/// continuation order, UTF-8 text (§8.1), close codes (§7.4). Control frames pass through
/// between fragments. Pure state machine; the connection owns one per socket.
public struct WebSocketMessageAssembler: Sendable {
    public let maxMessageBytes: Int
    private var fragments: [UInt8] = []
    private var fragmentedOpcode: WebSocketOpcode?

    public init(maxMessageBytes: Int = 16 << 20) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// The message `frame` completes, if any.
    public mutating func push(_ frame: WebSocketFrame) throws(WebSocketProtocolError) -> WebSocketMessage? {
        switch frame.opcode {
        case .ping:
            return .ping(frame.payload)
        case .pong:
            return .pong(frame.payload)
        case .close:
            return try Self.closeMessage(frame.payload)
        case .text, .binary:
            guard fragmentedOpcode == nil else { throw .expectedContinuation }
            if frame.fin { return try Self.message(frame.opcode, frame.payload) }
            guard frame.payload.count <= maxMessageBytes else { throw .messageTooLarge(limit: maxMessageBytes) }
            fragmentedOpcode = frame.opcode
            fragments = frame.payload
            return nil
        case .continuation:
            guard let opcode = fragmentedOpcode else { throw .unexpectedContinuation }
            guard fragments.count + frame.payload.count <= maxMessageBytes else {
                throw .messageTooLarge(limit: maxMessageBytes)
            }
            fragments += frame.payload
            guard frame.fin else { return nil }
            let payload = fragments
            fragments = []
            fragmentedOpcode = nil
            return try Self.message(opcode, payload)
        }
    }

    private static func message(
        _ opcode: WebSocketOpcode,
        _ payload: [UInt8]
    ) throws(WebSocketProtocolError)
        -> WebSocketMessage
    {
        if opcode == .binary { return .binary(payload) }
        guard let text = String(validating: payload, as: UTF8.self) else { throw .invalidUTF8 }
        return .text(text)
    }

    static func closeMessage(_ payload: [UInt8]) throws(WebSocketProtocolError) -> WebSocketMessage {
        if payload.isEmpty { return .close(code: 1005, reason: "") }
        guard payload.count >= 2 else { throw .invalidClosePayload }
        let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
        guard isSendable(closeCode: code) else { throw .invalidCloseCode(code) }
        guard let reason = String(validating: payload[2...], as: UTF8.self) else { throw .invalidUTF8 }
        return .close(code: code, reason: reason)
    }

    /// Codes a peer may put in a close frame (RFC 6455 §7.4.1–7.4.2 and the IANA registry).
    static func isSendable(closeCode code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1011: true
        case 3000...4999: true
        default: false
        }
    }
}
