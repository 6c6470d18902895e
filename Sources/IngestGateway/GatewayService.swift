import Logging
import ServiceLifecycle

/// Runs a ``Gateway`` under swift-service-lifecycle: starts it, waits for graceful shutdown
/// (SIGTERM/SIGINT), then stops it in reverse start order (HTTP first, Kafka last).
public struct GatewayService: Service {
    let gateway: Gateway

    public init(gateway: Gateway) {
        self.gateway = gateway
    }

    public func run() async throws {
        try gateway.start()
        try? await gracefulShutdown()
        await gateway.shutdown()
    }
}
