import Foundation
import IngestCore
import IngestCrypto
import IngestKafka
import IngestTesting
import Synchronization
import Testing

@testable import GenesysSimulator

/// Clients, each with its own conversation (Kafka key), posting numbered events one after the
/// other; what was answered 202, per client, in order.
final class OrderedLoad: @unchecked Sendable {
    // @unchecked: `acknowledged` is behind a lock; the rest is immutable or atomic.
    let clients: Int
    let conversations: [String]
    let acknowledged = LockedValue<[Int: [Int]]>([:])
    let next = LockedValue<[Int: Int]>([:])
    private let stop = Atomic<Bool>(false)
    private let group = DispatchGroup()

    init(clients: Int) {
        self.clients = clients
        self.conversations = (0..<clients).map { _ in EventFactory.uuid() }
    }

    static func sequenceNumber(_ value: [UInt8]) -> Int? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(value)) as? [String: Any],
            let detail = object["detail"] as? [String: Any], let body = detail["eventBody"] as? [String: Any]
        else { return nil }
        return body["clientSeq"] as? Int
    }

    /// Starts posting to whatever gateway `port()` names (it changes across restarts); a
    /// request that got no 202 is sent again, so each client's numbers are sent in order.
    func start(port: @escaping @Sendable () -> Int) {
        for c in 0..<clients {
            group.enter()
            Thread.detachNewThread { [self] in
                defer { group.leave() }
                var seq = 0
                var client: RawHTTPClient?
                while !stop.load(ordering: .relaxed) {
                    let body = Array(
                        """
                        {"version":"0","id":"\(EventFactory.uuid())","detail-type":"v2.detail.events.conversation.{id}.customer.start",\
                        "source":"test","detail":{"topicName":"v2.detail.events.conversation.\(conversations[c]).customer.start",\
                        "eventBody":{"conversationId":"\(conversations[c])","clientSeq":\(seq),"eventTime":1700000000000}}}
                        """.utf8
                    )
                    let request = RawHTTPClient.request(
                        path: "/events/genesys",
                        headers: RequestSigner.headers(
                            scheme: .genesysHMAC,
                            secret: GatewayProcess.secrets.primary,
                            body: body
                        ),
                        body: body
                    )
                    if client == nil { client = try? RawHTTPClient(port: port(), timeout: 5) }
                    guard let c0 = client, (try? c0.send(request)) != nil, let r = try? c0.readResponse() else {
                        client = nil
                        Thread.sleep(forTimeInterval: 0.05)
                        continue
                    }
                    if r.status == 202 {
                        acknowledged.withLock { $0[c, default: []].append(seq) }
                        seq += 1
                    } else {
                        Thread.sleep(forTimeInterval: 0.02)
                    }
                }
            }
        }
    }

    func finish() {
        stop.store(true, ordering: .relaxed)
        group.wait()
    }

    var total: Int { acknowledged.withLock { $0.values.reduce(0) { $0 + $1.count } } }

    /// Checks Kafka's records against what was acknowledged: every acknowledged number is
    /// there, and per key the numbers first appear in the order they were sent.
    func verify(_ records: [KafkaRecord], after snapshot: [Int: [Int]] = [:]) {
        var seen: [String: [Int]] = [:]
        for r in records {
            guard let key = r.key.map({ String(decoding: $0, as: UTF8.self) }), let n = Self.sequenceNumber(r.value)
            else { continue }
            seen[key, default: []].append(n)
        }
        let acked = acknowledged.withLock { $0 }
        for c in 0..<clients {
            let inKafka = seen[conversations[c]] ?? []
            let wanted = Array((acked[c] ?? []).dropFirst(snapshot[c]?.count ?? 0))
            let missing = Set(wanted).subtracting(inKafka)
            #expect(missing.isEmpty, "client \(c): \(missing.count) of \(wanted.count) acknowledged events missing")
            var firsts: [Int] = []
            var known = Set<Int>()
            for n in inKafka where known.insert(n).inserted { firsts.append(n) }
            #expect(firsts == firsts.sorted(), "client \(c): per-key order broken")
        }
    }
}

@Suite("Gateway spool mode: 202 after fsync, Kafka outages ridden out (real processes)", .serialized, .elasticThreads)
struct GatewaySpoolTests {
    func spoolEnvironment(_ dir: String) -> [String: String] {
        ["INGEST_DELIVERY_MODE": "spool", "INGEST_SPOOL_DIR": dir]
    }

    /// kill -9 the gateway 10 times under load: every event answered 202 reaches Kafka, in
    /// per-key order, once the last gateway has forwarded the spool.
    @Test func tenKillsUnderLoadLoseNoAcknowledgedEventAndKeepPerKeyOrder() async throws {
        let broker = try TansuBroker()
        let dir = NSTemporaryDirectory() + "gateway-spool-" + UUID().uuidString
        let env = spoolEnvironment(dir)
        var gateway = try GatewayProcess(brokers: broker.bootstrap, environment: env)
        let port = LockedValue(gateway.port)
        let load = OrderedLoad(clients: 8)
        load.start { port.withLock { $0 } }
        for _ in 0..<10 {
            try await Task.sleep(for: .milliseconds(600))
            gateway.child.signal(SIGKILL)
            _ = gateway.child.waitForExit(timeout: 5)
            gateway = try GatewayProcess(brokers: broker.bootstrap, environment: env)
            let next = gateway.port
            port.withLock { $0 = next }
        }
        try await Task.sleep(for: .milliseconds(600))
        load.finish()
        #expect(load.total > 200, "the load ran: \(load.total) acknowledged")
        // The last gateway forwards whatever earlier ones left in the spool.
        let records = try readRecords(broker, topics: ["genesys.raw.conversation"], expected: load.total)
        load.verify(records)
        let ready = try gateway.get("/readyz")
        #expect(ready.status == 200 && ready.bodyText.contains("spool"))
    }

    /// The broker is down for a while under load: every request is still answered 202 (the
    /// spool takes them), and once the broker is back the backlog drains in order.
    @Test func aBrokerOutageUnderLoadIsRiddenOut() async throws {
        let broker = try TansuBroker()
        let dir = NSTemporaryDirectory() + "gateway-spool-" + UUID().uuidString
        let gateway = try GatewayProcess(brokers: broker.bootstrap, environment: spoolEnvironment(dir))
        let load = OrderedLoad(clients: 4)
        let port = gateway.port
        load.start { port }
        try await Task.sleep(for: .seconds(1))
        broker.stop()
        let atOutage = load.acknowledged.withLock { $0 }
        let before = load.total
        try await Task.sleep(for: .seconds(8))
        let during = load.total - before
        #expect(during > 100, "202s continue while Kafka is down (\(during))")
        #expect(try gateway.get("/readyz").status == 200, "ready: the spool takes events")
        let metrics = try gateway.get("/metrics").bodyText
        #expect(metrics.contains("ingest_spool_pending_records"))
        try await DashboardCoverage.expectExported(dashboard: "gateway", prefixes: ["ingest_spool_"]) {
            try gateway.get("/metrics").bodyText
        }
        try broker.start()
        try await Task.sleep(for: .seconds(1))
        load.finish()
        // Tansu's memory storage starts empty (what it had acknowledged before is gone with
        // it); everything answered 202 since the outage began must reach the new broker.
        try KafkaAdmin(configuration: KafkaClientConfiguration(bootstrapServers: broker.bootstrap))
            .createTopics([.init(name: "genesys.raw.conversation", partitions: 3)])
        let expected = load.total - before
        var records: [KafkaRecord] = []
        let drained = try await eventually(seconds: 90) {
            records = try readRecords(broker, topics: ["genesys.raw.conversation"])
            return records.count >= expected
        }
        #expect(
            drained,
            "the backlog drained: \(records.count) of \(expected) records; \(gateway.child.output.suffix(3000))"
        )
        load.verify(records, after: atOutage)
    }

    /// A full spool answers 503 with Retry-After, says so on /readyz, and never crashes; the
    /// operator's tools see exactly the accepted events in it.
    @Test func aFullSpoolAnswers503IsInspectableAndRecovers() async throws {
        let broker = try TansuBroker()
        broker.stop()  // nothing drains
        let dir = NSTemporaryDirectory() + "gateway-spool-" + UUID().uuidString
        var env = spoolEnvironment(dir)
        env["INGEST_SPOOL_MAX_BYTES"] = String(1 << 20)
        env["INGEST_SPOOL_SEGMENT_BYTES"] = String(64 << 10)
        let gateway = try GatewayProcess(brokers: broker.bootstrap, environment: env)
        var statuses: [Int: Int] = [:]
        var last: RawHTTPResponse?
        for _ in 0..<1200 {
            let r = try gateway.postSignedEvent()
            statuses[r.status, default: 0] += 1
            if r.status == 503 {
                last = r
                break
            }
        }
        let refusal = try #require(last, "the spool filled up: \(statuses)")
        #expect(refusal.header("Retry-After") != nil && refusal.bodyText.contains("spool full"))
        #expect(statuses[202, default: 0] > 300)
        #expect(try gateway.get("/readyz").status == 503, "not ready while full")
        // The operator's view, read-only, while the gateway runs.
        let verify = try ChildProcess(
            executable: BuiltProducts.path("ingestctl"),
            arguments: ["spool", "verify", "--dir", dir],
            logName: "ingestctl-verify"
        )
        #expect(verify.waitForExit(timeout: 30) == 0, "\(verify.output)")
        let export = try ChildProcess(
            executable: BuiltProducts.path("ingestctl"),
            arguments: ["spool", "export", "--dir", dir],
            logName: "ingestctl-export"
        )
        #expect(export.waitForExit(timeout: 30) == 0)
        let lines = export.output.split(separator: "\n").filter { $0.hasPrefix("{") && $0.contains("\"sequence\"") }
        #expect(lines.count == statuses[202, default: 0], "every accepted event is in the spool, not yet in Kafka")
        try broker.start()
        try KafkaAdmin(configuration: KafkaClientConfiguration(bootstrapServers: broker.bootstrap))
            .createTopics([.init(name: "genesys.raw.conversation", partitions: 3)])
        let recovered = try await eventually(seconds: 40) { try gateway.get("/readyz").status == 200 }
        if !recovered {
            let spoolLines =
                (try? gateway.get("/metrics").bodyText)?.split(separator: "\n")
                .filter { $0.hasPrefix("ingest_spool") }.joined(separator: "; ") ?? ""
            Issue.record(
                Comment(
                    rawValue:
                        "space did not return: readyz \((try? gateway.get("/readyz").bodyText) ?? "-"); \(spoolLines); "
                        + String(gateway.child.output.suffix(3000)).replacingOccurrences(of: "\r", with: " ")
                )
            )
        }
        #expect(gateway.child.isRunning)
    }
    /// The spool's disk fills up (a 1 MiB tmpfs, far below the spool's own limit): requests
    /// are answered 503 with the reason, /readyz says why, nothing crashes; when Kafka comes
    /// back the forwarded segments are deleted, space returns, 202s resume, and every event
    /// answered 202 is in Kafka.
    @Test func aFullDiskAnswers503AndRecoversWhenSpaceReturns() async throws {
        guard let disk = TmpfsMount(sizeBytes: 1 << 20) else {
            // Mounting needs root (CAP_SYS_ADMIN); CI runs as root on a fresh machine.
            print("aFullDiskAnswers503AndRecoversWhenSpaceReturns: cannot mount a tmpfs here, not run")
            return
        }
        defer { disk.unmount() }
        let broker = try TansuBroker()
        broker.stop()  // nothing drains
        var env = spoolEnvironment(disk.path + "/spool")
        env["INGEST_SPOOL_MAX_BYTES"] = String(64 << 20)
        env["INGEST_SPOOL_SEGMENT_BYTES"] = String(64 << 10)
        let gateway = try GatewayProcess(brokers: broker.bootstrap, environment: env)
        defer { gateway.child.killAndWait() }
        var accepted = 0
        var refusal: RawHTTPResponse?
        for _ in 0..<2000 {
            let r = try gateway.postSignedEvent()
            if r.status == 202 {
                accepted += 1
            } else if r.status == 503 {
                refusal = r
                break
            } else {
                Issue.record("unexpected \(r.status): \(r.bodyText)")
                break
            }
        }
        let full = try #require(refusal, "the disk filled up after \(accepted) events")
        #expect(accepted > 300, "most of the disk was used: \(accepted) events")
        #expect(full.header("Retry-After") != nil)
        #expect(full.bodyText.contains("No space left on device"), "the reason is given: \(full.bodyText)")
        let ready = try gateway.get("/readyz")
        #expect(ready.status == 503 && ready.bodyText.contains("No space left"), "\(ready.bodyText)")
        #expect(gateway.child.isRunning, "a full disk is not a crash")
        // Kafka returns: what was forwarded is deleted, and requests are taken again.
        try broker.start()
        try KafkaAdmin(configuration: KafkaClientConfiguration(bootstrapServers: broker.bootstrap))
            .createTopics([.init(name: "genesys.raw.conversation", partitions: 3)])
        var resumed = false
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let r = try gateway.postSignedEvent()
            if r.status == 202 {
                accepted += 1
                resumed = true
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(resumed, "202s resume once space returns: \((try? gateway.get("/readyz").bodyText) ?? "-")")
        #expect(try gateway.get("/readyz").status == 200)
        let records = try readRecords(broker, topics: ["genesys.raw.conversation"], expected: accepted)
        #expect(records.count >= accepted, "every event answered 202 reached Kafka: \(records.count) of \(accepted)")
    }
}

/// A small tmpfs mounted for one test (root only); nil where mounting is not allowed.
struct TmpfsMount {
    let path: String

    init?(sizeBytes: Int) {
        let dir = NSTemporaryDirectory() + "tmpfs-" + UUID().uuidString
        guard geteuid() == 0,
            (try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)) != nil,
            Glibc.mount("tmpfs", dir, "tmpfs", 0, "size=\(sizeBytes)") == 0
        else { return nil }
        path = dir
    }

    func unmount() {
        _ = umount2(path, Int32(MNT_DETACH))
        try? FileManager.default.removeItem(atPath: path)
    }
}

extension GatewayProcess {
    /// Posts one ~1.5 KB signed conversation event to the Genesys source.
    func postSignedEvent() throws -> RawHTTPResponse {
        let body = EventFactory.conversationEvent(targetSize: 1500)
        return try post(
            body: body,
            headers: RequestSigner.headers(scheme: .genesysHMAC, secret: GatewayProcess.secrets.primary, body: body)
        )
    }
}
