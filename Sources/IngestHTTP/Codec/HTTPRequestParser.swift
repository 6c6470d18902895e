import IngestCore

/// Why a request could not be parsed. Each case knows the status to answer with; after any of
/// them the connection must be closed (the byte stream can no longer be trusted).
public enum HTTPParseError: Error, Equatable, Sendable, CustomStringConvertible {
    case badRequest(String)
    case headerFieldsTooLarge
    case payloadTooLarge(limit: Int)
    case versionNotSupported
    case notImplemented(String)

    public var status: HTTPStatus {
        switch self {
        case .badRequest: .badRequest
        case .headerFieldsTooLarge: .requestHeaderFieldsTooLarge
        case .payloadTooLarge: .payloadTooLarge
        case .versionNotSupported: .httpVersionNotSupported
        case .notImplemented: .notImplemented
        }
    }

    public var description: String {
        switch self {
        case .badRequest(let reason): reason
        case .headerFieldsTooLarge: "request header block too large"
        case .payloadTooLarge(let limit): "request body larger than \(limit) bytes"
        case .versionNotSupported: "only HTTP/1.0 and HTTP/1.1 are supported"
        case .notImplemented(let reason): reason
        }
    }
}

/// An incremental HTTP/1.1 request parser over raw bytes.
///
/// Feed bytes with ``append(_:)`` as they arrive and call ``next()`` until it returns
/// ``Event/needMoreData``. Requests come out in order (pipelining). Strict by design: anything
/// ambiguous that could let two parsers disagree about message boundaries (request smuggling)
/// is an error — duplicate `Content-Length`, `Content-Length` with `Transfer-Encoding`, obsolete
/// line folding, bare CR or LF, malformed chunk framing. After an error the parser must not be
/// used again.
public struct HTTPRequestParser: Sendable {
    public struct Limits: Sendable {
        /// Largest request line plus header block, including the terminating empty line.
        public var maxHeaderBytes: Int
        /// Largest body (decoded, for chunked bodies).
        public var maxBodyBytes: Int

        public init(maxHeaderBytes: Int = 16 * 1024, maxBodyBytes: Int = 512_000) {
            self.maxHeaderBytes = maxHeaderBytes
            self.maxBodyBytes = maxBodyBytes
        }
    }

    public enum Event: Sendable {
        /// A complete request.
        case request(HTTPRequest)
        /// The client sent `Expect: 100-continue` and waits for an interim response before the body.
        case continueExpected
        /// Nothing complete yet.
        case needMoreData
    }

    private enum State {
        case head
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers(bytes: Int)
    }

    private struct PendingHead {
        var method: String
        var target: String
        var versionMinor: Int
        var headers: HTTPHeaders
        var keepAlive: Bool
    }

    public let limits: Limits
    private var buffer: [UInt8] = []
    private var readIndex = 0
    /// Where the search for the end of the header block resumes.
    private var headScanIndex = 0
    private var state = State.head
    private var pending: PendingHead?
    private var body: [UInt8] = []
    private var continuePending = false

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        reserveForBody(adding: bytes.count)
        buffer.append(contentsOf: bytes)
    }

    /// While a body of known length arrives, the buffer is sized for it once (no doubling
    /// growth and copies, and memory close to what the body needs).
    private mutating func reserveForBody(adding count: Int) {
        guard case .fixedBody(let length) = state, length > 64 * 1024 else { return }
        let stillToCome = max(0, length - (buffer.count - readIndex))
        if buffer.capacity < buffer.count + max(count, stillToCome) {
            if readIndex > 0 {
                buffer.removeFirst(readIndex)
                headScanIndex = max(0, headScanIndex - readIndex)
                readIndex = 0
            }
            buffer.reserveCapacity(buffer.count + max(count, stillToCome))
        }
    }

    public mutating func append<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        buffer.append(contentsOf: bytes)
    }

    /// True when some bytes of a request that is not complete yet have been received.
    public var hasPartialRequest: Bool {
        if case .head = state { return readIndex < buffer.count }
        return true
    }

    /// True once a request's head is complete and its body is still arriving.
    public var isReadingBody: Bool {
        if case .head = state { return false }
        return true
    }

    /// Unparsed bytes held.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Bytes this parser holds in memory: its buffer and the body being assembled.
    public var heldByteCount: Int { buffer.capacity + body.capacity }

    /// The body bytes still to come for the request being read, when its length is known
    /// (`Content-Length`); nil between requests and for chunked bodies.
    public var remainingBodyBytes: Int? {
        if case .fixedBody(let length) = state { return max(0, length - (buffer.count - readIndex)) }
        return nil
    }

    /// Hands over the bytes received after the last complete request (a protocol upgrade
    /// takes the connection over from there) and forgets them.
    public mutating func takeUnparsedBytes() -> [UInt8] {
        let rest = Array(buffer[readIndex...])
        buffer = []
        readIndex = 0
        headScanIndex = 0
        return rest
    }

    /// Parses as far as the buffered bytes allow.
    public mutating func next() throws(HTTPParseError) -> Event {
        while true {
            switch state {
            case .head:
                guard try parseHead() else { return .needMoreData }
            case .fixedBody(let remaining):
                let available = buffer.count - readIndex
                if available < remaining {
                    if continuePending {
                        continuePending = false
                        return .continueExpected
                    }
                    return .needMoreData
                }
                body.append(contentsOf: buffer[readIndex..<(readIndex + remaining)])
                readIndex += remaining
                return .request(finishRequest())
            case .chunkSize:
                guard let lineEnd = findCRLF(from: readIndex, limit: 4096) else {
                    if buffer.count - readIndex > 4096 { throw .badRequest("chunk size line too long") }
                    if continuePending {
                        continuePending = false
                        return .continueExpected
                    }
                    return .needMoreData
                }
                let size = try parseChunkSize(readIndex..<lineEnd)
                readIndex = lineEnd + 2
                continuePending = false
                if size == 0 {
                    state = .trailers(bytes: 0)
                } else {
                    // Both terms are at most `maxBodyBytes`: the sum cannot overflow.
                    if body.count + size > limits.maxBodyBytes { throw .payloadTooLarge(limit: limits.maxBodyBytes) }
                    state = .chunkData(remaining: size)
                }
            case .chunkData(let remaining):
                let available = buffer.count - readIndex
                if available == 0 { return .needMoreData }
                let take = min(available, remaining)
                body.append(contentsOf: buffer[readIndex..<(readIndex + take)])
                readIndex += take
                state = take == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - take)
            case .chunkDataEnd:
                if buffer.count - readIndex < 2 { return .needMoreData }
                guard buffer[readIndex] == UInt8(ascii: "\r"), buffer[readIndex + 1] == UInt8(ascii: "\n") else {
                    throw .badRequest("chunk data not followed by CRLF")
                }
                readIndex += 2
                state = .chunkSize
            case .trailers(let bytes):
                // The trailer section counts every line with its CRLF, the final empty line
                // included. A partial line is judged by the least it can still become (its
                // bytes plus the CRLF it lacks), so the verdict never depends on how the bytes
                // were split into packets (found by fuzzing whole vs split input).
                guard let lineEnd = findCRLF(from: readIndex, limit: limits.maxHeaderBytes) else {
                    let pending = buffer.count - readIndex
                    let missing = pending > 0 && buffer[buffer.count - 1] == 13 ? 1 : 2
                    if bytes + pending + missing > limits.maxHeaderBytes { throw .headerFieldsTooLarge }
                    return .needMoreData
                }
                let length = lineEnd - readIndex
                if bytes + length + 2 > limits.maxHeaderBytes { throw .headerFieldsTooLarge }
                readIndex = lineEnd + 2
                if length == 0 { return .request(finishRequest()) }
                // Trailer fields are read and discarded; validate their shape only.
                try validateTrailerLine(lineEnd - length..<lineEnd)
                state = .trailers(bytes: bytes + length + 2)
            }
        }
    }

    // MARK: - Head

    /// Returns true when a head was parsed (state moved on), false when more data is needed.
    private mutating func parseHead() throws(HTTPParseError) -> Bool {
        // Ignore empty lines before a request line (RFC 9112 §2.2).
        while buffer.count - readIndex >= 2, buffer[readIndex] == UInt8(ascii: "\r"),
            buffer[readIndex + 1] == UInt8(ascii: "\n")
        {
            readIndex += 2
        }
        if headScanIndex < readIndex { headScanIndex = readIndex }
        compactIfUseful()
        guard let end = findHeadEnd() else {
            if buffer.count - readIndex > limits.maxHeaderBytes { throw .headerFieldsTooLarge }
            return false
        }
        // `end` indexes the first byte after CRLFCRLF.
        if end - readIndex > limits.maxHeaderBytes { throw .headerFieldsTooLarge }
        let head = try buffer.withUnsafeBufferPointer { (all) throws(HTTPParseError) -> PendingHead in
            try Self.parseHeadBytes(UnsafeBufferPointer(rebasing: all[readIndex..<(end - 2)]))
        }
        readIndex = end
        headScanIndex = end
        body = []
        try beginBody(head)
        return true
    }

    private mutating func findHeadEnd() -> Int? {
        let count = buffer.count
        var i = max(headScanIndex, readIndex)
        let found: Int? = buffer.withUnsafeBufferPointer { p in
            while i + 3 < count {
                if p[i + 3] == 10 {
                    if p[i] == 13 && p[i + 1] == 10 && p[i + 2] == 13 { return i + 4 }
                    i += 1
                } else if p[i + 3] == 13 {
                    i += 1
                } else {
                    i += 4
                }
            }
            return nil
        }
        if found == nil { headScanIndex = max(readIndex, count - 3) }
        return found
    }

    private mutating func beginBody(_ head: PendingHead) throws(HTTPParseError) {
        let contentLengths = head.headers.values("content-length")
        let transferEncodings = head.headers.values("transfer-encoding")
        if !contentLengths.isEmpty && !transferEncodings.isEmpty {
            throw .badRequest("Content-Length together with Transfer-Encoding")
        }
        if contentLengths.count > 1 { throw .badRequest("duplicate Content-Length") }
        if head.versionMinor == 1 {
            let hosts = head.headers.values("host")
            if hosts.count != 1 { throw .badRequest(hosts.isEmpty ? "missing Host header" : "duplicate Host header") }
        }
        let expectsContinue =
            head.versionMinor == 1 && (head.headers["expect"]?.lowercased() == "100-continue")
        pending = head
        if let te = transferEncodings.first {
            if transferEncodings.count > 1 { throw .badRequest("duplicate Transfer-Encoding") }
            if head.versionMinor == 0 { throw .badRequest("Transfer-Encoding in an HTTP/1.0 request") }
            let codings = te.split(separator: ",").map { $0.trimmingASCIIWhitespace().lowercased() }
            if codings.last != "chunked" { throw .badRequest("Transfer-Encoding must end in chunked") }
            if codings.count != 1 { throw .notImplemented("transfer coding '\(te)' is not supported") }
            continuePending = expectsContinue
            state = .chunkSize
            return
        }
        if let cl = contentLengths.first {
            guard let length = Self.parseContentLength(cl) else { throw .badRequest("invalid Content-Length") }
            if length > limits.maxBodyBytes { throw .payloadTooLarge(limit: limits.maxBodyBytes) }
            continuePending = expectsContinue && length > 0
            state = .fixedBody(remaining: length)
            return
        }
        continuePending = false
        state = .fixedBody(remaining: 0)
    }

    private mutating func finishRequest() -> HTTPRequest {
        let head = pending!
        pending = nil
        state = .head
        continuePending = false
        let request = HTTPRequest(
            method: head.method,
            target: head.target,
            versionMinor: head.versionMinor,
            headers: head.headers,
            body: body,
            keepAlive: head.keepAlive
        )
        body = []
        return request
    }

    private mutating func compactIfUseful() {
        if readIndex > 0 && readIndex == buffer.count && buffer.capacity > 128 * 1024 {
            // Everything consumed after a large request: give the memory back rather than keep
            // it for the connection's lifetime (a burst of large bodies must not stay resident).
            buffer = []
            headScanIndex = 0
            readIndex = 0
        } else if readIndex > 0 && (readIndex == buffer.count || readIndex >= 64 * 1024) {
            buffer.removeFirst(readIndex)
            headScanIndex -= readIndex
            if headScanIndex < 0 { headScanIndex = 0 }
            readIndex = 0
        }
    }

    private func findCRLF(from start: Int, limit: Int) -> Int? {
        let end = min(buffer.count, start + limit + 2)
        var i = start
        while i + 1 < end {
            if buffer[i] == 13 && buffer[i + 1] == 10 { return i }
            i += 1
        }
        return nil
    }

    private func parseChunkSize(_ range: Range<Int>) throws(HTTPParseError) -> Int {
        var size = 0
        var digits = 0
        var i = range.lowerBound
        // Every digit is checked against the body limit before the next one is read, so the
        // value never grows past `maxBodyBytes * 16 + 15`: no arithmetic on it can overflow,
        // however many digits (leading zeros included) the line holds.
        while i < range.upperBound, let v = ASCII.hexValue(buffer[i]) {
            let (shifted, overflow) = size.multipliedReportingOverflow(by: 16)
            if overflow || shifted > limits.maxBodyBytes { throw .payloadTooLarge(limit: limits.maxBodyBytes) }
            size = shifted + v
            if size > limits.maxBodyBytes { throw .payloadTooLarge(limit: limits.maxBodyBytes) }
            digits += 1
            i += 1
        }
        if digits == 0 { throw .badRequest("invalid chunk size") }
        // Optional whitespace, then chunk extensions, which we ignore but check for stray bytes.
        while i < range.upperBound, buffer[i] == 32 || buffer[i] == 9 { i += 1 }
        if i < range.upperBound {
            guard buffer[i] == UInt8(ascii: ";") else { throw .badRequest("invalid chunk size") }
            while i < range.upperBound {
                let b = buffer[i]
                if (b < 32 && b != 9) || b == 127 { throw .badRequest("invalid chunk extension") }
                i += 1
            }
        }
        return size
    }

    private func validateTrailerLine(_ range: Range<Int>) throws(HTTPParseError) {
        guard let first = range.first, ASCII.isTokenByte(buffer[first]) else {
            throw .badRequest("invalid trailer field")
        }
        for i in range where buffer[i] < 32 && buffer[i] != 9 || buffer[i] == 127 {
            throw .badRequest("invalid trailer field")
        }
        guard range.contains(where: { buffer[$0] == UInt8(ascii: ":") }) else {
            throw .badRequest("invalid trailer field")
        }
    }

    // MARK: - Byte-level helpers (static, pure)

    private static func parseHeadBytes(_ p: UnsafeBufferPointer<UInt8>) throws(HTTPParseError) -> PendingHead {
        // Request line.
        var i = 0
        let n = p.count
        let methodStart = i
        while i < n, ASCII.isTokenByte(p[i]) { i += 1 }
        if i == methodStart || i >= n || p[i] != 32 { throw .badRequest("malformed request line") }
        let method = String(decoding: UnsafeBufferPointer(rebasing: p[methodStart..<i]), as: UTF8.self)
        i += 1
        let targetStart = i
        while i < n, p[i] > 32, p[i] < 127 { i += 1 }
        if i == targetStart || i >= n || p[i] != 32 { throw .badRequest("malformed request target") }
        let target = String(decoding: UnsafeBufferPointer(rebasing: p[targetStart..<i]), as: UTF8.self)
        i += 1
        // HTTP-version CRLF
        guard n - i >= 8, p[i] == 72, p[i + 1] == 84, p[i + 2] == 84, p[i + 3] == 80, p[i + 4] == 47,
            ASCII.isDigit(p[i + 5]), p[i + 6] == 46, ASCII.isDigit(p[i + 7])
        else { throw .badRequest("malformed HTTP version") }
        let major = Int(p[i + 5] - 48)
        let minor = Int(p[i + 7] - 48)
        i += 8
        if i < n {
            guard n - i >= 2, p[i] == 13, p[i + 1] == 10 else { throw .badRequest("malformed request line") }
            i += 2
        }
        guard major == 1, minor <= 1 else { throw .versionNotSupported }

        var headers = HTTPHeaders()
        var connectionClose = false
        var connectionKeepAlive = false
        while i < n {
            // One field line, ending at CRLF or at the end of the block.
            var lineEnd = i
            while lineEnd < n, p[lineEnd] != 13, p[lineEnd] != 10 { lineEnd += 1 }
            if lineEnd < n {
                guard lineEnd + 1 < n, p[lineEnd] == 13, p[lineEnd + 1] == 10 else {
                    throw .badRequest("bare CR or LF in header block")
                }
            }
            if p[i] == 32 || p[i] == 9 { throw .badRequest("obsolete line folding is not allowed") }
            let nameStart = i
            while i < lineEnd, ASCII.isTokenByte(p[i]) { i += 1 }
            if i == nameStart || i >= lineEnd || p[i] != UInt8(ascii: ":") {
                throw .badRequest("malformed header field")
            }
            var name = [UInt8](UnsafeBufferPointer(rebasing: p[nameStart..<i]))
            for k in name.indices where name[k] >= 65 && name[k] <= 90 { name[k] += 32 }
            i += 1
            while i < lineEnd, p[i] == 32 || p[i] == 9 { i += 1 }
            var valueEnd = lineEnd
            while valueEnd > i, p[valueEnd - 1] == 32 || p[valueEnd - 1] == 9 { valueEnd -= 1 }
            for k in i..<valueEnd where (p[k] < 32 && p[k] != 9) || p[k] == 127 {
                throw .badRequest("invalid character in header value")
            }
            let nameString = String(decoding: name, as: UTF8.self)
            let value = String(decoding: UnsafeBufferPointer(rebasing: p[i..<valueEnd]), as: UTF8.self)
            if nameString == "connection" {
                for token in value.split(separator: ",") {
                    let t = token.trimmingASCIIWhitespace().lowercased()
                    if t == "close" { connectionClose = true }
                    if t == "keep-alive" { connectionKeepAlive = true }
                }
            }
            headers.appendLowercased(name: nameString, value: value)
            i = lineEnd + 2
        }
        let keepAlive = minor == 1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
        return PendingHead(method: method, target: target, versionMinor: minor, headers: headers, keepAlive: keepAlive)
    }

    static func parseContentLength(_ value: String) -> Int? {
        let utf8 = value.utf8
        guard !utf8.isEmpty, utf8.allSatisfy(ASCII.isDigit) else { return nil }
        // More than 15 digits is larger than any body limit: report it as such (413), never
        // compute it. At most 15 digits: 999,999,999,999,999 < Int.max, so no overflow below.
        if utf8.count > 15 { return Int.max }
        var n = 0
        for b in utf8 {
            guard ASCII.isDigit(b) else { return nil }
            n = n &* 10 &+ Int(b - 48)
        }
        return n
    }

}
