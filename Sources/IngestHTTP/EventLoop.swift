import CSystemShims
import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// Something registered for readiness events on an ``EventLoop``.
protocol EpollRegistrant: AnyObject {
    /// Called on the loop's queue with the `EPOLL*` bits that are ready.
    func handleEvents(_ events: UInt32)
}

/// A serial Dispatch queue that drives a private epoll set.
///
/// One `DispatchSourceRead` watches the epoll fd; when it fires, the handler drains ready
/// events in batches (`epoll_wait` with timeout 0). This pays libdispatch's per-event costs
/// once per batch rather than once per socket event (see the README's performance notes).
///
/// **Confinement:** every member except `queue`, `index` and ``execute(_:)`` is confined to
/// `queue`. Handlers registered here run on `queue`.
public final class EventLoop: @unchecked Sendable {
    // @unchecked: mutable state is confined to `queue` (documented above).

    public let index: Int
    public let queue: DispatchQueue
    private let epollFD: Int32
    private var source: DispatchSourceRead?
    private var registrants: [Int32: EpollRegistrant] = [:]
    private let maxEvents = 1024
    /// Bytes connections streaming a large body may still read in the current batch (see
    /// ``HTTPConnection``): bulk uploads share a fixed slice of each batch, so a small request
    /// or a health check never waits behind a full pass over every upload.
    var bulkReadAllowance = 0
    static let bulkReadBytesPerBatch = 512 << 10
    private let eventSize = Int(csys_epoll_event_size())
    private let events: UnsafeMutableRawPointer
    /// A read buffer shared by every connection of this loop (used only inside one handler run).
    let scratch: UnsafeMutableRawBufferPointer
    private var timers: [DispatchSourceTimer] = []

    init(index: Int) throws(SystemError) {
        self.index = index
        self.queue = DispatchQueue(label: "genesys-ingest.http.loop-\(index)", qos: .userInitiated)
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if fd < 0 { throw SystemError(call: "epoll_create1", errno: errno) }
        self.epollFD = fd
        self.events = .allocate(byteCount: maxEvents * eventSize, alignment: 8)
        self.scratch = .allocate(byteCount: 64 * 1024, alignment: 16)
    }

    deinit {
        events.deallocate()
        scratch.deallocate()
        Glibc.close(epollFD)
    }

    /// Starts watching the epoll set. Call once.
    func start() {
        let source = DispatchSource.makeReadSource(fileDescriptor: epollFD, queue: queue)
        source.setEventHandler { [unowned self] in self.drain() }
        self.source = source
        source.resume()
    }

    /// Stops the loop; registered fds are not closed here. Must be called on `queue`.
    func stop() {
        for t in timers { t.cancel() }
        timers.removeAll()
        source?.cancel()
        source = nil
        registrants.removeAll()
    }

    /// Runs `work` on this loop's queue.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        queue.async(execute: work)
    }

    /// Calls `handler` on `queue` every `interval` until the loop stops. Must be called on `queue`.
    public func scheduleRepeating(every interval: DispatchTimeInterval, _ handler: @escaping () -> Void) {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(10))
        timer.setEventHandler(handler: handler)
        timers.append(timer)
        timer.resume()
    }

    /// Calls `onReadable` on `queue` whenever `fd` is readable (level-triggered) until
    /// ``unwatch(fileDescriptor:)``. The caller keeps ownership of `fd`. Must be called on `queue`.
    public func watch(fileDescriptor fd: Int32, onReadable: @escaping () -> Void) throws(SystemError) {
        try register(fd: fd, events: CSYS_EPOLLIN, ClosureRegistrant(onReadable))
    }

    /// Stops watching `fd`. Must be called on `queue`.
    public func unwatch(fileDescriptor fd: Int32) {
        deregister(fd: fd)
    }

    func register(fd: Int32, events: UInt32, _ registrant: EpollRegistrant) throws(SystemError) {
        if csys_epoll_ctl(epollFD, CSYS_EPOLL_CTL_ADD, fd, events, UInt64(UInt32(bitPattern: fd))) != 0 {
            throw SystemError(call: "epoll_ctl(ADD)", errno: errno)
        }
        registrants[fd] = registrant
    }

    func modify(fd: Int32, events: UInt32) {
        _ = csys_epoll_ctl(epollFD, CSYS_EPOLL_CTL_MOD, fd, events, UInt64(UInt32(bitPattern: fd)))
    }

    /// Removes `fd` from the epoll set (before the caller closes it).
    func deregister(fd: Int32) {
        _ = csys_epoll_ctl(epollFD, CSYS_EPOLL_CTL_DEL, fd, 0, 0)
        registrants[fd] = nil
    }

    /// One batch of ready events, then back to the queue: with many busy connections the
    /// epoll set never runs dry, and timers and work handed to this loop (delivery reports,
    /// spool completions) must not wait for a whole pass. The read source fires again at once
    /// while events are pending (level-triggered), after whatever the queue holds.
    private func drain() {
        let n = epoll_wait(epollFD, events.assumingMemoryBound(to: epoll_event.self), Int32(maxEvents), 0)
        if n <= 0 { return }
        bulkReadAllowance = Self.bulkReadBytesPerBatch
        for i in 0..<Int(n) {
            let e = (events + i * eventSize).assumingMemoryBound(to: epoll_event.self)
            let fd = Int32(truncatingIfNeeded: csys_epoll_event_u64(e))
            // A registrant closed earlier in this batch is gone: skip its stale event.
            registrants[fd]?.handleEvents(csys_epoll_event_events(e))
        }
    }
}

private final class ClosureRegistrant: EpollRegistrant {
    let handler: () -> Void
    init(_ handler: @escaping () -> Void) { self.handler = handler }
    func handleEvents(_ events: UInt32) { handler() }
}
