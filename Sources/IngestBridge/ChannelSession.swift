import Foundation
import GenesysAPI
import IngestCore
import IngestCrypto
import IngestWebSocket
import Logging

/// One configured channel, kept connected on a thread of its own: create a channel, replace its
/// subscriptions, connect its WebSocket, read until it dies, and again — each period without a
/// subscribed connection reported as a gap. Before a channel expires it is replaced by a fresh
/// one with an overlap (no gap; repeats dropped by digest).
///
/// Health: no message at all (Genesys sends a `channel.metadata` heartbeat about every 30 s) for
/// ``BridgeConfiguration/heartbeatTimeout`` means a dead socket; a quiet socket is probed with
/// `{"message":"ping"}` every ``BridgeConfiguration/pingInterval``; `v2.system.socket_closing`
/// reconnects at once. Heartbeats and pongs are not produced.
///
/// Confinement: the loop's state lives on its thread; `stopRequested` is atomic.
final class ChannelSession: @unchecked Sendable {
    // @unchecked: everything but `stopRequested` and `counters` is confined to the thread.
    let index: Int
    let topics: [String]
    private let configuration: BridgeConfiguration
    private let api: NotificationsAPI
    private let output: BridgeOutput
    private let logger: Logger
    private let stopRequested = LockedValue(false)
    private let done = DispatchSemaphore(value: 0)
    private var thread: Thread?

    struct Counters: Sendable {
        var messages = 0
        var heartbeats = 0
        var reconnects = 0
        var gaps = 0
        var rotations = 0
        var duplicates = 0
        var connected = false
        /// Each topic's latest subscription outcome (true: Permitted).
        var permitted: [String: Bool] = [:]
    }
    let counters = LockedValue(Counters())

    init(
        index: Int,
        topics: [String],
        configuration: BridgeConfiguration,
        api: NotificationsAPI,
        output: BridgeOutput,
        logger: Logger
    ) {
        self.index = index
        self.topics = topics
        self.configuration = configuration
        self.api = api
        self.output = output
        var logger = logger
        logger[metadataKey: "bridge.channel"] = "\(index)"
        self.logger = logger
    }

    func start() {
        let t = Thread { [self] in
            run()
            done.signal()
        }
        t.name = "genesys-ingest.bridge.channel-\(index)"
        thread = t
        t.start()
    }

    /// Stops reading (the socket is closed with 1001 "going away") and waits for the thread.
    func stop() {
        stopRequested.withLock { $0 = true }
        if thread != nil { done.wait() }
    }

    private var stopping: Bool { stopRequested.withLock { $0 } }

    /// Runs an async API call from this (non-cooperative) thread.
    private func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
        let result = LockedValue<Result<T, any Error>?>(nil)
        let finished = DispatchSemaphore(value: 0)
        Task {
            let r: Result<T, any Error>
            do { r = .success(try await work()) } catch { r = .failure(error) }
            result.withLock { $0 = r }
            finished.signal()
        }
        finished.wait()
        return try result.withLock { $0! }.get()
    }

    /// A subscribed, connected channel.
    private struct Live {
        var socket: WebSocketConnection
        /// When to open its successor (``BridgeConfiguration/rotateBeforeExpiry`` before `expires`).
        var rotateAt: ContinuousClock.Instant?
    }

    /// Creates a channel, subscribes it, connects its socket.
    private func open() throws -> Live {
        let channel = try blocking { [api] in try await api.createChannel() }
        let outcomes = try blocking { [api, topics] in
            try await api.replaceSubscriptions(channelID: channel.id, topics: topics)
        }
        let rejected = outcomes.filter { !$0.isPermitted }
        for r in rejected {
            logger.warning(
                "topic rejected by Genesys: its events will not arrive",
                metadata: [
                    "genesys.topic": "\(r.id)", "reason": "\(r.rejectionReason ?? "-")",
                    "missing_permissions": "\(r.missingPermissions ?? [])",
                ]
            )
        }
        counters.withLock { c in for o in outcomes { c.permitted[o.id] = o.isPermitted } }
        let socket = try WebSocketConnection.connect(url: channel.connectUri)
        var rotateAt: ContinuousClock.Instant?
        if let expires = channel.expires {
            let left = expires.timeIntervalSinceNow - configuration.rotateBeforeExpiry.inSeconds
            rotateAt = .now + .milliseconds(Int64(max(0, left) * 1000))
        }
        logger.info(
            "channel connected",
            metadata: ["bridge.topics": "\(topics.count)", "bridge.rejected": "\(rejected.count)"]
        )
        return Live(socket: socket, rotateAt: rotateAt)
    }

    private func run() {
        // The bridge was not receiving before it started: a start-up gap, closed by the first
        // subscribed connection, from when a previous process last received (the spool
        // directory keeps it) or else from now.
        let mark = ReceivingMark(directory: configuration.spoolDirectory, channel: index, topics: topics)
        var gapStart: (at: Int64, reason: String, detail: String?)? = (
            mark.read() ?? WallClock.nowMilliseconds(), "startup", nil
        )
        self.mark = mark
        var backoff = configuration.reconnectMinimum
        var live: Live?
        var lastHeard = WallClock.nowMilliseconds()
        while !stopping {
            do {
                if live == nil {
                    live = try open()
                    counters.withLock { $0.connected = true }
                    if let gap = gapStart {
                        publishGap(
                            from: gap.at,
                            to: WallClock.nowMilliseconds(),
                            reason: gap.reason,
                            detail: gap.detail
                        )
                        gapStart = nil
                    }
                    backoff = configuration.reconnectMinimum
                    lastHeard = WallClock.nowMilliseconds()
                }
                guard let current = live else { continue }
                let end = read(current.socket, rotateAt: current.rotateAt, lastHeard: &lastHeard)
                if end.reason == "rotate" {
                    live = rotate(current)
                    continue
                }
                live = nil
                counters.withLock { $0.connected = false }
                gapStart = (lastHeard, end.reason, end.detail)
                // A silent or failed socket gets no long goodbye: the next channel matters more
                // than a close handshake the server may never answer.
                let alive = end.reason == "stopped" || end.reason == "socket-closing"
                current.socket.close(
                    code: 1001,
                    reason: stopping ? "bridge stopping" : "reconnecting",
                    timeout: alive ? .seconds(2) : .zero
                )
            } catch {
                if gapStart == nil { gapStart = (lastHeard, "error", "\(error)") }
                logger.warning("channel failed; reconnecting", metadata: ["error": "\(error)"])
            }
            if stopping { break }
            counters.withLock { $0.reconnects += 1 }
            // Wait before the next attempt (short after a clean end, growing after failures).
            let deadline = ContinuousClock.now + backoff
            while !stopping && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.05) }
            backoff = min(backoff * 2, configuration.reconnectMaximum)
        }
        live?.socket.close(code: 1001, reason: "bridge stopping", timeout: .seconds(2))
        counters.withLock { $0.connected = false }
    }

    /// Channel rotation before `expires`: the successor is created, subscribed and connected
    /// while the old socket still delivers; what the old one still holds is read (until it has
    /// been quiet for a moment), then it is closed and reading continues on the new one. Both
    /// were subscribed in between, so the same notification can come twice: repeats are
    /// recognised by their digest and dropped. No gap. If the successor cannot be opened, the
    /// old channel is kept and rotation retried in 30 s (it expires into a gap otherwise).
    private func rotate(_ old: Live) -> Live {
        let next: Live
        do { next = try open() } catch {
            logger.warning("channel rotation failed; keeping the current channel", metadata: ["error": "\(error)"])
            var kept = old
            kept.rotateAt = .now + .seconds(30)
            return kept
        }
        var ignored = WallClock.nowMilliseconds()
        _ = read(
            old.socket,
            rotateAt: nil,
            lastHeard: &ignored,
            until: .now + .seconds(5),
            quietEnd: .milliseconds(200)
        )
        old.socket.close(code: 1000, reason: "rotated", timeout: .seconds(1))
        counters.withLock { $0.rotations += 1 }
        logger.info("channel rotated before it expired")
        return next
    }

    /// Reads until the socket dies, rotation is due, the bridge stops, `until` passes, or
    /// (with `quietEnd`) nothing arrived for that long; returns why it ended.
    private func read(
        _ socket: WebSocketConnection,
        rotateAt: ContinuousClock.Instant?,
        lastHeard: inout Int64,
        until end: ContinuousClock.Instant? = nil,
        quietEnd: Duration? = nil
    ) -> (reason: String, detail: String?) {
        var lastHeardInstant = ContinuousClock.now
        /// The last notification (heartbeats and pongs aside): "quiet" means no data.
        var lastData = ContinuousClock.now
        var lastPing = ContinuousClock.now
        while !stopping {
            let now = ContinuousClock.now
            if let end, now >= end { return ("drained", nil) }
            if let quietEnd, now - lastData >= quietEnd { return ("drained", nil) }
            if let rotateAt, now >= rotateAt { return ("rotate", nil) }
            if now - lastHeardInstant >= configuration.heartbeatTimeout {
                logger.warning(
                    "no heartbeat or message: reconnecting",
                    metadata: ["bridge.silence_ms": "\(Int((now - lastHeardInstant).inSeconds * 1000))"]
                )
                return ("heartbeat-timeout", nil)
            }
            if now - lastPing >= configuration.pingInterval && now - lastHeardInstant >= configuration.pingInterval {
                try? socket.send(text: "{\"message\":\"ping\"}")
                lastPing = now
            }
            // Wake up in time for the next probe, the watchdog, rotation, or a stop request.
            var wake = min(
                lastHeardInstant + configuration.heartbeatTimeout,
                lastPing + configuration.pingInterval,
                now + .milliseconds(250)
            )
            if let rotateAt { wake = min(wake, rotateAt) }
            if let quietEnd { wake = min(wake, lastData + quietEnd) }
            let message: WebSocketMessage?
            do { message = try socket.receive(until: wake) } catch {
                if case .connectionLost = error { return ("connection-lost", nil) }
                return ("error", "\(error)")
            }
            guard let message else { continue }
            lastHeardInstant = ContinuousClock.now
            lastHeard = WallClock.nowMilliseconds()
            noteReceiving(lastHeard)
            switch message {
            case .text(let text):
                let bytes = Array(text.utf8)
                guard let info = try? EnvelopeInspector().inspect(bytes) else {
                    logger.warning("a notification that is not a JSON object was skipped")
                    continue
                }
                if info.isHeartbeat {
                    counters.withLock { $0.heartbeats += 1 }
                    continue
                }
                if info.topicName == "v2.system.socket_closing" {
                    logger.info("Genesys announced the socket's closing: reconnecting now")
                    return ("socket-closing", nil)
                }
                lastData = lastHeardInstant
                let digest = SHA256Digest.hex(bytes)
                guard recent.insert(NotificationContent.digest(bytes) ?? digest) else {
                    counters.withLock { $0.duplicates += 1 }
                    continue
                }
                output.publish(bytes, digest: digest, info: info, channel: index)
                counters.withLock { $0.messages += 1 }
            case .close(let code, let reason):
                return ("closed", "close \(code) \(reason)")
            case .binary, .ping, .pong:
                continue
            }
        }
        return ("stopped", nil)
    }

    private var mark: ReceivingMark?
    private var markWritten = ContinuousClock.now - .seconds(60)

    /// Records that the channel is receiving (at most every 2 s).
    private func noteReceiving(_ milliseconds: Int64) {
        guard ContinuousClock.now - markWritten >= .seconds(2) else { return }
        markWritten = .now
        mark?.write(milliseconds)
    }

    /// Digests of recent notifications (bounded): the same message twice — from both channels
    /// while a rotation overlaps — is published once.
    private var recent = RecentDigests(capacity: 50_000)

    private func publishGap(from: Int64, to: Int64, reason: String, detail: String?) {
        let gap = GapRecord(topics: topics, from: from, to: to, reason: reason, channel: index, detail: detail)
        output.publish(gap: gap)
        counters.withLock { $0.gaps += 1 }
        logger.warning(
            "gap: the channel was not receiving; what Genesys sent meanwhile is lost unless reconciled",
            metadata: [
                "bridge.gap_from": "\(from)", "bridge.gap_to": "\(to)", "bridge.gap_ms": "\(to - from)",
                "bridge.gap_reason": "\(reason)",
            ]
        )
    }
}

/// What identifies one notification delivered twice — by the overlapping sockets of a channel
/// rotation, or a reconnect: the SHA-256 of its `topicName` and its `eventBody` in canonical
/// form (keys sorted). Never the `CorrelationId`, which is not documented as the same on both
/// deliveries (WEBSOCKET.md: "dedupe on a hash of (topicName, canonical eventBody) over a short
/// window; never on CorrelationId"). Nil for a message without an object body.
enum NotificationContent {
    static func digest(_ message: [UInt8]) -> String? {
        guard let root = try? JSONValue.parse(Data(message)), let topic = root["topicName"]?.stringValue,
            let body = root["eventBody"], body.objectValue != nil
        else { return nil }
        return SHA256Digest.hex(Array(topic.utf8) + [0x0A] + Array(body.jsonData))
    }
}

/// Recent strings, each remembered for `window` and at most `capacity` of them (the oldest are
/// forgotten first): a repeat inside the window is recognised; the same content arriving again
/// later (a queue whose figures went back to what they were) is new.
struct RecentDigests {
    let capacity: Int
    let window: Duration
    private var members = Set<String>()
    private var order: [(digest: String, at: ContinuousClock.Instant)] = []
    private var head = 0

    init(capacity: Int, window: Duration = .seconds(120)) {
        self.capacity = capacity
        self.window = window
    }

    /// Whether `digest` is new within the window (and now remembered).
    mutating func insert(_ digest: String, at now: ContinuousClock.Instant = .now) -> Bool {
        while head < order.count && (now - order[head].at >= window || order.count - head >= capacity) {
            members.remove(order[head].digest)
            head += 1
        }
        if head > capacity {
            order.removeFirst(head)
            head = 0
        }
        guard members.insert(digest).inserted else { return false }
        order.append((digest, now))
        return true
    }
}
