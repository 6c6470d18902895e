import CSystemShims
import Dispatch
import IngestCore
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Handles complete requests. Called on the connection's event-loop queue; must answer each
/// request exactly once through its ``HTTPResponder``, on that same queue (hop with
/// ``HTTPResponder/loop`` `.execute` when the answer is computed elsewhere).
public protocol HTTPRequestHandler: AnyObject, Sendable {
    func handle(_ request: HTTPRequest, responder: HTTPResponder)
}

/// Notified of responses the server produces on its own (parse errors, timeouts, connection cap),
/// which never reach the handler. Called on event-loop queues.
public protocol HTTPServerObserver: AnyObject, Sendable {
    func serverResponded(status: HTTPStatus)
}

/// Answers one request. It may be passed between threads, but ``respond(_:)`` must be called
/// on ``loop``'s queue (hop there with `loop.execute`).
public struct HTTPResponder: @unchecked Sendable {
    // @unchecked: the connection is confined to `loop.queue`; callers hop there before using it.
    public let loop: EventLoop
    let connection: HTTPConnection
    let sequence: UInt64

    /// Queues the response; responses on a connection go out in request order.
    public func respond(_ response: HTTPResponse) {
        connection.respond(sequence: sequence, response)
    }

    /// Closes the connection without answering (fault injection in simulators).
    public func abortConnection() {
        connection.close()
    }

    /// Answers `response` (a `101 Switching Protocols`) and hands the connection to `handler`
    /// for the rest of its life: bytes the client sends from then on (including any that came
    /// right behind the request) go to the handler instead of the HTTP parser. Only for the last
    /// request a connection has sent (the client waits for the 101 before speaking the new
    /// protocol). Must be called on ``loop``'s queue.
    public func upgrade(_ response: HTTPResponse, to handler: any UpgradedConnectionHandler) {
        connection.upgrade(sequence: sequence, response, handler: handler)
    }
}

/// The new owner of a connection after a protocol upgrade (a WebSocket endpoint). Called on
/// the connection's loop queue.
public protocol UpgradedConnectionHandler: AnyObject {
    /// The 101 is on its way: the handler may write from now on.
    func opened(_ connection: UpgradedConnection)
    func received(_ bytes: [UInt8], on connection: UpgradedConnection)
    /// The connection is gone (the peer closed it, or the server is shutting down).
    func closed(_ connection: UpgradedConnection)
}

/// A connection taken over after an upgrade. Confined to ``loop``'s queue.
public struct UpgradedConnection: @unchecked Sendable {
    // @unchecked: the connection is confined to `loop.queue` (asserted in every call).
    public let loop: EventLoop
    let connection: HTTPConnection

    /// Queues `bytes` for the peer (written in order, as the socket takes them).
    public func write(_ bytes: [UInt8]) { connection.writeUpgraded(bytes) }

    /// Writes what is queued, then closes.
    public func close() { connection.closeUpgraded() }

    /// Closes at once, dropping unwritten bytes (a simulated network failure).
    public func abort() { connection.close() }

    public var id: ObjectIdentifier { ObjectIdentifier(connection) }
}

/// Configuration of the HTTP server.
public struct HTTPServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Serial event-loop queues, each driving its own epoll set.
    public var eventLoopCount: Int
    /// Open connections above this are answered 503 and closed.
    public var maxConnections: Int
    public var limits: HTTPRequestParser.Limits
    /// From a request's first byte until its header block is complete.
    public var headerReadTimeout: Duration
    /// From the end of the header block until the body is complete.
    public var bodyReadTimeout: Duration
    /// How long a keep-alive connection may sit without a request.
    public var idleTimeout: Duration
    /// Requests a connection may have outstanding before the server stops reading from it.
    public var maxPipelinedRequests: Int
    public var backlog: Int32
    /// Request bytes all connections together may hold in memory (see ``BodyBudget``).
    public var bodyBudgetBytes: Int
    /// `Retry-After` (seconds) on the 503 for a body that does not fit the budget.
    public var overBudgetRetryAfterSeconds: Int

    public init(
        host: String = "0.0.0.0",
        port: Int = 8080,
        eventLoopCount: Int = 2,
        maxConnections: Int = 10_000,
        limits: HTTPRequestParser.Limits = .init(),
        headerReadTimeout: Duration = .seconds(10),
        bodyReadTimeout: Duration = .seconds(30),
        idleTimeout: Duration = .seconds(75),
        maxPipelinedRequests: Int = 64,
        backlog: Int32 = 1024,
        bodyBudgetBytes: Int = 256 << 20,
        overBudgetRetryAfterSeconds: Int = 1
    ) {
        self.host = host
        self.port = port
        self.eventLoopCount = eventLoopCount
        self.maxConnections = maxConnections
        self.limits = limits
        self.headerReadTimeout = headerReadTimeout
        self.bodyReadTimeout = bodyReadTimeout
        self.idleTimeout = idleTimeout
        self.maxPipelinedRequests = maxPipelinedRequests
        self.backlog = backlog
        self.bodyBudgetBytes = bodyBudgetBytes
        self.overBudgetRetryAfterSeconds = overBudgetRetryAfterSeconds
    }
}

/// A non-blocking HTTP/1.1 server on Dispatch: N event loops, each a serial queue driving its
/// own epoll set. Connections are accepted on loop 0 and spread round-robin over the loops;
/// a connection stays on its loop for life.
public final class HTTPServer: @unchecked Sendable {
    // @unchecked: `listener` and `nextLoop` are confined to loops[0].queue (asserted); each
    // loop's `LoopConnections` is confined to that loop's queue (asserted); the array holding
    // them is never written after init; the counters are atomics.

    public let configuration: HTTPServerConfiguration
    public let loops: [EventLoop]
    let handler: any HTTPRequestHandler
    weak var observer: (any HTTPServerObserver)?
    let logger: Logger
    private var listener: Listener?
    private var nextLoop = 0
    let openConnections = Atomic<Int>(0)
    /// Per loop: its live connections. The array is immutable; each table is confined to
    /// its loop's queue (one reference type per loop, so loops never write shared storage).
    let connectionsByLoop: [LoopConnections]
    private let draining = Atomic<Bool>(false)
    public private(set) var port: Int = 0
    /// Request bytes held in memory across all connections.
    public let bodyBudget: BodyBudget

    public init(
        configuration: HTTPServerConfiguration,
        handler: any HTTPRequestHandler,
        observer: (any HTTPServerObserver)? = nil,
        logger: Logger
    ) throws(SystemError) {
        self.configuration = configuration
        self.handler = handler
        self.observer = observer
        self.logger = logger
        self.bodyBudget = BodyBudget(limitBytes: configuration.bodyBudgetBytes)
        var loops: [EventLoop] = []
        for i in 0..<max(1, configuration.eventLoopCount) { loops.append(try EventLoop(index: i)) }
        self.loops = loops
        self.connectionsByLoop = loops.map { LoopConnections(loop: $0) }
    }

    /// Binds and starts serving. Returns the bound port (useful with port 0).
    @discardableResult
    public func start() throws(SystemError) -> Int {
        let (fd, port) = try Posix.listen(
            host: configuration.host,
            port: configuration.port,
            backlog: configuration.backlog
        )
        self.port = port
        for loop in loops {
            loop.start()
            loop.queue.sync {
                loop.scheduleRepeating(every: .milliseconds(100)) { [unowned self] in self.sweep(loop: loop) }
            }
        }
        let listener = Listener(fd: fd, server: self)
        self.listener = listener
        var failure: SystemError?
        loops[0].queue.sync {
            do throws(SystemError) { try loops[0].register(fd: fd, events: CSYS_EPOLLIN, listener) } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        logger.info("HTTP server listening", metadata: ["http.host": "\(configuration.host)", "http.port": "\(port)"])
        return port
    }

    /// The number of open client connections.
    public var connectionCount: Int { openConnections.load(ordering: .relaxed) }

    /// Stops accepting new connections (the listening socket is closed).
    public func stopAccepting() {
        loops[0].queue.sync {
            guard let listener else { return }
            loops[0].deregister(fd: listener.fd)
            Glibc.close(listener.fd)
            self.listener = nil
        }
    }

    /// Graceful shutdown: stop accepting, close idle connections, let connections with requests
    /// in flight finish them (answering no further requests), and force-close whatever is left
    /// at `deadline`.
    public func shutdown(deadline: Duration) async {
        stopAccepting()
        draining.store(true, ordering: .relaxed)
        for loop in loops {
            loop.queue.sync {
                for connection in connectionsByLoop[loop.index].all { connection.beginDraining() }
            }
        }
        let clock = ContinuousClock()
        let end = clock.now + deadline
        // Connections answer their last responses (the loops keep running meanwhile).
        while connectionCount > 0 && clock.now < end {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for loop in loops {
            loop.queue.sync {
                for connection in connectionsByLoop[loop.index].all { connection.close() }
                loop.stop()
            }
        }
    }

    var isDraining: Bool { draining.load(ordering: .relaxed) }

    // MARK: - Accepting (loops[0].queue)

    fileprivate func acceptConnections(listenFD: Int32) {
        dispatchPrecondition(condition: .onQueue(loops[0].queue))
        while true {
            let result: IOResult<Int32>
            do { result = try Posix.accept(listenFD) } catch {
                // EMFILE and friends: log and retry on the next readiness event.
                logger.warning("accept failed", metadata: ["error": "\(error)"])
                return
            }
            guard case .processed(let fd) = result else { return }
            Posix.setNoDelay(fd)
            if openConnections.load(ordering: .relaxed) >= configuration.maxConnections || isDraining {
                rejectOverCapacity(fd)
                continue
            }
            openConnections.add(1, ordering: .relaxed)
            let loop = loops[nextLoop]
            nextLoop = (nextLoop + 1) % loops.count
            loop.execute { [self] in self.adopt(fd: fd, on: loop) }
        }
    }

    private func adopt(fd: Int32, on loop: EventLoop) {
        let connection = HTTPConnection(fd: fd, loop: loop, server: self)
        do {
            try loop.register(fd: fd, events: connection.interest, connection)
            connectionsByLoop[loop.index].insert(connection)
        } catch {
            logger.warning("cannot register connection", metadata: ["error": "\(error)"])
            Glibc.close(fd)
            openConnections.subtract(1, ordering: .relaxed)
        }
    }

    private static let overCapacityResponse: [UInt8] = {
        var out: [UInt8] = []
        HTTPResponse.error(.serviceUnavailable, "too many connections", headers: [("Retry-After", "1")])
            .serialize(into: &out, keepAlive: false)
        return out
    }()

    /// Answers 503 on a connection over the cap and closes it (best effort, never blocks).
    private func rejectOverCapacity(_ fd: Int32) {
        Self.overCapacityResponse.withUnsafeBytes { _ = try? Posix.send(fd, $0) }
        Glibc.shutdown(fd, Int32(SHUT_WR))
        Glibc.close(fd)
        observer?.serverResponded(status: .serviceUnavailable)
    }

    /// Called by a connection (on its loop) once its fd is closed.
    func connectionClosed(_ connection: HTTPConnection, loop: EventLoop) {
        if connectionsByLoop[loop.index].remove(connection) {
            openConnections.subtract(1, ordering: .relaxed)
        }
    }

    private func sweep(loop: EventLoop) {
        let now = DispatchTime.now().uptimeNanoseconds
        for connection in connectionsByLoop[loop.index].all { connection.checkTimeouts(now: now) }
        if loop.index == 0 { releaseMemoryAfterBursts() }
    }

    /// The most bytes the budget held since memory was last given back (loop 0 only).
    private var budgetPeak = 0

    /// After a burst of request bodies has passed, free heap memory goes back to the system
    /// (off the loop: trimming a large heap takes milliseconds).
    private func releaseMemoryAfterBursts() {
        dispatchPrecondition(condition: .onQueue(loops[0].queue))
        let used = bodyBudget.usedBytes
        budgetPeak = max(budgetPeak, used)
        if budgetPeak > 16 << 20 && used < 4 << 20 {
            budgetPeak = used
            DispatchQueue.global().async { csys_allocator_release_free_memory() }
        }
    }

    /// Maps request-sized allocations directly so that memory used by a burst is returned
    /// when it is freed (see `csys_allocator_map_large_blocks`). Process-wide: call once at
    /// start-up, from the executable.
    public static func configureAllocatorForBursts() {
        csys_allocator_map_large_blocks(128 << 10)
    }
}

/// One event loop's live connections. Confined to that loop's queue: every access asserts it.
final class LoopConnections {
    private let queue: DispatchQueue
    private var table: [ObjectIdentifier: HTTPConnection] = [:]

    init(loop: EventLoop) {
        self.queue = loop.queue
    }

    func insert(_ connection: HTTPConnection) {
        dispatchPrecondition(condition: .onQueue(queue))
        table[ObjectIdentifier(connection)] = connection
    }

    /// Removes `connection`; false when it was not (or no longer) registered.
    func remove(_ connection: HTTPConnection) -> Bool {
        dispatchPrecondition(condition: .onQueue(queue))
        return table.removeValue(forKey: ObjectIdentifier(connection)) != nil
    }

    /// A snapshot (connections may close while the caller iterates).
    var all: [HTTPConnection] {
        dispatchPrecondition(condition: .onQueue(queue))
        return Array(table.values)
    }
}

/// The listening socket's registrant on loops[0].
private final class Listener: EpollRegistrant {
    let fd: Int32
    unowned let server: HTTPServer

    init(fd: Int32, server: HTTPServer) {
        self.fd = fd
        self.server = server
    }

    func handleEvents(_ events: UInt32) {
        server.acceptConnections(listenFD: fd)
    }
}
