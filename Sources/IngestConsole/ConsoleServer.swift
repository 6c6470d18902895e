import Dispatch
import Foundation
import IngestCore
import IngestHTTP
import IngestKafka
import Logging

/// The console on our own HTTP server: each request is answered off the event loop (pages
/// read Kafka, which blocks) on a concurrent queue, and the answer hops back to the
/// connection's loop.
public final class ConsoleServer: HTTPRequestHandler, Sendable {
    let app: ConsoleApp
    private let work = DispatchQueue(label: "ingest-console.requests", attributes: .concurrent)
    private let server = LockedValue<HTTPServer?>(nil)
    let logger: Logger

    public init(app: ConsoleApp, logger: Logger) {
        self.app = app
        self.logger = logger
    }

    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let console = ConsoleRequest(request)
        work.async { [app] in
            let response = app.respond(console)
            responder.loop.execute { responder.respond(response) }
        }
    }

    /// Listens on `host:port` (0 = a free port) and returns the port.
    public func start(host: String, port: Int) throws -> Int {
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(
                host: host,
                port: port,
                eventLoopCount: 1,
                maxConnections: 256,
                bodyBudgetBytes: 16 << 20
            ),
            handler: self,
            logger: logger
        )
        let bound = try server.start()
        self.server.withLock { $0 = server }
        logger.info("console listening", metadata: ["console.url": "http://\(host):\(bound)/"])
        return bound
    }

    public func stop() async {
        let s = server.withLock { $0 }
        await s?.shutdown(deadline: .seconds(2))
    }
}
