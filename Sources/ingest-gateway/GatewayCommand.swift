import ArgumentParser
import Foundation
import IngestCore
import IngestGateway
import IngestLogging
import Logging
import ServiceLifecycle

/// `ingest-gateway`: parse configuration (environment, overridden by flags), bootstrap logging,
/// run the gateway until SIGTERM/SIGINT.
@main
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest-gateway",
        abstract: "Receives signed Genesys Cloud events over HTTP and makes them durable in Kafka.",
        discussion: "Configuration comes from INGEST_* environment variables (see README.md); flags override them."
    )

    @Option(help: "Address to listen on (INGEST_HTTP_HOST, default 0.0.0.0).") var host: String?
    @Option(help: "Port to listen on; 0 picks a free one (INGEST_HTTP_PORT, default 8080).") var port: Int?
    @Option(help: "Kafka bootstrap servers (INGEST_KAFKA_BROKERS, default 127.0.0.1:9092).") var brokers: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (INGEST_LOG_LEVEL).")
    var logLevel: String?
    @Option(help: "Log format: text or json (INGEST_LOG_FORMAT).") var logFormat: String?

    func run() async throws {
        let environment = EnvironmentReader(ProcessInfo.processInfo.environment) { path in
            Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        let levelName = logLevel ?? environment.string("INGEST_LOG_LEVEL", default: "info")
        guard let level = Logger.Level(rawValue: levelName) else {
            throw ValidationError(
                "log level '\(levelName)' is not one of trace, debug, info, notice, warning, error, critical"
            )
        }
        let formatName = logFormat ?? environment.string("INGEST_LOG_FORMAT", default: "text")
        guard let format = LogFormat(rawValue: formatName) else {
            throw ValidationError("log format '\(formatName)' must be text or json")
        }
        LoggingBootstrap.bootstrap(format: format, level: level)
        let logger = Logger(label: "ingest-gateway")

        var config: GatewayConfiguration
        do {
            config = try GatewayConfiguration(
                environment: environment,
                // Half the cores: librdkafka's threads and the broker share the machine (README: performance).
                defaultEventLoops: max(1, ProcessInfo.processInfo.activeProcessorCount / 2)
            )
        } catch {
            throw ValidationError("configuration error: \(error.message)")
        }
        if let host { config.host = host }
        if let port { config.port = port }
        if let brokers { config.brokers = brokers }

        let gateway = try Gateway(configuration: config, logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: GatewayService(gateway: gateway))],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
