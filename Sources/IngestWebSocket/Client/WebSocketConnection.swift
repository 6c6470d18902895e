import IngestCore
import IngestCrypto
import IngestHTTPClient

/// Settings of a client connection.
public struct WebSocketConfiguration: Sendable {
    /// TCP connect plus TLS handshake.
    public var connectTimeout: Duration = .seconds(10)
    /// The HTTP upgrade exchange.
    public var handshakeTimeout: Duration = .seconds(10)
    /// How long ``WebSocketConnection/close(code:reason:)`` waits for the server's close frame.
    public var closeTimeout: Duration = .seconds(5)
    public var maxFramePayload = 16 << 20
    public var maxMessageBytes = 16 << 20
    /// CA file and proxies (the same as every outbound request of the process).
    public var http = HTTPClientConfiguration()

    public init() {}
}

/// Why a connection failed or ended.
public enum WebSocketError: Error, Sendable, CustomStringConvertible {
    case invalidURL(String)
    /// TCP, TLS or socket I/O.
    case transport(HTTPClientError)
    case handshake(WebSocketHandshake.Failure)
    /// The server broke RFC 6455; the connection was closed with the matching code.
    case protocolViolation(WebSocketProtocolError)
    /// The server closed the stream without a close frame.
    case connectionLost
    /// The connection is closed (after a close handshake, or by ``WebSocketConnection/close(code:reason:)``).
    case closed

    public var description: String {
        switch self {
        case .invalidURL(let u): "not a ws:// or wss:// URL: \(u)"
        case .transport(let e): "WebSocket transport: \(e.message)"
        case .handshake(let f): "WebSocket handshake: \(f)"
        case .protocolViolation(let e): "WebSocket protocol violation by the server: \(e)"
        case .connectionLost: "the server dropped the connection without a close frame"
        case .closed: "the WebSocket connection is closed"
        }
    }
}

/// One client WebSocket connection (RFC 6455) over a ``ByteStream`` (TCP or TLS from libcurl).
///
/// Blocking, with deadlines; **confined to one thread** (the bridge runs one per channel): every
/// call must come from the thread that connected. Pings are answered with pongs inside
/// ``receive(until:)`` and still returned, so a caller's watchdog sees them; a close frame is
/// answered and returned as ``WebSocketMessage/close(code:reason:)``, after which every call
/// throws ``WebSocketError/closed``. A protocol violation closes with the code RFC 6455 names.
public final class WebSocketConnection: @unchecked Sendable {
    // @unchecked: confined to one thread at a time (documented above).
    public let configuration: WebSocketConfiguration
    private let stream: ByteStream
    private var decoder: WebSocketFrameDecoder
    private var assembler: WebSocketMessageAssembler
    private var closeSent = false
    private var isClosed = false
    private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)

    /// Connects to `url` (`ws://` or `wss://`) and completes the opening handshake.
    public static func connect(
        url: String,
        headers: [(String, String)] = [],
        configuration: WebSocketConfiguration = .init()
    ) throws(WebSocketError) -> WebSocketConnection {
        guard let target = WebSocketURL(url) else { throw .invalidURL(ByteStream.origin(of: url)) }
        let stream: ByteStream
        do {
            stream = try ByteStream(
                url: target.streamURL,
                configuration: configuration.http,
                connectTimeout: configuration.connectTimeout
            )
        } catch { throw .transport(error) }
        let handshake = WebSocketHandshake()
        let deadline = ContinuousClock.now + configuration.handshakeTimeout
        var received: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 << 10, alignment: 16)
        defer { buffer.deallocate() }
        do {
            try stream.send(
                handshake.request(host: target.hostHeader, path: target.path, headers: headers),
                deadline: deadline
            )
            while true {
                guard let n = try stream.receive(into: buffer, deadline: deadline) else {
                    throw WebSocketError.transport(HTTPClientError(.timedOut, "no handshake answer in time"))
                }
                guard n > 0 else { throw WebSocketError.connectionLost }
                received += buffer[0..<n]
                if let headLength = try handshake.validateResponse(received) {
                    let connection = WebSocketConnection(stream: stream, configuration: configuration)
                    connection.decoder.append(Array(received[headLength...]))
                    return connection
                }
            }
        } catch let error as WebSocketError {
            stream.close()
            throw error
        } catch let error as HTTPClientError {
            stream.close()
            throw .transport(error)
        } catch let error as WebSocketHandshake.Failure {
            stream.close()
            throw .handshake(error)
        } catch {
            stream.close()
            throw .transport(HTTPClientError(.transfer, "\(error)"))
        }
    }

    private init(stream: ByteStream, configuration: WebSocketConfiguration) {
        self.stream = stream
        self.configuration = configuration
        self.decoder = WebSocketFrameDecoder(maxFramePayload: configuration.maxFramePayload)
        self.assembler = WebSocketMessageAssembler(maxMessageBytes: configuration.maxMessageBytes)
    }

    deinit {
        stream.close()
        readBuffer.deallocate()
    }

    public func send(text: String, deadline: ContinuousClock.Instant? = nil) throws(WebSocketError) {
        try send(WebSocketFrame(opcode: .text, payload: Array(text.utf8)), deadline: deadline)
    }

    public func send(binary: [UInt8], deadline: ContinuousClock.Instant? = nil) throws(WebSocketError) {
        try send(WebSocketFrame(opcode: .binary, payload: binary), deadline: deadline)
    }

    public func ping(_ payload: [UInt8] = [], deadline: ContinuousClock.Instant? = nil) throws(WebSocketError) {
        try send(WebSocketFrame(opcode: .ping, payload: Array(payload.prefix(125))), deadline: deadline)
    }

    /// The next message, or nil when `deadline` passes first.
    public func receive(until deadline: ContinuousClock.Instant) throws(WebSocketError) -> WebSocketMessage? {
        guard !isClosed else { throw .closed }
        while true {
            let frame: WebSocketFrame?
            let message: WebSocketMessage?
            do {
                frame = try decoder.next()
                message = try frame.flatMap { f throws(WebSocketProtocolError) in try assembler.push(f) }
            } catch {
                failConnection(error)
                throw .protocolViolation(error)
            }
            if let message {
                switch message {
                case .ping(let payload):
                    try send(WebSocketFrame(opcode: .pong, payload: payload), deadline: nil)
                case .close(let code, _):
                    // Echo the close (RFC 6455 §5.5.1), then the TCP connection ends.
                    sendClose(code == 1005 ? nil : code, reason: "", deadline: nil)
                    finish()
                default:
                    break
                }
                return message
            }
            if frame != nil { continue }  // a fragment: keep reading
            let n: Int?
            do { n = try stream.receive(into: readBuffer, deadline: deadline) } catch {
                finish()
                throw .transport(error)
            }
            guard let n else { return nil }
            guard n > 0 else {
                finish()
                throw .connectionLost
            }
            decoder.append(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]))
        }
    }

    /// The closing handshake: sends a close frame, waits up to `timeout` (default
    /// ``WebSocketConfiguration/closeTimeout``) for the server's, then closes the stream.
    /// Idempotent. A zero timeout drops the connection at once (a socket known to be dead).
    public func close(code: UInt16 = 1000, reason: String = "", timeout: Duration? = nil) {
        guard !isClosed else { return }
        let timeout = timeout ?? configuration.closeTimeout
        if timeout <= .zero {
            finish()
            return
        }
        sendClose(code, reason: reason, deadline: ContinuousClock.now + timeout)
        let deadline = ContinuousClock.now + timeout
        while !isClosed {
            // Data frames still in flight are dropped; the server's close ends the wait.
            guard let message = try? receive(until: deadline) else { break }
            if case .close = message { break }
        }
        finish()
    }

    private func send(_ frame: WebSocketFrame, deadline: ContinuousClock.Instant?) throws(WebSocketError) {
        guard !isClosed, !closeSent || frame.opcode == .pong else { throw .closed }
        if frame.opcode == .close { closeSent = true }
        let bytes = WebSocketFrameEncoder.encode(frame, maskKey: SecureRandom.bytes(4))
        do {
            try stream.send(bytes, deadline: deadline ?? ContinuousClock.now + configuration.handshakeTimeout)
        } catch {
            finish()
            throw .transport(error)
        }
    }

    /// A protocol violation: close with its code and drop the connection.
    private func failConnection(_ error: WebSocketProtocolError) {
        sendClose(error.closeCode, reason: "", deadline: ContinuousClock.now + .seconds(1))
        finish()
    }

    /// Our close frame, unless one was sent already (`code` nil: an empty close payload).
    private func sendClose(_ code: UInt16?, reason: String, deadline: ContinuousClock.Instant?) {
        guard !closeSent else { return }
        let payload = code.map { WebSocketFrameEncoder.closePayload(code: $0, reason: reason) } ?? []
        try? send(WebSocketFrame(opcode: .close, payload: payload), deadline: deadline)
    }

    private func finish() {
        isClosed = true
        stream.close()
    }
}

/// A `ws://` / `wss://` URL taken apart for the handshake.
struct WebSocketURL {
    /// `http://host:port` or `https://host:port`, what the byte stream connects to.
    let streamURL: String
    let hostHeader: String
    let path: String

    init?(_ url: String) {
        let lower = url.lowercased()
        let secure: Bool
        let rest: Substring
        if lower.hasPrefix("wss://") {
            secure = true
            rest = url.dropFirst(6)
        } else if lower.hasPrefix("ws://") {
            secure = false
            rest = url.dropFirst(5)
        } else {
            return nil
        }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var path = String(rest.dropFirst(authority.count).prefix { $0 != "#" })
        if path.isEmpty { path = "/" }
        if path.hasPrefix("?") { path = "/" + path }
        streamURL = (secure ? "https://" : "http://") + authority
        hostHeader = String(authority)
        self.path = path
    }
}
