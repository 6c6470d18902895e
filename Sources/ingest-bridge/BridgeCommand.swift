import ArgumentParser
import Foundation
import IngestBridge
import IngestCore
import IngestLogging
import Logging
import ServiceLifecycle

/// `ingest-bridge`: read the configuration, bootstrap logging, run the bridge until SIGTERM/SIGINT.
@main
struct BridgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest-bridge",
        abstract: "Reads Genesys Cloud notification channels over WebSockets into Kafka, reporting every gap.",
        discussion: "Configuration comes from INGEST_* environment variables (see README.md, the bridge)."
    )

    func run() async throws {
        let environment = EnvironmentReader(ProcessInfo.processInfo.environment) { path in
            Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        let levelName = environment.string("INGEST_LOG_LEVEL", default: "info")
        guard let level = Logger.Level(rawValue: levelName) else {
            throw ValidationError(
                "INGEST_LOG_LEVEL '\(levelName)' is not one of trace, debug, info, notice, warning, error, critical"
            )
        }
        guard let format = LogFormat(rawValue: environment.string("INGEST_LOG_FORMAT", default: "text")) else {
            throw ValidationError("INGEST_LOG_FORMAT must be text or json")
        }
        LoggingBootstrap.bootstrap(format: format, level: level)
        let logger = Logger(label: "ingest-bridge")
        let configuration: BridgeConfiguration
        do { configuration = try BridgeConfiguration(environment: environment) } catch {
            throw ValidationError("configuration error: \(error.message)")
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: BridgeService(bridge: Bridge(configuration: configuration, logger: logger)))],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
