import ArgumentParser
import Foundation
import GenesysSimulator
import IngestKafka
import Logging

/// `ingestctl simulate`: a local Genesys Cloud (token, analytics details, routing queues) and,
/// optionally, a traffic generator posting signed conversation events to a gateway.
struct Simulate: AsyncParsableCommand {
    /// Unbuffered output: the command runs for long and is often redirected to a file.
    private func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static let configuration = CommandConfiguration(
        abstract: "Run a local Genesys Cloud simulator and, optionally, generate conversation traffic to a gateway."
    )

    @Option(help: "Address to listen on.") var host: String = "127.0.0.1"
    @Option(help: "Port (0 picks one; printed at start).") var port: Int = 9400
    @Option(help: "OAuth client id it accepts.") var clientId: String = "sim-client"
    @Option(help: "OAuth client secret it accepts.") var clientSecret: String = "sim-secret"
    @Option(help: "Requests per minute per OAuth client before 429.") var rateLimit: Int = 300
    @Option(help: "Token lifetime in seconds (Genesys: 300 to 172800).") var tokenLifetime: Int = 86_400
    @Option(help: "Latency added to API responses (ms).") var latencyMs: Int = 0
    @Option(help: "Share of API requests answered 503 (0-1).") var errorRate: Double = 0
    @Option(help: "Share of API requests whose connection is dropped (0-1).") var dropRate: Double = 0
    @Option(help: "Details appear this long after a conversation ends (ms).") var detailsDelayMs: Int = 0
    @Option(help: "Gateway source URL to post generated events to (no traffic when absent).") var generateTo: String?
    @Option(help: "The gateway source's genesys-hmac secret (or $INGESTCTL_SECRET).") var secret: String?
    @Option(help: "Conversations to simulate (0 = until interrupted).") var conversations: Int = 0
    @Option(help: "Conversations started per second.") var conversationRate: Double = 5
    @Option(help: "Register this many ended conversations and produce their customer.end events to Kafka (benchmarks).")
    var preload: Int = 0
    @Option(help: "Kafka bootstrap servers for --preload.") var produceTo: String = "127.0.0.1:9092"
    @Option(help: "Topic for --preload.") var preloadTopic: String = "genesys.raw.conversation"

    func run() async throws {
        var config = SimulatorConfiguration()
        config.host = host
        config.port = port
        config.clientID = clientId
        config.clientSecret = clientSecret
        config.requestsPerMinute = rateLimit
        config.tokenLifetimeSeconds = tokenLifetime
        config.latencyMilliseconds = latencyMs
        config.serverErrorRate = errorRate
        config.connectionDropRate = dropRate
        config.detailsDelayMilliseconds = detailsDelayMs
        let logger = Logger(label: "simulator")
        let simulator = GenesysSimulator(configuration: config, logger: logger)
        let bound = try simulator.start()
        simulator.addDemoQueues(agentIDs: TrafficGenerator.Options(gatewayURL: "", secret: "").agentIDs)
        say("Genesys simulator on http://\(host):\(bound) (client \(clientId))")
        if preload > 0 {
            let events = TrafficGenerator.endedConversations(preload, simulator: simulator)
            let failures = FailureCount()
            let producer = try KafkaProducer(
                configuration: KafkaClientConfiguration(bootstrapServers: produceTo),
                logger: logger,
                onDeliveryReports: { r in failures.count.add(r.filter { $0.error != nil }.count, ordering: .relaxed) }
            )
            for (i, (id, body)) in events.enumerated() {
                try producer.produce(
                    topic: preloadTopic,
                    key: Array(id.utf8),
                    value: body,
                    headers: [],
                    token: UInt64(i + 1)
                )
            }
            guard producer.flush(timeoutMilliseconds: 60_000), failures.count.load(ordering: .relaxed) == 0 else {
                throw ValidationError("preloaded events were not all acknowledged")
            }
            producer.close()
            say("preloaded \(preload) ended conversations")
        }
        guard let generateTo else {
            while true { try await Task.sleep(for: .seconds(3600)) }
        }
        guard let secret = secret ?? ProcessInfo.processInfo.environment["INGESTCTL_SECRET"] else {
            throw ValidationError("--generate-to needs --secret or INGESTCTL_SECRET")
        }
        var options = TrafficGenerator.Options(gatewayURL: generateTo, secret: secret)
        options.conversationsPerSecond = conversationRate
        let generator = TrafficGenerator(options: options, simulator: simulator, logger: logger)
        repeat {
            let batch = conversations > 0 ? conversations : Int(max(1, conversationRate * 10))
            await generator.run(conversations: batch)
            let s = generator.statistics
            say("conversations \(s.conversations), events \(s.events), accepted \(s.accepted), failed \(s.failed)")
        } while conversations == 0
        // Keep serving details for the conversations just generated.
        say("traffic done; simulator keeps serving (Ctrl-C to stop)")
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}
