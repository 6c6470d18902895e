import Dispatch
import IngestCore
import IngestHTTP
import IngestKafka
import IngestStore
import Logging
import ServiceLifecycle

/// The worker process: the runtime plus an HTTP server for `/healthz`, `/readyz`, `/metrics`
/// and `POST /resume`. Stops in reverse start order on graceful shutdown.
public final class WorkerService: Service, HTTPRequestHandler, @unchecked Sendable {
    // @unchecked: `server` is set once in run() before requests arrive.
    let runtime: WorkerRuntime
    let configuration: WorkerConfiguration
    let logger: Logger
    private var server: HTTPServer?

    public init(runtime: WorkerRuntime, configuration: WorkerConfiguration, logger: Logger) {
        self.runtime = runtime
        self.configuration = configuration
        self.logger = logger
    }

    /// Builds the built-in handler `name` (`noop`, `record`); nil for handlers built elsewhere.
    public static func makeBuiltInHandler(_ name: String, _ configuration: WorkerConfiguration) -> (any EventHandler)? {
        switch name {
        case "record": RecordHandler(options: configuration.recordHandler)
        case "noop": NoopHandler()
        default: nil
        }
    }

    /// Opens the store named by `INGEST_STORE_URL`.
    public static func openStore(_ url: String, schema: String = "public") throws -> any IdempotencyStore {
        if url.hasPrefix("sqlite:") { return try SQLiteIdempotencyStore(path: String(url.dropFirst("sqlite:".count))) }
        return try PostgresIdempotencyStore(url: url, schema: schema)
    }

    public func run() async throws {
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(
                host: configuration.httpHost,
                port: configuration.httpPort,
                eventLoopCount: 1,
                maxConnections: 256
            ),
            handler: self,
            logger: logger
        )
        self.server = server
        try server.start()
        logger.info("worker HTTP endpoints listening", metadata: ["worker.http.port": "\(server.port)"])
        let runtime = self.runtime
        try await withGracefulShutdownHandler {
            try await runtime.run()
        } onGracefulShutdown: {
            runtime.requestStop()
        }
        await server.shutdown(deadline: .seconds(2))
        await runtime.store.close()
    }

    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        switch (request.method, String(request.path)) {
        case ("GET", "/healthz"):
            responder.respond(.json(.ok, "{\"status\":\"ok\"}"))
        case ("GET", "/readyz"):
            switch runtime.state {
            case .running:
                responder.respond(.json(.ok, "{\"status\":\"ready\"}"))
            case .paused(let reason):
                responder.respond(
                    .json(.serviceUnavailable, "{\"status\":\"paused\",\"reason\":\(JSONString.quote(reason))}")
                )
            case .starting, .stopped:
                responder.respond(.json(.serviceUnavailable, "{\"status\":\"not ready\"}"))
            }
        case ("GET", "/metrics"):
            responder.respond(
                HTTPResponse(
                    status: .ok,
                    headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
                    body: runtime.metrics.registry.emitToBuffer()
                )
            )
        case ("POST", "/resume"):
            runtime.requestResume()
            responder.respond(.json(.accepted, "{\"status\":\"resuming\"}"))
        case (_, "/healthz"), (_, "/readyz"), (_, "/metrics"):
            responder.respond(.error(.methodNotAllowed, "method not allowed", headers: [("Allow", "GET")]))
        case (_, "/resume"):
            responder.respond(.error(.methodNotAllowed, "method not allowed", headers: [("Allow", "POST")]))
        default:
            responder.respond(.error(.notFound, "not found"))
        }
    }
}
