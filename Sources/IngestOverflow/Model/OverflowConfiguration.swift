import Foundation
import IngestCore

/// The overflow controller's configuration: one policy per controlled queue, and the capacity
/// of the queues they overflow to. Read from JSON (`INGEST_OVERFLOW_CONFIG`, a file path):
///
/// ```json
/// {
///   "checkIntervalSeconds": 15, "leaseSeconds": 30, "dryRun": false,
///   "queues": [{
///     "queueId": "…", "name": "Sales",
///     "detect":  {"metric": "waiting", "above": 10, "forSeconds": 60},
///     "verify":  {"metric": "estimatedWaitSeconds", "above": 120},
///     "recover": {"metric": "estimatedWaitSeconds", "below": 60, "holdSeconds": 300},
///     "addMembers": ["<userId>", …],
///     "settings": {"conditionalGroupRouting": {"rules": [ … ]}},
///     "overflowTo": ["<queueId>"], "expectedOverflowPerMinute": 4
///   }],
///   "targets": {"<queueId>": {"agents": 6, "baseLoadPerMinute": 1, "averageHandleSeconds": 240,
///                             "maxWaitSeconds": 60}}
/// }
/// ```
public struct OverflowConfiguration: Sendable, Codable, Equatable {
    public enum DetectMetric: String, Sendable, Codable, CaseIterable {
        /// oWaiting from queue observation notifications.
        case waiting
        /// oLongestWaiting (seconds) from queue observation notifications.
        case longestWaitingSeconds
        /// p90 wait of the running interval summary on `genesys.queue.metrics` (analytics).
        case p90WaitSeconds
    }

    public enum LiveMetric: String, Sendable, Codable, CaseIterable {
        /// `GET /api/v2/routing/queues/{id}/estimatedwaittime`.
        case estimatedWaitSeconds
        /// oWaiting from `POST /api/v2/analytics/queues/observations/query`.
        case waiting
        /// oLongestWaiting (seconds) from the observations query.
        case longestWaitingSeconds
    }

    public struct Detect: Sendable, Codable, Equatable {
        public var metric: DetectMetric
        public var above: Double
        public var forSeconds: Double = 0

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            metric = try c.decode(DetectMetric.self, forKey: .metric)
            above = try c.decode(Double.self, forKey: .above)
            forSeconds = try c.decodeIfPresent(Double.self, forKey: .forSeconds) ?? 0
        }
    }

    public struct Verify: Sendable, Codable, Equatable {
        public var metric: LiveMetric
        public var above: Double
    }

    public struct Recover: Sendable, Codable, Equatable {
        public var metric: LiveMetric
        public var below: Double
        public var holdSeconds: Double = 300

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            metric = try c.decode(LiveMetric.self, forKey: .metric)
            below = try c.decode(Double.self, forKey: .below)
            holdSeconds = try c.decodeIfPresent(Double.self, forKey: .holdSeconds) ?? 300
        }
    }

    public struct QueuePolicy: Sendable, Codable, Equatable {
        public var queueId: String
        public var name: String?
        public var detect: Detect
        public var verify: Verify
        public var recover: Recover
        /// Agents added as members while overflow is active (only those not already members).
        public var addMembers: [String] = []
        /// Top-level queue fields set while overflow is active (e.g. `conditionalGroupRouting`).
        public var settings: [String: JSONValue] = [:]
        /// Queues this one overflows to (besides those named in `conditionalGroupRouting`).
        public var overflowTo: [String] = []
        /// Interactions per minute expected to overflow while active (capacity check).
        public var expectedOverflowPerMinute: Double = 0

        public var label: String { name.map { "\($0) (\(queueId))" } ?? queueId }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            queueId = try c.decode(String.self, forKey: .queueId)
            name = try c.decodeIfPresent(String.self, forKey: .name)
            detect = try c.decode(Detect.self, forKey: .detect)
            verify = try c.decode(Verify.self, forKey: .verify)
            recover = try c.decode(Recover.self, forKey: .recover)
            addMembers = try c.decodeIfPresent([String].self, forKey: .addMembers) ?? []
            settings = try c.decodeIfPresent([String: JSONValue].self, forKey: .settings) ?? [:]
            overflowTo = try c.decodeIfPresent([String].self, forKey: .overflowTo) ?? []
            expectedOverflowPerMinute = try c.decodeIfPresent(Double.self, forKey: .expectedOverflowPerMinute) ?? 0
        }
    }

    public struct Target: Sendable, Codable, Equatable {
        public var agents: Int
        /// The target queue's own load, interactions per minute.
        public var baseLoadPerMinute: Double = 0
        public var averageHandleSeconds: Double
        /// The simulated p90 wait on the target must stay under this.
        public var maxWaitSeconds: Double

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            agents = try c.decode(Int.self, forKey: .agents)
            baseLoadPerMinute = try c.decodeIfPresent(Double.self, forKey: .baseLoadPerMinute) ?? 0
            averageHandleSeconds = try c.decode(Double.self, forKey: .averageHandleSeconds)
            maxWaitSeconds = try c.decode(Double.self, forKey: .maxWaitSeconds)
        }
    }

    public var checkIntervalSeconds: Double = 15
    public var leaseSeconds: Double = 30
    public var dryRun = false
    public var queues: [QueuePolicy]
    public var targets: [String: Target] = [:]

    public init(queues: [QueuePolicy], targets: [String: Target] = [:]) {
        self.queues = queues
        self.targets = targets
    }

    enum CodingKeys: String, CodingKey {
        case checkIntervalSeconds, leaseSeconds, dryRun, queues, targets
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        checkIntervalSeconds = try c.decodeIfPresent(Double.self, forKey: .checkIntervalSeconds) ?? 15
        leaseSeconds = try c.decodeIfPresent(Double.self, forKey: .leaseSeconds) ?? 30
        dryRun = try c.decodeIfPresent(Bool.self, forKey: .dryRun) ?? false
        queues = try c.decode([QueuePolicy].self, forKey: .queues)
        targets = try c.decodeIfPresent([String: Target].self, forKey: .targets) ?? [:]
    }

    /// Parses and validates a configuration; errors say what to fix.
    public static func parse(_ data: Data) throws(ConfigurationError) -> OverflowConfiguration {
        let config: OverflowConfiguration
        do {
            config = try JSONDecoder().decode(OverflowConfiguration.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw ConfigurationError(
                "overflow configuration: '\(key.stringValue)' is missing at \(Self.path(context.codingPath))"
            )
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw ConfigurationError(
                "overflow configuration: \(Self.path(context.codingPath)): \(context.debugDescription)"
            )
        } catch let DecodingError.dataCorrupted(context) {
            throw ConfigurationError(
                "overflow configuration: \(Self.path(context.codingPath)): \(context.debugDescription)"
            )
        } catch {
            throw ConfigurationError("overflow configuration is not valid JSON: \(error)")
        }
        try config.validate()
        return config
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.isEmpty ? "the top level" : keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }
}

// MARK: - Validation

extension OverflowConfiguration {
    /// The overflow graph: queue → the queues it overflows to (`overflowTo` and the queues named
    /// by `conditionalGroupRouting` rules in its settings).
    public var overflowGraph: [String: [String]] {
        var graph: [String: [String]] = [:]
        for q in queues {
            var targets = q.overflowTo
            for rule in q.settings["conditionalGroupRouting"]?["rules"]?.arrayValue ?? [] {
                if let id = rule["queue"]?["id"]?.stringValue ?? rule["queue"]?.stringValue { targets.append(id) }
            }
            graph[q.queueId, default: []] += targets
        }
        return graph
    }

    /// Rejects a configuration that is unsafe to apply: duplicate or empty policies, bad
    /// thresholds, an overflow loop (named), or a target that cannot absorb the expected overflow.
    public func validate() throws(ConfigurationError) {
        guard checkIntervalSeconds > 0, leaseSeconds > 0 else {
            throw ConfigurationError("overflow configuration: checkIntervalSeconds and leaseSeconds must be > 0")
        }
        guard !queues.isEmpty else { throw ConfigurationError("overflow configuration has no queues") }
        var seen = Set<String>()
        for q in queues {
            guard !q.queueId.isEmpty else { throw ConfigurationError("overflow configuration: a queue has no queueId") }
            guard seen.insert(q.queueId).inserted else {
                throw ConfigurationError("overflow configuration: queue \(q.label) is configured twice")
            }
            if q.addMembers.isEmpty && q.settings.isEmpty {
                throw ConfigurationError(
                    "overflow configuration: queue \(q.label) has no action (addMembers or settings)"
                )
            }
            if q.addMembers.count > 100 {
                throw ConfigurationError("overflow configuration: queue \(q.label) adds more than 100 members")
            }
            for forbidden in ["id", "dateModified", "modifiedBy", "selfUri", "memberCount"]
            where q.settings[forbidden] != nil {
                throw ConfigurationError("overflow configuration: queue \(q.label) may not set '\(forbidden)'")
            }
            if q.recover.metric == q.verify.metric && q.recover.below > q.verify.above {
                throw ConfigurationError(
                    "overflow configuration: queue \(q.label) recovers below \(q.recover.below), above its "
                        + "verify threshold \(q.verify.above): it would flap"
                )
            }
        }
        if let loop = Self.findLoop(overflowGraph) {
            let names = Dictionary(queues.map { ($0.queueId, $0.name ?? $0.queueId) }) { a, _ in a }
            throw ConfigurationError(
                "overflow configuration has a loop: \(loop.map { names[$0] ?? $0 }.joined(separator: " → "))"
            )
        }
        try validateCapacity()
    }

    /// The first cycle found, as a path that starts and ends at the same queue.
    static func findLoop(_ graph: [String: [String]]) -> [String]? {
        enum Mark { case visiting, done }
        var marks: [String: Mark] = [:]
        var stack: [String] = []
        func visit(_ node: String) -> [String]? {
            if marks[node] == .done { return nil }
            if marks[node] == .visiting, let i = stack.firstIndex(of: node) { return Array(stack[i...]) + [node] }
            marks[node] = .visiting
            stack.append(node)
            for next in graph[node] ?? [] {
                if let loop = visit(next) { return loop }
            }
            stack.removeLast()
            marks[node] = .done
            return nil
        }
        for node in graph.keys.sorted() {
            if let loop = visit(node) { return loop }
        }
        return nil
    }

    /// Every target that receives overflow must be described and must absorb its own load plus
    /// the expected overflow of every queue that overflows to it, in a load simulation.
    func validateCapacity() throws(ConfigurationError) {
        var inflow: [String: Double] = [:]
        for q in queues where q.expectedOverflowPerMinute > 0 {
            let targets = Set(overflowGraph[q.queueId] ?? [])
            guard !targets.isEmpty else {
                throw ConfigurationError(
                    "overflow configuration: queue \(q.label) expects overflow but names no target queue"
                )
            }
            for t in targets { inflow[t, default: 0] += q.expectedOverflowPerMinute / Double(targets.count) }
        }
        for (target, overflow) in inflow.sorted(by: { $0.key < $1.key }) {
            guard let capacity = targets[target] else {
                throw ConfigurationError(
                    "overflow configuration: target queue \(target) receives overflow but has no entry in 'targets' "
                        + "(agents, averageHandleSeconds, maxWaitSeconds) to check its capacity"
                )
            }
            let result = LoadSimulation.run(
                arrivalsPerMinute: capacity.baseLoadPerMinute + overflow,
                agents: capacity.agents,
                averageHandleSeconds: capacity.averageHandleSeconds
            )
            if result.utilization >= 1 {
                throw ConfigurationError(
                    "overflow configuration: target queue \(target) cannot absorb the overflow: "
                        + String(
                            format: "%.1f Erlangs offered to %d agents (utilisation %.0f %%)",
                            result.offeredErlangs,
                            capacity.agents,
                            result.utilization * 100
                        )
                )
            }
            if result.p90WaitSeconds > capacity.maxWaitSeconds {
                throw ConfigurationError(
                    "overflow configuration: target queue \(target) would be overloaded: simulated p90 wait "
                        + String(format: "%.0f s", result.p90WaitSeconds)
                        + " exceeds maxWaitSeconds \(Int(capacity.maxWaitSeconds)) with \(capacity.agents) agents "
                        + String(format: "at %.1f interactions/min", capacity.baseLoadPerMinute + overflow)
                )
            }
        }
    }
}

/// A discrete-event simulation of one queue (Poisson arrivals, exponential handle times,
/// `agents` servers, first come first served) with a fixed seed, so a configuration's verdict
/// is the same on every run.
public enum LoadSimulation {
    public struct Result: Sendable, Equatable {
        public var offeredErlangs: Double
        public var utilization: Double
        public var p90WaitSeconds: Double
        public var meanWaitSeconds: Double
    }

    public static func run(
        arrivalsPerMinute: Double,
        agents: Int,
        averageHandleSeconds: Double,
        hours: Double = 8,
        seed: UInt64 = 0x5EED
    ) -> Result {
        let offered = arrivalsPerMinute / 60 * averageHandleSeconds
        let utilization = agents > 0 ? offered / Double(agents) : .infinity
        guard agents > 0, arrivalsPerMinute > 0, utilization < 1 else {
            return Result(
                offeredErlangs: offered,
                utilization: arrivalsPerMinute > 0 ? max(utilization, 1) : 0,
                p90WaitSeconds: arrivalsPerMinute > 0 ? .infinity : 0,
                meanWaitSeconds: arrivalsPerMinute > 0 ? .infinity : 0
            )
        }
        var rng = SplitMix64(seed: seed)
        func exponential(mean: Double) -> Double { -mean * log(1 - rng.nextUnit()) }
        var free = [Double](repeating: 0, count: agents)  // when each agent is next free
        var t = 0.0
        var waits: [Double] = []
        let end = hours * 3600
        while t < end {
            t += exponential(mean: 60 / arrivalsPerMinute)
            let i = free.indices.min { free[$0] < free[$1] }!
            let start = max(t, free[i])
            waits.append(start - t)
            free[i] = start + exponential(mean: averageHandleSeconds)
        }
        waits.sort()
        let p90 = waits.isEmpty ? 0 : waits[min(waits.count - 1, Int(Double(waits.count) * 0.9))]
        return Result(
            offeredErlangs: offered,
            utilization: utilization,
            p90WaitSeconds: p90,
            meanWaitSeconds: waits.reduce(0, +) / Double(max(1, waits.count))
        )
    }
}

/// The `overflow` handler's environment: where its configuration is and where it reports.
public struct OverflowSettings: Sendable {
    /// A path to the JSON configuration, or the JSON itself (starting with `{`).
    public var configuration: String
    /// Overrides the configuration's `dryRun` when set.
    public var dryRun: Bool?
    public var auditTopic = "genesys.overflow.audit"
    public var auditWebhookURL: String?
    public var metricsTopic = "genesys.queue.metrics"
    /// Test hook: pause after each persisted step.
    public var stepDelayMilliseconds = 0

    public static let variableNames = [
        "INGEST_OVERFLOW_CONFIG", "INGEST_OVERFLOW_DRY_RUN", "INGEST_OVERFLOW_AUDIT_TOPIC",
        "INGEST_OVERFLOW_AUDIT_WEBHOOK_URL", "INGEST_OVERFLOW_METRICS_TOPIC", "INGEST_OVERFLOW_STEP_DELAY_MS",
    ]

    public init(environment env: EnvironmentReader) throws(ConfigurationError) {
        guard let source = env.string("INGEST_OVERFLOW_CONFIG") else {
            throw ConfigurationError("the overflow handler needs INGEST_OVERFLOW_CONFIG (a JSON file path, or JSON)")
        }
        configuration = source
        if env.string("INGEST_OVERFLOW_DRY_RUN") != nil {
            dryRun = try env.bool("INGEST_OVERFLOW_DRY_RUN", default: false)
        }
        auditTopic = env.string("INGEST_OVERFLOW_AUDIT_TOPIC", default: auditTopic)
        auditWebhookURL = env.string("INGEST_OVERFLOW_AUDIT_WEBHOOK_URL")
        if let url = auditWebhookURL, !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
            throw ConfigurationError("INGEST_OVERFLOW_AUDIT_WEBHOOK_URL must be an http(s) URL")
        }
        metricsTopic = env.string("INGEST_OVERFLOW_METRICS_TOPIC", default: metricsTopic)
        stepDelayMilliseconds = try env.int("INGEST_OVERFLOW_STEP_DELAY_MS", default: 0, range: 0...600_000)
    }

    /// Reads and validates the configuration (`readFile` reads a path).
    public func load(readFile: (String) throws -> Data) throws(ConfigurationError) -> OverflowConfiguration {
        let data: Data
        if configuration.hasPrefix("{") {
            data = Data(configuration.utf8)
        } else {
            do { data = try readFile(configuration) } catch {
                throw ConfigurationError("cannot read INGEST_OVERFLOW_CONFIG at \(configuration): \(error)")
            }
        }
        var config = try OverflowConfiguration.parse(data)
        if let dryRun { config.dryRun = dryRun }
        return config
    }
}
