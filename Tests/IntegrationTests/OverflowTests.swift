import Foundation
import GenesysAPI
import IngestCore
import IngestKafka
import IngestOverflow
import IngestStore
import IngestTesting
import IngestWorker
import Logging
import Prometheus
import Testing

@testable import GenesysSimulator

/// A simulated contact center for the overflow controller: a queue with two members and
/// empty conditional group routing, and the target queue it overflows to.
struct OverflowScenario {
    let queue = "33333333-0000-4000-8000-000000000001"
    let target = "33333333-0000-4000-8000-000000000099"
    let initialMembers: Set<String> = ["agent-regular-1", "agent-already-member"]
    let simulator: GenesysSimulator
    let broker: TansuBroker
    let store: TestStore
    /// One connection for polling the state (opening one per poll is slow on a busy machine).
    let documents: any DocumentStore

    init(_ kind: StoreKind = .sqlite) throws {
        broker = try TansuBroker()
        try createTopic(broker, "genesys.raw.queue", partitions: 2)
        store = try TestStore(kind)
        documents = try store.kind.make(sharing: store.location).store as! any DocumentStore
        simulator = GenesysSimulator(configuration: SimulatorConfiguration(), logger: Logger(label: "sim"))
        try simulator.start()
        simulator.addQueue([
            "id": .string(queue), "name": "Sales", "dateModified": "2026-11-01T09:00:00.000Z",
            "description": "inbound sales", "conditionalGroupRouting": ["rules": []], "skillEvaluationMethod": "BEST",
            "acwSettings": ["wrapupPrompt": "OPTIONAL", "timeoutMs": 30000],
        ])
        simulator.setMembers(queue, initialMembers)
        simulator.setEstimatedWait(queueID: queue, seconds: 30)
    }

    /// The configured change: route overflow to the target after 20 s of estimated wait.
    var overflowRouting: JSONValue {
        [
            "rules": [
                [
                    "queue": ["id": .string(target)], "metric": "EstimatedWaitTime", "operator": "GreaterThan",
                    "conditionValue": 20, "waitSeconds": 10, "groups": [],
                ]
            ]
        ]
    }

    var configuration: String { configuration(detect: #"{"metric": "waiting", "above": 5}"#) }

    func configuration(detect: String) -> String {
        let routing = String(
            decoding: overflowRouting.jsonData,
            as: UTF8.self
        )
        return """
            {"checkIntervalSeconds": 0.3, "leaseSeconds": 2,
             "queues": [{"queueId": "\(queue)", "name": "Sales",
               "detect": \(detect),
               "verify": {"metric": "estimatedWaitSeconds", "above": 120},
               "recover": {"metric": "estimatedWaitSeconds", "below": 60, "holdSeconds": 1},
               "addMembers": ["agent-overflow-1", "agent-overflow-2", "agent-already-member"],
               "settings": {"conditionalGroupRouting": \(routing)},
               "overflowTo": ["\(target)"], "expectedOverflowPerMinute": 2}],
             "targets": {"\(target)": {"agents": 16, "baseLoadPerMinute": 1, "averageHandleSeconds": 180,
                                       "maxWaitSeconds": 60}}}
            """
    }

    func worker(
        group: String = "overflow",
        id: String = "controller-1",
        _ extra: [String: String] = [:]
    ) throws -> WorkerProcess {
        try WorkerProcess(
            brokers: broker.bootstrap,
            store: store,
            group: group,
            environment: [
                "INGEST_WORKER_HANDLERS": "overflow", "INGEST_WORKER_TOPICS": "genesys.raw.queue",
                "INGEST_WORKER_ID": id, "INGEST_OVERFLOW_CONFIG": configuration,
                "INGEST_GENESYS_API_URL": simulator.baseURL, "INGEST_GENESYS_CLIENT_ID": "sim-client",
                "INGEST_GENESYS_CLIENT_SECRET": "sim-secret",
            ].merging(extra) { $1 }
        )
    }

    /// The surge: Genesys estimates long waits and notifies 12 waiting.
    func surge() async throws {
        simulator.setEstimatedWait(queueID: queue, seconds: 300)
        try await produce(
            broker,
            [
                (
                    queue,
                    TrafficGenerator.observationEnvelope(queue: queue, waiting: 12, interacting: 3, longestMs: 200_000)
                )
            ],
            topic: "genesys.raw.queue"
        )
    }

    func calm() { simulator.setEstimatedWait(queueID: queue, seconds: 10) }

    /// The queue's overflow state document.
    func state() async throws -> OverflowActivation? {
        guard let document = try await documents.document(kind: "overflow", key: queue) else { return nil }
        return try JSONDecoder().decode(OverflowActivation.self, from: Data(document.body.utf8))
    }

    func waitFor(_ seconds: Double = 30, _ condition: (OverflowActivation) -> Bool) async throws -> OverflowActivation?
    {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if let s = try await state(), condition(s) { return s }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// The queue as stored, without `dateModified` (which every PUT moves on).
    func queueObject() -> [String: JSONValue] {
        var q = simulator.queue(queue) ?? [:]
        q.removeValue(forKey: "dateModified")
        return q
    }

    func writes(_ kind: String) -> Int { simulator.writeCount(kind, queueID: queue) }

    /// The audit records for the queue.
    func audit(expected: Int = 1) async throws -> [[String: Any]] {
        try await readWhenPresent(
            KafkaClientConfiguration(bootstrapServers: broker.bootstrap),
            topic: "genesys.overflow.audit",
            expected: expected
        ).compactMap { try JSONSerialization.jsonObject(with: Data($0.value)) as? [String: Any] }
    }
}

@Suite("Queue overflow controller against the simulator (real worker processes)", .serialized, .elasticThreads)
struct OverflowControllerTests {
    /// Surge → verified → members added and routing changed → calm → reverted: the queue ends
    /// exactly as it started, each write happened once, and the audit tells the story.
    @Test(arguments: StoreKind.available)
    func fullLifecycleRevertsToTheInitialQueue(kind: StoreKind) async throws {
        let s = try OverflowScenario(kind)
        let initial = s.queueObject()
        let worker = try s.worker(["INGEST_OVERFLOW_AUDIT_WEBHOOK_URL": s.simulator.baseURL + "/webhook"])
        try await s.surge()
        let active = try await s.waitFor { $0.state == .active }
        #expect(active != nil, "\(worker.child.output.suffix(3000))")
        #expect(
            s.simulator.members(s.queue)
                == s.initialMembers.union(["agent-overflow-1", "agent-overflow-2"])
        )
        #expect(s.simulator.queue(s.queue)?["conditionalGroupRouting"] == s.overflowRouting)
        #expect(active?.plannedMembers == ["agent-overflow-1", "agent-overflow-2"], "not the existing member")
        s.calm()
        let done = try await s.waitFor { $0.state == .idle && $0.lastActivation != nil }
        #expect(done?.lastActivation?.outcome == "reverted")
        #expect(s.simulator.members(s.queue) == s.initialMembers)
        #expect(s.queueObject() == initial, "final queue equals the initial one")
        #expect(s.writes("POST members") == 1 && s.writes("POST members delete") == 1 && s.writes("PUT queue") == 2)
        let audit = try await s.audit(expected: 10)
        let events = audit.compactMap { $0["event"] as? String }
        for e in ["detected", "state", "api", "plan", "reverted"] { #expect(events.contains(e), "\(events)") }
        #expect(audit.contains { ($0["detail"] as? String) == "PUT queue" && $0["durationMs"] is Int })
        let metrics = try worker.get("/metrics").bodyText
        #expect(metricValues(metrics, "genesys_overflow_activations_total") == [1])
        try await DashboardCoverage.expectExported(dashboard: "queues", prefixes: ["genesys_overflow_"]) {
            try worker.get("/metrics").bodyText
        }
        #expect(metricValues(metrics, "genesys_overflow_reverts_total") == [1])
        #expect(metricValues(metrics, "genesys_overflow_time_in_overflow_seconds_total").first ?? 0 > 0)
        let webhook = await within(10) {
            s.simulator.receiver.webhookBodies.contains { $0["event"]?.stringValue == "reverted" }
        }
        #expect(webhook, "the audit webhook got the records too")
        // `ingestctl overflow status` shows the queue and what the last activation did.
        let status = try ChildProcess(
            executable: BuiltProducts.path("ingestctl"),
            arguments: ["overflow", "status", "--store", s.store.url, "--schema", s.store.schema],
            logName: "ingestctl"
        )
        #expect(status.waitForExit(timeout: 20) == 0)
        let text: String = status.output
        #expect(text.contains("\(s.queue): idle"), "\(text)")
        #expect(
            text.contains("last activation") && text.contains("reverted; members 2, fields conditionalGroupRouting"),
            "\(text)"
        )
    }

    /// SIGKILL in each state, restart: the activation completes and no write is repeated.
    @Test(
        arguments: [OverflowActivation.State.verifying, .acting, .active, .recovering, .reverting],
        StoreKind.available
    )
    func sigkillInEachStateResumesWithoutRepeatingActions(
        state: OverflowActivation.State,
        kind: StoreKind
    ) async throws {
        let s = try OverflowScenario(kind)
        let initial = s.queueObject()
        // Each persisted step pauses, so the test sees the state and kills the worker in it.
        // Verifying is one API call: the simulator holds its answer until the test has seen
        // the state, so the kill lands in it however fast or slow the machine is.
        let slow = ["INGEST_OVERFLOW_STEP_DELAY_MS": "1000"]
        let verifyCalls = ["routing/queues/\(s.queue)/estimatedwaittime", "analytics/queues/observations/query"]
        if state == .verifying { verifyCalls.forEach(s.simulator.hold) }
        let first = try s.worker(slow)
        try await s.surge()
        if state == .recovering || state == .reverting {
            _ = try await s.waitFor { $0.state == .active }
            s.calm()
        }
        let reached = try await s.waitFor { $0.state == state }
        #expect(reached != nil, "never reached \(state): \(first.child.output.suffix(2000))")
        if state == .verifying {
            let asked = await within(20) { verifyCalls.contains { s.simulator.heldCount($0) > 0 } }
            #expect(asked, "the verification request never reached the simulator")
        }
        first.child.signal(SIGKILL)
        _ = first.child.waitForExit(timeout: 5)
        verifyCalls.forEach(s.simulator.release)
        let second = try s.worker(slow)
        if state != .recovering && state != .reverting {
            _ = try await s.waitFor { $0.state == .active }
            s.calm()
        }
        let done = try await s.waitFor(60) { $0.state == .idle && $0.lastActivation != nil }
        #expect(done?.lastActivation?.outcome == "reverted", "\(second.child.output.suffix(2000))")
        #expect(s.simulator.members(s.queue) == s.initialMembers)
        #expect(s.queueObject() == initial)
        #expect(s.writes("POST members") == 1, "members added once")
        #expect(s.writes("POST members delete") == 1, "members removed once")
        #expect(s.writes("PUT queue") == 2, "one PUT to apply, one to restore")
    }

    /// A person edits the queue while the controller works: an edit between its plan and its
    /// write is not clobbered (it re-plans), and a change to the field it set is left in place
    /// by the revert and reported.
    @Test func humanEditsAreNeverClobbered() async throws {
        let s = try OverflowScenario()
        let worker = try s.worker(["INGEST_OVERFLOW_STEP_DELAY_MS": "800"])
        try await s.surge()
        // The settings change is planned (recorded) but not written yet: edit the description.
        let planned = try await s.waitFor { $0.settings != nil && $0.settings?.appliedDone == false }
        #expect(planned != nil, "\(worker.child.output.suffix(2000))")
        s.simulator.editQueue(s.queue) { $0["description"] = "edited by a supervisor" }
        _ = try await s.waitFor { $0.state == .active }
        #expect(s.simulator.queue(s.queue)?["description"]?.stringValue == "edited by a supervisor")
        #expect(s.simulator.queue(s.queue)?["conditionalGroupRouting"] == s.overflowRouting)
        // While active, the supervisor sets their own routing rule.
        let theirs: JSONValue = ["rules": [["queue": ["id": "queue-of-their-choice"], "conditionValue": 45]]]
        s.simulator.editQueue(s.queue) { $0["conditionalGroupRouting"] = theirs }
        s.calm()
        let done = try await s.waitFor { $0.state == .idle && $0.lastActivation != nil }
        #expect(done?.lastActivation?.outcome == "reverted with notes")
        #expect(
            done?.lastActivation?.notes.contains {
                $0.contains("'conditionalGroupRouting' was changed by someone else")
            }
                == true
        )
        #expect(s.simulator.queue(s.queue)?["conditionalGroupRouting"] == theirs)
        #expect(s.simulator.queue(s.queue)?["description"]?.stringValue == "edited by a supervisor")
        #expect(s.simulator.members(s.queue) == s.initialMembers, "members still reverted")
        #expect(s.writes("PUT queue") == 1, "nothing of ours left to restore")
        let audit = try await s.audit(expected: 10)
        #expect(audit.contains { $0["event"] as? String == "conflict" })
        #expect(audit.contains { $0["event"] as? String == "human-change-kept" })
    }

    /// Two controller processes in separate consumer groups share one store: both receive the
    /// surge's notification, exactly one activation happens (the other instance finds the event
    /// already handled, or the activation already under way).
    @Test(arguments: StoreKind.available)
    func twoInstancesActivateOnce(kind: StoreKind) async throws {
        let s = try OverflowScenario(kind)
        let a = try s.worker(group: "overflow-a", id: "controller-a")
        let b = try s.worker(group: "overflow-b", id: "controller-b")
        try await s.surge()
        let active = try await s.waitFor { $0.state == .active }
        #expect(active != nil, "\(a.child.output.suffix(1500)) \(b.child.output.suffix(1500))")
        func outcomes(_ w: WorkerProcess) -> (handled: Double, ignored: Double) {
            let page = (try? w.get("/metrics").bodyText) ?? ""
            let handled = ["processed", "duplicate"].flatMap {
                metricValues(page, "ingest_worker_events_total", ["handler": "overflow", "outcome": $0])
            }
            let ignored = metricValues(page, "genesys_overflow_ignored_triggers_total")
            return (handled.reduce(0, +), ignored.reduce(0, +))
        }
        #expect(await within(30) { outcomes(a).handled >= 1 && outcomes(b).handled >= 1 }, "both saw it")
        #expect(s.writes("POST members") == 1 && s.writes("PUT queue") == 1)
        s.calm()
        let done = try await s.waitFor { $0.state == .idle && $0.lastActivation != nil }
        #expect(done?.lastActivation?.outcome == "reverted")
        #expect(s.writes("POST members") == 1 && s.writes("PUT queue") == 2)
        // Read once the activation is over (while active, every check is audited).
        let detections = try await s.audit(expected: 5).filter { $0["event"] as? String == "detected" }
        #expect(detections.count == 1, "one activation: \(detections)")
    }

    /// The analytics worker's running summaries feed detection: a p90 wait over the threshold
    /// for the configured time starts an activation (verified against the API first); a
    /// final summary or one under the threshold does not.
    @Test func analyticsSummariesDetectLongWaits() async throws {
        let s = try OverflowScenario()
        let configuration = try OverflowConfiguration.parse(
            Data(s.configuration(detect: #"{"metric": "p90WaitSeconds", "above": 120, "forSeconds": 0}"#).utf8)
        )
        let controller = makeController(s, configuration, owner: "summaries")
        let handler = OverflowHandler(controller: controller, metricsTopic: "genesys.queue.metrics")
        func summary(p90Ms: Int, final: Bool) -> WorkerEvent {
            let body = #"{"queueId":"\#(s.queue)","mediaType":"voice","final":\#(final),"waitMs":{"p90":\#(p90Ms)}}"#
            return WorkerEvent(
                record: KafkaRecord(
                    topic: "genesys.queue.metrics",
                    partition: 0,
                    offset: 0,
                    key: nil,
                    value: Array(body.utf8)
                ),
                dedupKey: UUID().uuidString,
                topicName: nil,
                conversationID: nil
            )
        }
        #expect(handler.accepts(summary(p90Ms: 1, final: false)))
        s.simulator.setEstimatedWait(queueID: s.queue, seconds: 300)
        _ = try await handler.handle(summary(p90Ms: 90_000, final: false))
        _ = try await handler.handle(summary(p90Ms: 400_000, final: true))
        #expect(try await s.state() == nil, "no activation below the threshold or from a final summary")
        _ = try await handler.handle(summary(p90Ms: 200_000, final: false))
        #expect(try await s.state()?.state == .active)
        #expect(s.writes("POST members") == 1)
        await #expect(throws: HandlerFailure.self) {
            _ = try await handler.handle(
                WorkerEvent(
                    record: KafkaRecord(
                        topic: "genesys.queue.metrics",
                        partition: 0,
                        offset: 1,
                        key: nil,
                        value: Array("{oops".utf8)
                    ),
                    dedupKey: "x",
                    topicName: nil,
                    conversationID: nil
                )
            )
        }
    }

    /// Four controllers (one store, one simulator) trigger and drive the same queue at once:
    /// one trigger wins, one lease holder acts, each write happens once.
    @Test(arguments: StoreKind.available)
    func concurrentControllersShareOneActivation(kind: StoreKind) async throws {
        let s = try OverflowScenario(kind)
        let configuration = try OverflowConfiguration.parse(Data(s.configuration.utf8))
        let controllers = (0..<4).map { makeController(s, configuration, owner: "controller-\($0)") }
        s.simulator.setEstimatedWait(queueID: s.queue, seconds: 300)
        let started = await withTaskGroup(of: Bool.self) { group in
            for c in controllers { group.addTask { await c.trigger(queueID: s.queue, reason: "test") } }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(started == 1, "one trigger wins")
        func roundAll() async {
            await withTaskGroup(of: Void.self) { group in
                for c in controllers { group.addTask { await c.reconcile() } }
            }
        }
        for _ in 0..<10 { await roundAll() }
        #expect(try await s.state()?.state == .active)
        #expect(s.writes("POST members") == 1 && s.writes("PUT queue") == 1)
        s.calm()
        let deadline = ContinuousClock.now + .seconds(20)
        while try await s.state()?.state != .idle, ContinuousClock.now < deadline {
            await roundAll()
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await s.state()?.lastActivation?.outcome == "reverted")
        #expect(s.writes("POST members") == 1 && s.writes("POST members delete") == 1 && s.writes("PUT queue") == 2)
        #expect(s.simulator.members(s.queue) == s.initialMembers)
    }

    /// Dry run: the whole lifecycle is planned and audited, nothing is written.
    @Test func dryRunPlansAndAuditsOnly() async throws {
        let s = try OverflowScenario()
        let initial = s.queueObject()
        let worker = try s.worker(["INGEST_OVERFLOW_DRY_RUN": "true"])
        try await s.surge()
        let active = try await s.waitFor { $0.state == .active }
        #expect(active?.dryRun == true, "\(worker.child.output.suffix(2000))")
        s.calm()
        _ = try await s.waitFor { $0.state == .idle && $0.lastActivation != nil }
        #expect(s.writes("POST members") == 0 && s.writes("PUT queue") == 0 && s.writes("POST members delete") == 0)
        #expect(s.queueObject() == initial)
        let audit = try await s.audit(expected: 5)
        #expect(audit.contains { $0["event"] as? String == "dry-run" && $0["dryRun"] as? Bool == true })
    }

    /// A configuration with an overflow loop stops the worker at start, naming the loop.
    @Test func workerRefusesAConfigurationWithALoop() throws {
        let policy = { (id: String, name: String, to: String) in
            """
            {"queueId": "\(id)", "name": "\(name)", "detect": {"metric": "waiting", "above": 5},
             "verify": {"metric": "waiting", "above": 5}, "recover": {"metric": "waiting", "below": 1},
             "addMembers": ["u"], "overflowTo": ["\(to)"]}
            """
        }
        let child = try ChildProcess(
            executable: BuiltProducts.path("ingest-worker"),
            environment: [
                "INGEST_WORKER_HANDLERS": "overflow", "INGEST_STORE_URL": "sqlite:" + temporaryDatabase(),
                "INGEST_OVERFLOW_CONFIG":
                    #"{"queues": [\#(policy("a", "Sales", "b")), \#(policy("b", "Support", "a"))]}"#,
                "INGEST_GENESYS_API_URL": "http://127.0.0.1:9", "INGEST_GENESYS_CLIENT_ID": "x",
                "INGEST_GENESYS_CLIENT_SECRET": "y",
            ],
            logName: "worker"
        )
        let status = child.waitForExit(timeout: 20)
        #expect(status != nil && status != 0)
        let output: String = child.output
        #expect(output.contains("overflow configuration has a loop: Sales → Support → Sales"), "\(output)")
    }
}

/// An in-process controller against the scenario's simulator and store (its own connection).
func makeController(_ s: OverflowScenario, _ configuration: OverflowConfiguration, owner: String) -> OverflowController
{
    let client = GenesysClient(
        configuration: GenesysClientConfiguration(
            clientID: "sim-client",
            clientSecret: "sim-secret",
            apiBaseURL: s.simulator.baseURL,
            loginBaseURL: s.simulator.baseURL
        ),
        budget: SharedRateBudget(store: InMemoryRateBudgetStore(), bucket: owner, limit: 300, periodSeconds: 60),
        logger: Logger(label: "genesys")
    )
    return OverflowController(
        configuration: configuration,
        api: RoutingAPI(client: client),
        store: try! s.store.kind.make(sharing: s.store.location).store as! any DocumentStore,
        audit: OverflowAudit(producer: nil, topic: "audit", webhook: nil, logger: Logger(label: "audit")),
        metrics: OverflowMetrics(registry: PrometheusCollectorRegistry(), queueIDs: [s.queue]),
        owner: owner,
        logger: Logger(label: "overflow")
    )
}
