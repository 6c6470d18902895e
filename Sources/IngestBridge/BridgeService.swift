import ServiceLifecycle

/// Runs a ``Bridge`` under swift-service-lifecycle: starts it, waits for graceful shutdown
/// (SIGTERM/SIGINT), then stops it in reverse start order (sockets first, the spool last).
public struct BridgeService: Service {
    let bridge: Bridge

    public init(bridge: Bridge) {
        self.bridge = bridge
    }

    public func run() async throws {
        await bridge.warnAboutTopicsNotOffered()
        try bridge.start()
        try? await gracefulShutdown()
        await bridge.stop()
    }
}
