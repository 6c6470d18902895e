import ArgumentParser
import IngestKafka
import IngestLogging
import Logging

/// `ingest-worker`: placeholder until the worker runtime lands (issue 3). It checks that the
/// librdkafka in use is the one it was built against, reports, and exits cleanly.
@main
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest-worker",
        abstract: "Consumes raw Genesys events from Kafka and runs the workers (not implemented yet)."
    )

    func run() throws {
        LoggingBootstrap.bootstrap(format: .text, level: .info)
        let logger = Logger(label: "ingest-worker")
        try LibrdkafkaVersion.check()
        logger.notice(
            "ingest-worker has no handlers yet; exiting",
            metadata: ["librdkafka.version": "\(LibrdkafkaVersion.runtime)"]
        )
    }
}
