import Foundation
import IngestCore
import IngestCrypto
import IngestKafka
import IngestTesting
import Testing

/// The console in a real headless Chromium (Selenium, `Tests/Browser/console_browser.py`)
/// against the real `ingestctl console serve`, a real broker and a real worker: a bulk redrive
/// of 500 dead letters is handled exactly once each; a job cancelled halfway has exactly its
/// replayed part handled; a viewer cannot redrive; a POST without the token is refused;
/// masking works. Screenshots of the pages go to `.build/screenshots/`.
@Suite("Ops console in a real browser (headless Chromium, Selenium)", .serialized, .elasticThreads)
struct ConsoleBrowserTests {
    static var browserAvailable: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium")
            && FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver")
    }

    @Test func bulkRedriveCancelRolesAndMaskingInTheBrowser() async throws {
        guard Self.browserAvailable else {
            print("skipped: no /usr/bin/chromium and /usr/bin/chromedriver (Scripts/install-deps installs them)")
            return
        }
        let broker = try TansuBroker()
        try createTopic(broker)
        let db = try TestStore(.sqlite)
        let (a, b) = (500, 150)
        func poison(_ batch: String, _ i: Int) -> (String, [UInt8]) {
            let c = "c-\(batch)-\(i)"
            return (
                c,
                event(
                    conversation: c,
                    id: "\(batch)-\(i)",
                    extra: #","ingest-test":"poison","batch":"\#(batch)","ani":"tel:+15551234567""#
                )
            )
        }
        try await produce(broker, (0..<a).map { poison("a", $0) } + (0..<b).map { poison("b", $0) })
        let worker = try WorkerProcess(brokers: broker.bootstrap, store: db, group: "browser")
        let kafka = KafkaClientConfiguration(bootstrapServers: broker.bootstrap)
        let dead = try await readWhenPresent(kafka, topic: "genesys.raw.conversation.dlq", expected: a + b)
        #expect(dead.count == a + b)
        worker.child.signal(SIGTERM)
        #expect(worker.child.waitForExit(timeout: 20) == 0)
        #expect(try await sideEffects(db).isEmpty)
        let fixed = try WorkerProcess(
            brokers: broker.bootstrap,
            store: db,
            group: "browser",
            environment: ["INGEST_RECORD_POISON_MARKER": ""]
        )
        defer { fixed.child.killAndWait() }

        let hash = PasswordHash.make(password: "browser-pw", iterations: 20_000)
        let users = NSTemporaryDirectory() + "console-users-\(UUID().uuidString)"
        try "ops:operator:\(hash)\nwatcher:viewer:\(hash)\n".write(toFile: users, atomically: true, encoding: .utf8)
        let console = try ChildProcess(
            executable: BuiltProducts.path("ingestctl"),
            arguments: [
                "console", "serve", "--brokers", broker.bootstrap, "--users", users, "--port", "0", "--store", db.url,
                "--store-schema", db.schema,
            ],
            logName: "console-browser"
        )
        defer { console.killAndWait() }
        let port = try #require(
            console.waitForOutput(#"console on http://127\.0\.0\.1:(\d+)/"#, timeout: 30).flatMap(Int.init)
        )
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let shots = root.appendingPathComponent(".build/screenshots").path
        let browser = try ChildProcess(
            // The python3 on PATH: the one Scripts/install-deps installed Selenium for.
            executable: "/usr/bin/env",
            arguments: [
                "python3", root.appendingPathComponent("Tests/Browser/console_browser.py").path, "--url",
                "http://127.0.0.1:\(port)",
                "--operator", "ops", "--viewer", "watcher", "--password", "browser-pw", "--conversation", "c-a-7",
                "--batch-a", String(a), "--batch-b", String(b), "--screenshots", shots,
            ],
            logName: "browser"
        )
        #expect(
            browser.waitForExit(timeout: 300) == 0,
            "\(browser.output.suffix(3000)); console: \(console.output.suffix(1500))"
        )
        let line = browser.output.split(separator: "\n").last { $0.hasPrefix("{\"cancelledAfter\"") }
        let cancelledAfter = try #require(
            line.flatMap { try? JSONValue.parse(Data($0.utf8)) }?["cancelledAfter"]?.numberValue.map { Int($0) }
        )
        // The worker handled batch a once each and, of batch b, exactly the part replayed.
        let effects = try await waitForSideEffects(db, count: a + cancelledAfter)
        try await Task.sleep(for: .seconds(3))
        let settled = try await sideEffects(db)
        #expect(settled.count == a + cancelledAfter, "\(settled.count) handled; expected \(a) + \(cancelledAfter)")
        #expect(settled.filter { $0.dedupKey.hasPrefix("record|id:a-") }.count == a)
        #expect(settled.filter { $0.dedupKey.hasPrefix("record|id:b-") }.count == cancelledAfter)
        #expect(Set(effects.map(\.dedupKey)).count == effects.count, "none twice")
        #expect(FileManager.default.fileExists(atPath: shots + "/dead-letters.png"))
    }
}
