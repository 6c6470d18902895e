import Foundation
import GenesysAPI
import IngestCore
import IngestWebSocket
import Logging

/// One configured channel, kept connected on a thread of its own: create a channel, replace its
/// subscriptions, connect its WebSocket, read until it dies, and again — each period without a
/// subscribed connection reported as a gap.
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
    private var connection: WebSocketConnection?
    private let connectionLock = NSLock()

    struct Counters: Sendable {
        var messages = 0
        var heartbeats = 0
        var reconnects = 0
        var gaps = 0
        var rejectedTopics = 0
        var connected = false
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

    private func run() {
        // The bridge was not receiving before it started: a start-up gap, closed by the first
        // subscribed connection.
        var gapStart: (at: Int64, reason: String, detail: String?)? = (WallClock.nowMilliseconds(), "startup", nil)
        var backoff = configuration.reconnectMinimum
        while !stopping {
            var lastHeard = WallClock.nowMilliseconds()
            do {
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
                counters.withLock { $0.rejectedTopics = rejected.count }
                let socket = try WebSocketConnection.connect(url: channel.connectUri)
                connectionLock.withLock { connection = socket }
                defer {
                    connectionLock.withLock { connection = nil }
                    counters.withLock { $0.connected = false }
                }
                let connectedAt = WallClock.nowMilliseconds()
                counters.withLock { $0.connected = true }
                logger.info(
                    "channel connected",
                    metadata: ["bridge.topics": "\(topics.count)", "bridge.rejected": "\(rejected.count)"]
                )
                if let gap = gapStart {
                    publishGap(from: gap.at, to: connectedAt, reason: gap.reason, detail: gap.detail)
                    gapStart = nil
                }
                backoff = configuration.reconnectMinimum
                lastHeard = connectedAt
                let end = read(socket, lastHeard: &lastHeard)
                gapStart = (lastHeard, end.reason, end.detail)
                // A silent or announced-closing socket gets no long goodbye: the next channel
                // matters more than a close handshake the server may never answer.
                let alive = end.reason == "stopped" || end.reason == "socket-closing"
                socket.close(
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
    }

    /// Reads until the socket dies or the bridge stops; returns why it ended.
    private func read(_ socket: WebSocketConnection, lastHeard: inout Int64) -> (reason: String, detail: String?) {
        var lastHeardInstant = ContinuousClock.now
        var lastPing = ContinuousClock.now
        while !stopping {
            let now = ContinuousClock.now
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
            // Wake up in time for the next probe, the watchdog, or a stop request.
            let wake = min(
                lastHeardInstant + configuration.heartbeatTimeout,
                lastPing + configuration.pingInterval,
                now + .milliseconds(250)
            )
            let message: WebSocketMessage?
            do { message = try socket.receive(until: wake) } catch {
                if case .connectionLost = error { return ("connection-lost", nil) }
                return ("error", "\(error)")
            }
            guard let message else { continue }
            lastHeardInstant = ContinuousClock.now
            lastHeard = WallClock.nowMilliseconds()
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
                output.publish(bytes, info: info, channel: index)
                counters.withLock { $0.messages += 1 }
            case .close(let code, let reason):
                return ("closed", "close \(code) \(reason)")
            case .binary, .ping, .pong:
                continue
            }
        }
        return ("stopped", nil)
    }

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
