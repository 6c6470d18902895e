import CSystemShims
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A response read off the wire by ``RawHTTPClient``.
public struct RawHTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

public struct RawHTTPClientError: Error, CustomStringConvertible {
    public var description: String

    public init(description: String) {
        self.description = description
    }
}

/// A blocking HTTP/1.1 client over a plain TCP socket, for tests and tools: it sends exactly
/// the bytes it is given (so tests can send malformed, pipelined or slow requests) and parses
/// responses with `Content-Length` bodies.
public final class RawHTTPClient {
    public let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects to `host:port` (IPv4) with a receive timeout.
    public init(host: String = "127.0.0.1", port: Int, timeout: Double = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else {
            closed = true
            throw RawHTTPClientError(description: "socket failed")
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let e = errno
            // Closed here, and marked so: a class whose init throws after its stored
            // properties are set still runs deinit, which closed the fd a second time. The
            // number was often reused by then (another test's epoll set or listener) — the
            // source of rare "epoll_ctl(ADD) failed: Bad file descriptor" failures.
            Glibc.close(fd)
            closed = true
            throw RawHTTPClientError(description: "connect to \(host):\(port) failed: errno \(e)")
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        setTimeout(timeout)
    }

    private var closed = false

    /// Half-closes: the server sees EOF but can still answer.
    public func shutdownWrite() {
        Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Closes the socket now (otherwise it closes when the client is released).
    public func close() {
        if !closed {
            closed = true
            Glibc.close(fd)
        }
    }

    deinit { close() }

    public func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw RawHTTPClientError(description: "send failed: errno \(errno)") }
            offset += n
        }
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Reads more bytes; returns false on EOF, throws on timeout or error.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n == 0 { return false }
        if n < 0 { throw RawHTTPClientError(description: "receive failed or timed out: errno \(errno)") }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    /// Reads one response (interim 1xx responses are returned too).
    public func readResponse() throws -> RawHTTPResponse {
        while true {
            if let end = findHeadEnd() {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                var lines = head.components(separatedBy: "\r\n")
                let statusLine = lines.removeFirst().split(separator: " ")
                guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
                    throw RawHTTPClientError(description: "bad status line: \(head)")
                }
                var headers: [(String, String)] = []
                for line in lines where !line.isEmpty {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers.append(
                        (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
                    )
                }
                let length = headers.first { $0.0.lowercased() == "content-length" }.flatMap { Int($0.1) } ?? 0
                let bodyStart = end + 4
                while buffer.count < bodyStart + length {
                    if !(try fill()) { throw RawHTTPClientError(description: "connection closed mid-body") }
                }
                let body = Array(buffer[bodyStart..<(bodyStart + length)])
                buffer.removeFirst(bodyStart + length)
                return RawHTTPResponse(status: status, headers: headers, body: body)
            }
            if !(try fill()) { throw RawHTTPClientError(description: "connection closed before a response") }
        }
    }

    /// The bytes available now (what is buffered, else one read): for upgraded connections,
    /// where the stream is no longer HTTP. Empty at EOF; throws on timeout or error.
    public func readSome() throws -> [UInt8] {
        if buffer.isEmpty { _ = try fill() }
        defer { buffer.removeAll() }
        return buffer
    }

    /// True when the server closed the connection (EOF) within the receive timeout.
    public func readEOF() -> Bool {
        while true {
            guard let more = try? fill() else { return false }
            if !more { return true }
        }
    }

    private func findHeadEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4)
        where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }

    /// Builds a request's bytes with `Content-Length`.
    public static func request(
        method: String = "POST",
        path: String,
        headers: [(String, String)] = [],
        body: [UInt8] = [],
        close: Bool = false
    ) -> [UInt8] {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n"
        for (n, v) in headers { text += "\(n): \(v)\r\n" }
        if method != "GET" || !body.isEmpty { text += "Content-Length: \(body.count)\r\n" }
        if close { text += "Connection: close\r\n" }
        text += "\r\n"
        return Array(text.utf8) + body
    }
}
