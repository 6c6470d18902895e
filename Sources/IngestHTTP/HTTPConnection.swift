import CSystemShims
import Dispatch
import IngestCore

#if canImport(Glibc)
import Glibc
#endif

/// One client connection.
///
/// **Confinement:** all members are confined to `loop.queue`; the server creates, drives and
/// closes it there, and ``HTTPResponder`` must be used there too.
///
/// Requests are parsed incrementally and handed to the handler in order; each gets a slot, and
/// responses are written strictly in slot order (pipelining). After a response that closes the
/// connection (a parse error, `Connection: close`), no further request is read: the server
/// half-closes, discards what the client still sends for a short while (so the client sees the
/// response rather than a reset), then closes.
final class HTTPConnection: EpollRegistrant {
    private enum Phase {
        case idle, readingHead, readingBody, awaitingResponses, lingering
    }

    let fd: Int32
    let loop: EventLoop
    private unowned let server: HTTPServer
    private var parser: HTTPRequestParser
    private var slots: [(sequence: UInt64, response: HTTPResponse?)] = []
    private var slotHead = 0
    private var nextSequence: UInt64 = 0
    private var output: [UInt8] = []
    private var outputOffset = 0
    /// No further requests are read (a closing response is queued, or the server is draining).
    private var stopReadingRequests = false
    /// The peer sent EOF.
    private var peerClosed = false
    private var lingering = false
    private(set) var isClosed = false
    private var phase = Phase.idle
    private var phaseStarted: UInt64
    private var lastProgress: UInt64
    private var registeredInterest: UInt32 = 0
    /// What this connection is charged in the server's ``BodyBudget``.
    private var charged = 0
    /// Set once the connection was upgraded: it owns every byte from then on.
    private var upgraded: (any UpgradedConnectionHandler)?
    /// The upgrade is answered; the handler takes over once the 101 is written.
    private var pendingUpgrade: (sequence: UInt64, handler: any UpgradedConnectionHandler)?
    private var closeAfterFlush = false

    init(fd: Int32, loop: EventLoop, server: HTTPServer) {
        self.fd = fd
        self.loop = loop
        self.server = server
        self.parser = HTTPRequestParser(limits: server.configuration.limits)
        let now = DispatchTime.now().uptimeNanoseconds
        self.phaseStarted = now
        self.lastProgress = now
        self.registeredInterest = CSYS_EPOLLIN | CSYS_EPOLLRDHUP
    }

    private var outstanding: Int { slots.count - slotHead }

    /// The epoll interest this connection needs now.
    /// (Level-triggered: after the peer's EOF neither EPOLLIN nor EPOLLRDHUP is asked for, or
    /// they would fire continuously while responses are still pending.)
    var interest: UInt32 {
        var events: UInt32 = peerClosed ? 0 : CSYS_EPOLLRDHUP
        let readPaused = peerClosed || (!lingering && outstanding >= server.configuration.maxPipelinedRequests)
        if !readPaused { events |= CSYS_EPOLLIN }
        if outputOffset < output.count { events |= CSYS_EPOLLOUT }
        return events
    }

    private func updateInterest() {
        guard !isClosed else { return }
        let wanted = interest
        if wanted != registeredInterest {
            loop.modify(fd: fd, events: wanted)
            registeredInterest = wanted
        }
    }

    // MARK: - Events

    func handleEvents(_ events: UInt32) {
        dispatchPrecondition(condition: .onQueue(loop.queue))
        if isClosed { return }
        if events & CSYS_EPOLLOUT != 0 { flush() }
        if isClosed { return }
        if events & (CSYS_EPOLLIN | CSYS_EPOLLHUP | CSYS_EPOLLERR | CSYS_EPOLLRDHUP) != 0 { readAvailable() }
    }

    /// One read (up to 64 KiB) per visit. A connection in the middle of a large body (more than
    /// 64 KiB held) reads only while the batch's bulk allowance lasts; otherwise it waits for a
    /// later batch (level-triggered epoll reports it again, rotating through the ready list),
    /// so thousands of large uploads cannot make a small request or `/healthz` wait a pass.
    private func readAvailable() {
        if let upgraded {
            readUpgraded(upgraded)
            return
        }
        // Discarding what a refused client still sends (lingering close) is bulk work too.
        let bulk = lingering || (parser.isReadingBody && parser.heldByteCount > 64 * 1024)
        if bulk {
            if loop.bulkReadAllowance <= 0 { return }
            loop.bulkReadAllowance -= loop.scratch.count
        }
        if !lingering && !stopReadingRequests && parser.isReadingBody
            && !server.bodyBudget.admitsGrowth(held: parser.heldByteCount)
        {
            refuseOverBudget()
        } else if !isClosed {
            switch readOnce() {
            case nil:
                return
            case .wouldBlock:
                break
            case .processed(0):
                peerClosed = true
                if lingering {
                    close()
                    return
                }
            case .processed(let n):
                // While lingering, or after a closing response, input is discarded.
                if !lingering && !stopReadingRequests {
                    parser.append(UnsafeRawBufferPointer(rebasing: loop.scratch[0..<n]))
                }
            }
        }
        processBufferedRequests()
        // EOF with nothing left to answer (requests received before it are answered first).
        if peerClosed && !isClosed && outstanding == 0 && outputOffset == output.count {
            close()
            return
        }
        updatePhase()
        updateInterest()
    }

    /// Parses and dispatches every complete request in the buffer (up to the pipeline limit).
    private func processBufferedRequests() {
        if isProcessing { return }
        isProcessing = true
        defer {
            isProcessing = false
            chargeBudget()
        }
        while !isClosed && !stopReadingRequests && outstanding < server.configuration.maxPipelinedRequests {
            let event: HTTPRequestParser.Event
            do { event = try parser.next() } catch {
                stopReadingRequests = true
                enqueueLocal(.error(error.status, error.description, closeConnection: true))
                return
            }
            switch event {
            case .needMoreData:
                // A head was just read: its body must fit the server's memory budget.
                if let remaining = parser.remainingBodyBytes, remaining > 0, !isChargedForBody,
                    !server.bodyBudget.admits(additional: remaining)
                {
                    refuseOverBudget()
                }
                return
            case .continueExpected:
                if outstanding == 0 && outputOffset == output.count {
                    output.append(contentsOf: "HTTP/1.1 100 Continue\r\n\r\n".utf8)
                    flush()
                }
            case .request(let request):
                let sequence = nextSequence
                nextSequence += 1
                slots.append((sequence, nil))
                if !request.keepAlive || server.isDraining {
                    stopReadingRequests = true
                    closeAfterSequence = min(closeAfterSequence, sequence)
                }
                server.handler.handle(
                    request,
                    responder: HTTPResponder(loop: loop, connection: self, sequence: sequence)
                )
            }
        }
    }

    /// The response to this request closes the connection (`Connection: close`, draining).
    private var closeAfterSequence = UInt64.max
    /// Set while ``processBufferedRequests()`` runs, so a synchronous answer does not recurse into it.
    private var isProcessing = false

    /// Queues a server-generated response (parse error, timeout) after the outstanding ones.
    private func enqueueLocal(_ response: HTTPResponse) {
        server.observer?.serverResponded(status: response.status)
        let sequence = nextSequence
        nextSequence += 1
        slots.append((sequence, nil))
        respond(sequence: sequence, response)
    }

    func respond(sequence: UInt64, _ response: HTTPResponse) {
        dispatchPrecondition(condition: .onQueue(loop.queue))
        guard !isClosed else { return }
        guard let index = slots[slotHead...].firstIndex(where: { $0.sequence == sequence }),
            slots[index].response == nil
        else { return }
        slots[index].response = response
        var wrote = false
        while slotHead < slots.count, let ready = slots[slotHead].response {
            if let pending = pendingUpgrade, pending.sequence == slots[slotHead].sequence {
                ready.serialize(into: &output, keepAlive: true)
                slots.removeAll()
                slotHead = 0
                completeUpgrade(pending.handler)
                flush()
                return
            }
            let closing = ready.closeConnection || slots[slotHead].sequence >= closeAfterSequence
            ready.serialize(into: &output, keepAlive: !closing)
            slots[slotHead].response = nil
            slotHead += 1
            wrote = true
            if closing {
                stopReadingRequests = true
                slots.removeAll()
                slotHead = 0
                break
            }
        }
        if slotHead == slots.count {
            slots.removeAll(keepingCapacity: true)
            slotHead = 0
        }
        if wrote { flush() }
        guard !isClosed else { return }
        // Reading may resume now that the pipeline has room.
        if !stopReadingRequests && parser.bufferedByteCount > 0 { processBufferedRequests() }
        updatePhase()
        updateInterest()
    }

    private func flush() {
        while outputOffset < output.count {
            let result: IOResult<Int>
            do {
                result = try output.withUnsafeBytes { (p) throws(SystemError) -> IOResult<Int> in
                    try Posix.send(fd, UnsafeRawBufferPointer(rebasing: p[outputOffset...]))
                }
            } catch {
                close()
                return
            }
            switch result {
            case .processed(let n):
                outputOffset += n
                lastProgress = DispatchTime.now().uptimeNanoseconds
            case .wouldBlock:
                updateInterest()
                return
            }
        }
        output.removeAll(keepingCapacity: output.capacity <= 64 * 1024)
        outputOffset = 0
        if upgraded != nil {
            if closeAfterFlush { close() } else { updateInterest() }
            return
        }
        if stopReadingRequests && outstanding == 0 && pendingUpgrade == nil {
            beginLingeringClose()
        } else if peerClosed && outstanding == 0 {
            close()
        } else {
            updateInterest()
        }
    }

    /// Half-closes and discards input briefly so the client reads our last response.
    private func beginLingeringClose() {
        guard !lingering, !isClosed else { return }
        if peerClosed {
            close()
            return
        }
        lingering = true
        Glibc.shutdown(fd, Int32(SHUT_WR))
        phase = .lingering
        phaseStarted = DispatchTime.now().uptimeNanoseconds
        updateInterest()
    }

    /// Server shutdown: idle connections close now; busy ones finish what they have.
    func beginDraining() {
        dispatchPrecondition(condition: .onQueue(loop.queue))
        if upgraded != nil {
            close()
            return
        }
        stopReadingRequests = true
        if outstanding > 0 { closeAfterSequence = min(closeAfterSequence, nextSequence - 1) }
        if outstanding == 0 && outputOffset == output.count {
            if parser.hasPartialRequest {
                enqueueLocal(.error(.serviceUnavailable, "server shutting down", closeConnection: true))
            } else {
                close()
            }
        }
    }

    func close() {
        dispatchPrecondition(condition: .onQueue(loop.queue))
        guard !isClosed else { return }
        isClosed = true
        server.bodyBudget.charge(-charged)
        charged = 0
        let handler = upgraded
        upgraded = nil
        loop.deregister(fd: fd)
        Glibc.close(fd)
        slots.removeAll()
        server.connectionClosed(self, loop: loop)
        handler?.closed(UpgradedConnection(loop: loop, connection: self))
    }

    // MARK: - Protocol upgrade

    func upgrade(sequence: UInt64, _ response: HTTPResponse, handler: any UpgradedConnectionHandler) {
        dispatchPrecondition(condition: .onQueue(loop.queue))
        guard !isClosed else { return }
        stopReadingRequests = true
        pendingUpgrade = (sequence, handler)
        respond(sequence: sequence, response)
    }

    /// The 101 is queued: from here on bytes belong to the handler.
    private func completeUpgrade(_ handler: any UpgradedConnectionHandler) {
        upgraded = handler
        pendingUpgrade = nil
        let early = parser.takeUnparsedBytes()
        chargeBudget()
        phase = .idle
        updateInterest()
        handler.opened(UpgradedConnection(loop: loop, connection: self))
        if !early.isEmpty { handler.received(early, on: UpgradedConnection(loop: loop, connection: self)) }
    }

    private func readUpgraded(_ handler: any UpgradedConnectionHandler) {
        switch readOnce() {
        case nil, .wouldBlock:
            return
        case .processed(0):
            close()
        case .processed(let n):
            handler.received(Array(loop.scratch[0..<n]), on: UpgradedConnection(loop: loop, connection: self))
        }
    }

    /// One read into the loop's scratch buffer; nil when the socket failed (then it is closed).
    private func readOnce() -> IOResult<Int>? {
        do { return try Posix.read(fd, loop.scratch) } catch {
            close()
            return nil
        }
    }

    func writeUpgraded(_ bytes: [UInt8]) {
        dispatchPrecondition(condition: .onQueue(loop.queue))
        guard !isClosed else { return }
        output.append(contentsOf: bytes)
        flush()
        if !isClosed { updateInterest() }
    }

    func closeUpgraded() {
        dispatchPrecondition(condition: .onQueue(loop.queue))
        guard !isClosed else { return }
        if outputOffset >= output.count {
            close()
        } else {
            closeAfterFlush = true
        }
    }

    // MARK: - Memory budget

    /// Whether `charged` already includes the reservation for the body being read.
    private var isChargedForBody = false

    /// Brings this connection's charge up to date: what its parser holds, plus for a body of
    /// known length the bytes still to come (reserved once the body was admitted).
    private func chargeBudget() {
        guard !isClosed else { return }
        let remaining = parser.remainingBodyBytes ?? 0
        isChargedForBody = remaining > 0
        let now = max(parser.heldByteCount, parser.bufferedByteCount + remaining)
        server.bodyBudget.charge(now - charged)
        charged = now
    }

    /// The body does not fit the server's memory budget: 503 and close, dropping what was
    /// buffered (the client retries later, as `Retry-After` says).
    private func refuseOverBudget() {
        server.bodyBudget.countRefusal()
        stopReadingRequests = true
        parser = HTTPRequestParser(limits: server.configuration.limits)
        chargeBudget()
        enqueueLocal(
            .error(
                .serviceUnavailable,
                "the server holds too many request bodies in memory; retry later",
                headers: [("Retry-After", String(server.configuration.overBudgetRetryAfterSeconds))],
                closeConnection: true
            )
        )
    }

    // MARK: - Timeouts

    private func updatePhase() {
        let newPhase: Phase
        if lingering {
            newPhase = .lingering
        } else if outstanding > 0 || outputOffset < output.count {
            newPhase = .awaitingResponses
        } else if parser.isReadingBody {
            newPhase = .readingBody
        } else if parser.hasPartialRequest {
            newPhase = .readingHead
        } else {
            newPhase = .idle
        }
        if newPhase != phase {
            phase = newPhase
            phaseStarted = DispatchTime.now().uptimeNanoseconds
        }
    }

    func checkTimeouts(now: UInt64) {
        dispatchPrecondition(condition: .onQueue(loop.queue))
        guard !isClosed, upgraded == nil else { return }
        let config = server.configuration
        let elapsed = Duration.nanoseconds(Int64(now &- phaseStarted))
        switch phase {
        case .idle:
            if elapsed > config.idleTimeout { close() }
        case .readingHead:
            if elapsed > config.headerReadTimeout { timeOut() }
        case .readingBody:
            if elapsed > config.bodyReadTimeout { timeOut() }
        case .awaitingResponses:
            // The handler owns request deadlines; only a client that stopped reading our
            // output is cut off here.
            if outputOffset < output.count && Duration.nanoseconds(Int64(now &- lastProgress)) > config.idleTimeout {
                close()
            }
        case .lingering:
            if elapsed > (server.isDraining ? .milliseconds(300) : .seconds(2)) { close() }
        }
    }

    private func timeOut() {
        stopReadingRequests = true
        enqueueLocal(.error(.requestTimeout, "request not received in time", closeConnection: true))
    }
}
