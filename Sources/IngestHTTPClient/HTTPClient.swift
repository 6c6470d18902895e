import CCurl
import Foundation
import IngestCore
import Synchronization

/// One outbound request.
public struct HTTPClientRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]?
    /// The whole-request deadline (connect, send, wait, receive); nil: the client's default.
    public var timeoutMilliseconds: Int?

    public init(
        method: String = "GET",
        url: String,
        headers: [(name: String, value: String)] = [],
        body: [UInt8]? = nil,
        timeoutMilliseconds: Int? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}

/// A complete response (any status: mapping statuses to errors is the caller's policy).
public struct HTTPClientResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// The first value of the header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }
}

/// Why a request got no response.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        /// The request itself is unusable (bad URL, unsupported scheme, bad header).
        case invalidRequest
        /// No response within the request's deadline.
        case timedOut
        /// DNS, TCP or proxy failure, or the connection broke before a response.
        case connectionFailed
        /// TLS failed: handshake, an untrusted certificate, an unreadable CA file.
        case tls
        /// The response body exceeded ``HTTPClientConfiguration/maxResponseBytes``.
        case responseTooLarge
        /// The client was shut down.
        case shutDown
        /// Anything else libcurl reports.
        case transfer
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    /// Worth retrying later (the request may not have reached the server, or it was slow).
    public var isTransient: Bool { kind == .timedOut || kind == .connectionFailed }
}

/// The process's outbound HTTP/1.1 client: libcurl's multi interface driven by one thread of
/// our own, shared by every caller (Genesys API, PagerDuty, TSDB push, audit webhooks, the
/// traffic generator).
///
/// - Connections are pooled and reused per host (``HTTPClientConfiguration/maxConnectionsPerHost``).
/// - TLS is verified against the system CAs, plus an optional CA file.
/// - `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` are honoured (``ProxySettings``).
/// - Every request has a deadline.
/// - **Cancellation cannot deadlock.** A cancelled task only records the request's id under a
///   small lock and wakes the loop; it never waits for the transfer, and the loop resumes a
///   continuation only with no lock of ours held. (URLSession's async API on Linux calls
///   `URLSessionTask.cancel()` — a `DispatchQueue.sync` — from inside the task's cancellation
///   handler, which holds the task's status lock; its work queue, completing the same
///   transfer, waits for that lock in `resume`: a deadlock seen as a hung test run.)
///
/// Confinement: every libcurl handle (`multi`, each easy handle, header lists) is used only on
/// the loop thread; other threads touch only `inbox` (a LockedValue) and `curl_multi_wakeup`, which
/// libcurl documents as callable from any thread.
public final class HTTPClient: @unchecked Sendable {
    // @unchecked: `multi` and `transfers` are confined to the loop thread (see above); the
    // inbox is a LockedValue; the counters are atomics.

    /// The client every owner in this process shares; configured from the environment.
    public static let shared: HTTPClient = {
        let environment = EnvironmentReader(ProcessInfo.processInfo.environment) { path in
            Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        return HTTPClient(configuration: (try? HTTPClientConfiguration(environment: environment)) ?? .init())
    }()

    public let configuration: HTTPClientConfiguration

    private enum Registration {
        /// `execute` registered the id; the transfer is not handed to the loop yet.
        case pending
        /// The task was cancelled before the transfer reached the loop.
        case cancelledEarly
        /// The loop owns the transfer.
        case running
    }

    private struct Inbox {
        var registrations: [UInt64: Registration] = [:]
        var starts: [Transfer] = []
        var cancels: [UInt64] = []
        var shuttingDown = false
        var loopStarted = false
    }

    private let inbox = LockedValue(Inbox())
    private let nextID = Atomic<UInt64>(1)
    private let inFlight = Atomic<Int>(0)
    /// `CURLM *` (`typedef void CURLM`): created in init, destroyed when the loop ends.
    private let multi: UnsafeMutableRawPointer
    /// Loop-thread state: transfers by easy handle.
    private var transfers: [UnsafeMutableRawPointer: Transfer] = [:]
    private let loopExited = Atomic<Bool>(false)

    public init(configuration: HTTPClientConfiguration = .init()) {
        self.configuration = configuration
        // Thread-safe since libcurl 7.84; repeated calls are counted.
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed: out of memory") }
        self.multi = multi
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, configuration.maxConnectionsPerHost)
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, max(8, configuration.maxConnectionsPerHost * 4))
    }

    /// Requests under way (for tests and metrics).
    public var requestsInFlight: Int { inFlight.load(ordering: .relaxed) }

    /// Sends `request` and returns the complete response.
    /// - Throws: ``HTTPClientError``, or `CancellationError` when the task was cancelled (the
    ///   transfer is aborted and its connection closed or returned to the pool by libcurl).
    public func execute(_ request: HTTPClientRequest) async throws -> HTTPClientResponse {
        let id = nextID.add(1, ordering: .relaxed).newValue
        inbox.withLock { $0.registrations[id] = .pending }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<HTTPClientResponse, any Error>) in
                let transfer = Transfer(id: id, request: request, continuation: continuation)
                enum Decision {
                    case run(startLoop: Bool)
                    case cancelled
                    case shutDown
                }
                let decision: Decision = inbox.withLock { box in
                    if box.shuttingDown {
                        box.registrations[id] = nil
                        return .shutDown
                    }
                    if case .cancelledEarly = box.registrations[id] {
                        box.registrations[id] = nil
                        return .cancelled
                    }
                    box.registrations[id] = .running
                    box.starts.append(transfer)
                    let start = !box.loopStarted
                    box.loopStarted = true
                    return .run(startLoop: start)
                }
                switch decision {
                case .run(let startLoop):
                    inFlight.add(1, ordering: .relaxed)
                    if startLoop { startLoopThread() }
                    curl_multi_wakeup(multi)
                case .cancelled:
                    transfer.take()?.resume(throwing: CancellationError())
                case .shutDown:
                    transfer.take()?.resume(throwing: HTTPClientError(.shutDown, "the HTTP client is shut down"))
                }
            }
        } onCancel: {
            // Runs under the task's status lock: take our lock briefly, never wait for the loop.
            let wake: Bool = inbox.withLock { box in
                switch box.registrations[id] {
                case .pending:
                    box.registrations[id] = .cancelledEarly
                    return false
                case .running:
                    box.cancels.append(id)
                    return true
                case .cancelledEarly, nil:
                    return false
                }
            }
            if wake { curl_multi_wakeup(multi) }
        }
    }

    /// Fails every request under way and new ones with ``HTTPClientError/Kind/shutDown``, and
    /// ends the loop thread. Waits (up to 5 s) for the loop to finish.
    public func shutdown() {
        let started: Bool = inbox.withLock { box in
            box.shuttingDown = true
            return box.loopStarted
        }
        guard started else { return }
        curl_multi_wakeup(multi)
        let deadline = ContinuousClock.now + .seconds(5)
        while !loopExited.load(ordering: .acquiring) && ContinuousClock.now < deadline { usleep(1000) }
    }

    // MARK: - The loop thread

    private func startLoopThread() {
        let thread = Thread { [self] in self.runLoop() }
        thread.name = "genesys-ingest.http-client"
        thread.start()
    }

    private func runLoop() {
        var running: Int32 = 0
        while true {
            let (starts, cancels, shuttingDown) = inbox.withLock { box in
                defer {
                    box.starts.removeAll()
                    box.cancels.removeAll()
                }
                return (box.starts, box.cancels, box.shuttingDown)
            }
            for transfer in starts { begin(transfer) }
            for id in cancels {
                if let (easy, transfer) = transfers.first(where: { $0.value.id == id }) {
                    finish(easy, transfer, .failure(CancellationError()))
                }
            }
            if shuttingDown {
                for (easy, transfer) in transfers {
                    finish(easy, transfer, .failure(HTTPClientError(.shutDown, "the HTTP client is shut down")))
                }
                break
            }
            _ = curl_multi_perform(multi, &running)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                    let transfer = transfers[easy]
                else { continue }
                let code = ccurl_message_result(message)
                finish(easy, transfer, code == CURLE_OK ? transfer.response(easy) : .failure(transfer.error(code)))
            }
            // Sleeps until a socket is ready, libcurl's next timeout, or a wakeup.
            _ = curl_multi_poll(multi, nil, 0, 1000, nil)
        }
        curl_multi_cleanup(multi)
        loopExited.store(true, ordering: .releasing)
    }

    /// Creates and adds the easy handle (loop thread).
    private func begin(_ transfer: Transfer) {
        guard let easy = curl_easy_init() else {
            complete(transfer, .failure(HTTPClientError(.transfer, "curl_easy_init failed: out of memory")))
            return
        }
        if let problem = transfer.configure(easy, configuration) {
            transfer.releaseHeaders()
            curl_easy_cleanup(easy)
            complete(transfer, .failure(problem))
            return
        }
        transfers[easy] = transfer
        let added = curl_multi_add_handle(multi, easy)
        if added != CURLM_OK {
            transfers[easy] = nil
            transfer.releaseHeaders()
            curl_easy_cleanup(easy)
            complete(transfer, .failure(HTTPClientError(.transfer, String(cString: curl_multi_strerror(added)))))
        }
    }

    /// Removes and destroys the easy handle, then answers the caller (loop thread).
    private func finish(
        _ easy: UnsafeMutableRawPointer,
        _ transfer: Transfer,
        _ result: Result<HTTPClientResponse, any Error>
    ) {
        // The easy handle must leave the multi handle before it is cleaned up.
        curl_multi_remove_handle(multi, easy)
        transfers[easy] = nil
        transfer.releaseHeaders()
        curl_easy_cleanup(easy)
        complete(transfer, result)
    }

    private func complete(_ transfer: Transfer, _ result: Result<HTTPClientResponse, any Error>) {
        inbox.withLock { $0.registrations[transfer.id] = nil }
        inFlight.subtract(1, ordering: .relaxed)
        // No lock of ours is held here (see the type's comment).
        transfer.take()?.resume(with: result)
    }
}

/// One request's state. Created by `execute`, then used only on the loop thread.
private final class Transfer: @unchecked Sendable {
    // @unchecked: handed to the loop thread through the inbox lock and used only there.
    let id: UInt64
    let request: HTTPClientRequest
    private var continuation: CheckedContinuation<HTTPClientResponse, any Error>?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    /// CURLOPT_ERRORBUFFER: libcurl writes a readable reason here; lives as long as the transfer.
    private let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    var body: [UInt8] = []
    var headers: [(name: String, value: String)] = []
    var maxBytes = 0
    var tooLarge = false

    init(id: UInt64, request: HTTPClientRequest, continuation: CheckedContinuation<HTTPClientResponse, any Error>) {
        self.id = id
        self.request = request
        self.continuation = continuation
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        errorBuffer.deallocate()
    }

    /// The continuation, once: whoever takes it resumes it.
    func take() -> CheckedContinuation<HTTPClientResponse, any Error>? {
        defer { continuation = nil }
        return continuation
    }

    /// Sets every option; returns a problem with the request instead of starting it.
    func configure(_ easy: UnsafeMutableRawPointer, _ configuration: HTTPClientConfiguration) -> HTTPClientError? {
        let lower = request.url.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
            return HTTPClientError(.invalidRequest, "only http:// and https:// URLs are supported: \(request.url)")
        }
        guard !request.method.isEmpty, request.method.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            return HTTPClientError(.invalidRequest, "invalid HTTP method '\(request.method)'")
        }
        maxBytes = configuration.maxResponseBytes
        var failed: CURLcode = CURLE_OK
        func check(_ code: CURLcode) { if code != CURLE_OK && failed == CURLE_OK { failed = code } }
        // Strings passed to setopt are copied by libcurl.
        check(ccurl_setopt_pointer(easy, CURLOPT_URL, request.url))
        check(ccurl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer))
        check(ccurl_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
        check(ccurl_setopt_long(easy, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS)))
        check(ccurl_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0))
        check(ccurl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, configuration.connectTimeoutMilliseconds))
        check(
            ccurl_setopt_long(
                easy,
                CURLOPT_TIMEOUT_MS,
                max(1, request.timeoutMilliseconds ?? configuration.defaultTimeoutMilliseconds)
            )
        )
        check(ccurl_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1))
        check(ccurl_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2))
        if let caFile = configuration.caFile {
            // CAINFO replaces the default bundle; CAPATH keeps the system CAs trusted as well
            // (OpenSSL looks in both).
            check(ccurl_setopt_pointer(easy, CURLOPT_CAINFO, caFile))
            check(ccurl_setopt_pointer(easy, CURLOPT_CAPATH, "/etc/ssl/certs"))
        }
        // Proxies come from our configuration only ("" stops libcurl reading the environment
        // on its own, so there is one source of truth).
        check(ccurl_setopt_pointer(easy, CURLOPT_PROXY, configuration.proxy.proxy(for: request.url) ?? ""))
        check(ccurl_setopt_pointer(easy, CURLOPT_USERAGENT, configuration.userAgent))

        switch request.method {
        case "GET" where request.body == nil:
            check(ccurl_setopt_long(easy, CURLOPT_HTTPGET, 1))
        case "HEAD":
            check(ccurl_setopt_long(easy, CURLOPT_NOBODY, 1))
        default:
            if request.method != "POST" { check(ccurl_setopt_pointer(easy, CURLOPT_CUSTOMREQUEST, request.method)) }
            if let body = request.body ?? (request.method == "POST" || request.method == "PUT" ? [] : nil) {
                // The size first, then COPYPOSTFIELDS copies exactly that many bytes.
                check(ccurl_setopt_off(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
                let empty: [UInt8] = [0]
                (body.isEmpty ? empty : body).withUnsafeBytes {
                    check(ccurl_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, $0.baseAddress))
                }
            }
        }
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in request.headers {
            guard !name.isEmpty, !name.utf8.contains(where: { $0 <= 32 || $0 == 58 || $0 == 127 }),
                !value.utf8.contains(where: { $0 == 10 || $0 == 13 || $0 == 0 })
            else {
                curl_slist_free_all(list)
                return HTTPClientError(.invalidRequest, "invalid header '\(name)'")
            }
            // curl_slist_append copies the string.
            list = curl_slist_append(list, "\(name): \(value)")
        }
        // No `Expect: 100-continue` round trip before bodies.
        list = curl_slist_append(list, "Expect:")
        headerList = list
        check(ccurl_setopt_pointer(easy, CURLOPT_HTTPHEADER, list))
        let me = Unmanaged.passUnretained(self).toOpaque()  // `transfers` keeps self alive
        check(ccurl_setopt_callback(easy, CURLOPT_WRITEFUNCTION, transferWriteBody))
        check(ccurl_setopt_pointer(easy, CURLOPT_WRITEDATA, me))
        check(ccurl_setopt_callback(easy, CURLOPT_HEADERFUNCTION, transferWriteHeader))
        check(ccurl_setopt_pointer(easy, CURLOPT_HEADERDATA, me))
        if failed != CURLE_OK {
            return HTTPClientError(
                .invalidRequest,
                "cannot configure the request: \(String(cString: curl_easy_strerror(failed)))"
            )
        }
        return nil
    }

    /// Frees what the transfer owned in C (after the easy handle left the multi handle).
    func releaseHeaders() {
        curl_slist_free_all(headerList)
        headerList = nil
    }

    func response(_ easy: UnsafeMutableRawPointer) -> Result<HTTPClientResponse, any Error> {
        .success(HTTPClientResponse(status: ccurl_response_code(easy), headers: headers, body: body))
    }

    func error(_ code: CURLcode) -> HTTPClientError {
        let detail = String(cString: errorBuffer)
        let reason = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        let target = "\(request.method) \(Self.redacted(request.url))"
        if tooLarge {
            return HTTPClientError(.responseTooLarge, "\(target): response body larger than \(maxBytes) bytes")
        }
        let kind: HTTPClientError.Kind
        switch code {
        case CURLE_OPERATION_TIMEDOUT: kind = .timedOut
        case CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT, CURLE_SEND_ERROR,
            CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE:
            kind = .connectionFailed
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM,
            CURLE_SSL_CIPHER, CURLE_SSL_ISSUER_ERROR:
            kind = .tls
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: kind = .invalidRequest
        default: kind = .transfer
        }
        return HTTPClientError(kind, "\(target): \(reason)")
    }

    /// The URL without its query (which may carry ids or keys) for messages.
    static func redacted(_ url: String) -> String {
        url.firstIndex(of: "?").map { String(url[..<$0]) + "?…" } ?? url
    }

    fileprivate func appendBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if body.count + bytes.count > maxBytes {
            tooLarge = true
            return false
        }
        body.append(contentsOf: bytes)
        return true
    }

    fileprivate func appendHeaderLine(_ bytes: UnsafeRawBufferPointer) {
        var line = bytes[...]
        while let last = line.last, last == 10 || last == 13 { line = line.dropLast() }
        if line.starts(with: "HTTP/".utf8) {
            // A new response head (after 100 Continue or a proxy's CONNECT answer).
            headers.removeAll()
            return
        }
        guard let colon = line.firstIndex(of: 58) else { return }
        let name = String(decoding: line[..<colon], as: UTF8.self)
        let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingASCIIWhitespace()
        headers.append((name, value))
    }
}

/// CURLOPT_WRITEFUNCTION: `userdata` is the unretained Transfer (kept alive by the client).
/// Returning less than `size * count` aborts the transfer (CURLE_WRITE_ERROR).
private let transferWriteBody: ccurl_data_callback = { data, size, count, userdata in
    let n = size * count
    guard let userdata, let data else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
    return transfer.appendBody(UnsafeRawBufferPointer(start: data, count: n)) ? n : 0
}

/// CURLOPT_HEADERFUNCTION: one header line per call, CRLF included.
private let transferWriteHeader: ccurl_data_callback = { data, size, count, userdata in
    let n = size * count
    guard let userdata, let data else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
    transfer.appendHeaderLine(UnsafeRawBufferPointer(start: data, count: n))
    return n
}
