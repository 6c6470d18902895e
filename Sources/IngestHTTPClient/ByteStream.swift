import CCurl
import IngestCore

#if canImport(Glibc)
import Glibc
#endif

/// A raw byte stream to a server — TCP, or TLS verified against the system CAs (plus the
/// configured CA file) — opened by libcurl with `CONNECT_ONLY`, so the product keeps one TLS
/// stack and one proxy and CA configuration for everything outbound. Protocols libcurl does not
/// speak (the notification WebSocket) run their own framing over it.
///
/// Blocking calls with deadlines; confined to one thread at a time (the caller's).
public final class ByteStream: @unchecked Sendable {
    // @unchecked: the easy handle is used by one thread at a time (documented above).
    private let easy: UnsafeMutableRawPointer
    /// The connected socket, owned by libcurl (closed by curl_easy_cleanup).
    private let socket: Int32
    private var closed = false
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)

    /// Connects to the host and port of `url` (`http://` plain, `https://` TLS; the path is not
    /// requested). Fails with a message naming the host when the connection or the TLS
    /// handshake does not succeed within `connectTimeout`.
    public init(url: String, configuration: HTTPClientConfiguration, connectTimeout: Duration) throws(HTTPClientError) {
        let lower = url.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
            throw HTTPClientError(.invalidRequest, "only http:// and https:// URLs can be connected: \(url)")
        }
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        guard let easy = curl_easy_init() else { throw HTTPClientError(.transfer, "curl_easy_init failed") }
        errorBuffer.initialize(to: 0)
        var failed: CURLcode = CURLE_OK
        func check(_ code: CURLcode) { if code != CURLE_OK && failed == CURLE_OK { failed = code } }
        // Strings passed to setopt are copied by libcurl; the error buffer outlives the handle.
        check(ccurl_setopt_pointer(easy, CURLOPT_URL, url))
        check(ccurl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer))
        check(ccurl_setopt_long(easy, CURLOPT_CONNECT_ONLY, 1))
        check(ccurl_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
        check(ccurl_setopt_long(easy, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS)))
        check(ccurl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(connectTimeout.inSeconds * 1000))))
        check(ccurl_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1))
        check(ccurl_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2))
        if let caFile = configuration.caFile {
            check(ccurl_setopt_pointer(easy, CURLOPT_CAINFO, caFile))
            check(ccurl_setopt_pointer(easy, CURLOPT_CAPATH, "/etc/ssl/certs"))
        }
        check(ccurl_setopt_pointer(easy, CURLOPT_PROXY, configuration.proxy.proxy(for: url) ?? ""))
        if failed == CURLE_OK { failed = curl_easy_perform(easy) }
        let socket = failed == CURLE_OK ? ccurl_active_socket(easy) : -1
        guard failed == CURLE_OK, socket >= 0 else {
            let detail =
                errorBuffer.pointee != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(failed))
            curl_easy_cleanup(easy)
            errorBuffer.deallocate()
            let kind: HTTPClientError.Kind =
                switch failed {
                case CURLE_OPERATION_TIMEDOUT: .timedOut
                case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE,
                    CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER, CURLE_SSL_ISSUER_ERROR:
                    .tls
                case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: .invalidRequest
                default: .connectionFailed
                }
            throw HTTPClientError(kind, "cannot connect to \(Self.origin(of: url)): \(detail)")
        }
        self.easy = easy
        self.socket = socket
    }

    deinit {
        close()
        errorBuffer.deallocate()
    }

    /// Sends all of `bytes` before `deadline`.
    public func send(_ bytes: [UInt8], deadline: ContinuousClock.Instant) throws(HTTPClientError) {
        guard !closed else { throw HTTPClientError(.shutDown, "the stream is closed") }
        var offset = 0
        while offset < bytes.count {
            var sent = 0
            let code = bytes.withUnsafeBytes { b in
                curl_easy_send(easy, b.baseAddress! + offset, b.count - offset, &sent)
            }
            switch code {
            case CURLE_OK:
                offset += sent
            case CURLE_AGAIN:
                guard try wait(for: Int16(POLLOUT), until: deadline) else {
                    throw HTTPClientError(.timedOut, "sending timed out")
                }
            default:
                throw HTTPClientError(.connectionFailed, "send failed: \(String(cString: curl_easy_strerror(code)))")
            }
        }
    }

    /// Reads what is available into `buffer`, waiting until `deadline` for something to arrive.
    /// Returns the byte count, 0 when the peer closed the stream, nil when the deadline passed.
    public func receive(
        into buffer: UnsafeMutableRawBufferPointer,
        deadline: ContinuousClock.Instant
    )
        throws(HTTPClientError) -> Int?
    {
        guard !closed else { throw HTTPClientError(.shutDown, "the stream is closed") }
        while true {
            var received = 0
            // Asked first: TLS may hold decrypted bytes the socket no longer signals.
            let code = curl_easy_recv(easy, buffer.baseAddress, buffer.count, &received)
            switch code {
            case CURLE_OK:
                return received
            case CURLE_AGAIN:
                guard try wait(for: Int16(POLLIN), until: deadline) else { return nil }
            default:
                throw HTTPClientError(.connectionFailed, "receive failed: \(String(cString: curl_easy_strerror(code)))")
            }
        }
    }

    /// `scheme://host[:port]` of `url`: paths may carry credentials (a notification channel's
    /// URL is its only secret), so messages name the origin only.
    public static func origin(of url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return "(invalid URL)" }
        let rest = url[schemeEnd.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        let host = authority.split(separator: "@").last.map(String.init) ?? ""
        return String(url[..<schemeEnd.upperBound]) + host
    }

    /// Closes the connection (idempotent).
    public func close() {
        guard !closed else { return }
        closed = true
        curl_easy_cleanup(easy)
    }

    private func wait(for events: Int16, until deadline: ContinuousClock.Instant) throws(HTTPClientError) -> Bool {
        while true {
            let left = deadline - ContinuousClock.now
            if left <= .zero { return false }
            var fd = pollfd(fd: socket, events: events, revents: 0)
            let ms = Int32(min(left.inSeconds * 1000 + 1, 60_000))
            let r = poll(&fd, 1, ms)
            if r > 0 { return true }
            if r < 0 && errno != EINTR {
                throw HTTPClientError(.connectionFailed, "poll failed: \(String(cString: strerror(errno)))")
            }
        }
    }
}
