import ArgumentParser
import Foundation
import IngestConsole
import IngestCore
import IngestCrypto
import IngestKafka
import IngestWorker
import Logging

/// `ingestctl console …`: the ops console (dead letters, redrive, audit) in the browser.
struct Console: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "The ops console: dead letters, redrives and their audit in the browser.",
        subcommands: [Serve.self, HashPassword.self]
    )

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Serve the console until SIGINT/SIGTERM.")
        @OptionGroup var broker: BrokerOptions
        @Option(help: "Users file: name:role:hash lines (roles viewer, operator, admin).")
        var users: String = ProcessInfo.processInfo.environment["INGEST_CONSOLE_USERS_FILE"] ?? "console-users"
        @Option(help: "File holding the secret that signs session cookies (random per start when absent).")
        var secretFile: String? = ProcessInfo.processInfo.environment["INGEST_CONSOLE_SECRET_FILE"]
        @Option(help: "Listen address.") var host: String = "127.0.0.1"
        @Option(help: "Listen port (0 = any free port).") var port: Int = 9100
        @Option(help: "Topic prefix of the raw topics.") var prefix: String = "genesys.raw"
        @Option(help: "Audit topic.") var auditTopic: String = "ingest.dlq.audit"
        @Option(help: "Value fields masked for viewers (comma-separated).")
        var mask: String = "ani,dnis,addressFrom,addressTo,address,callerId"
        @Flag(help: "Mark cookies Secure (set when the console is reached over TLS).") var secureCookies = false
        @Option(help: "The workers' store (sqlite:PATH or postgres://…): traces show how each record was handled.")
        var store: String? = ProcessInfo.processInfo.environment["INGEST_STORE_URL"]
        @Option(help: "The store's PostgreSQL schema.") var storeSchema: String = "public"

        func run() async throws {
            let logger = Logger(label: "ingest-console")
            let text: String
            do { text = try String(contentsOfFile: users, encoding: .utf8) } catch {
                throw ValidationError(
                    "cannot read the users file \(users): create it with lines name:role:$(ingestctl console hash-password)"
                )
            }
            let parsed: ConsoleUsers
            do { parsed = try ConsoleUsers.parse(text) } catch { throw ValidationError("\(users): \(error)") }
            var key = SecureRandom.bytes(32)
            if let secretFile {
                guard let s = try? Data(contentsOf: URL(fileURLWithPath: secretFile)), s.count >= 16 else {
                    throw ValidationError("\(secretFile): the cookie secret must be at least 16 bytes")
                }
                key = Array(s)
            }
            var signer = SessionSigner(key: key)
            signer.secureCookies = secureCookies
            var configuration = ConsoleConfiguration(users: parsed, signer: signer)
            configuration.naming = TopicNaming(prefix: prefix)
            configuration.auditTopic = auditTopic
            configuration.maskedFields = Set(mask.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            let kafka = broker.kafka
            let idempotency = try store.map { try WorkerService.openStore($0, schema: storeSchema) }
            let app = ConsoleApp(
                configuration: configuration,
                source: KafkaDeadLetterSource(kafka: kafka),
                publisher: { try KafkaRedrivePublisher(kafka: kafka, logger: logger) },
                store: idempotency,
                logger: logger
            )
            let server = ConsoleServer(app: app, logger: logger)
            let bound = try server.start(host: host, port: port)
            // Unbuffered: scripts (and the tests) wait for this line.
            FileHandle.standardOutput.write(Data("console on http://\(host):\(bound)/ (users from \(users))\n".utf8))
            // Until SIGINT or SIGTERM; then running redrives are cancelled and audited before
            // the server stops (reverse start order).
            for await signal in Console.terminationSignals() {
                logger.notice("console stopping", metadata: ["signal": "\(signal)"])
                break
            }
            app.jobs.stopAll(timeout: .seconds(30))
            await server.stop()
        }
    }

    /// SIGINT and SIGTERM as a stream (their default actions are ignored meanwhile).
    static func terminationSignals() -> AsyncStream<Int32> {
        AsyncStream { continuation in
            let sources = [SIGINT, SIGTERM].map { number -> DispatchSourceSignal in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { continuation.yield(number) }
                source.resume()
                return source
            }
            // The stream keeps its sources alive until it ends.
            let kept = SignalSources(sources)
            continuation.onTermination = { _ in kept.cancel() }
        }
    }
}

extension Console {
    struct HashPassword: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hash-password",
            abstract: "Read a password on stdin, print its PBKDF2-SHA256 hash for the users file."
        )
        @Option(help: "PBKDF2 iterations.") var iterations: Int = PasswordHash.defaultIterations

        func run() throws {
            guard (1_000...PasswordHash.maximumIterations).contains(iterations) else {
                throw ValidationError("--iterations must be 1000 to \(PasswordHash.maximumIterations)")
            }
            guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                throw ValidationError(
                    "give the password on stdin (e.g. printf %s \"$PASSWORD\" | ingestctl console hash-password)"
                )
            }
            print(PasswordHash.make(password: line, iterations: iterations))
        }
    }
}

/// Dispatch signal sources held by a stream: `cancel()` is thread-safe on a dispatch source.
final class SignalSources: @unchecked Sendable {
    private let sources: [any DispatchSourceSignal]
    init(_ sources: [any DispatchSourceSignal]) { self.sources = sources }
    func cancel() { for s in sources { s.cancel() } }
}
