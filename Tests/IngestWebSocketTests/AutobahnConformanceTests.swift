import Foundation
import IngestTesting
import Testing

@testable import IngestWebSocket

/// The bridge's WebSocket client against Autobahn|Testsuite's fuzzing server, sections 1–7
/// (framing, pings, reserved bits, opcodes, fragmentation, UTF-8, closing). Section 9
/// (performance) and 12/13 (compression, which the client does not offer) are left out.
/// Autobahn runs under Python 2.7 (`Scripts/install-deps` installs it when pyenv's 2.7.18 is
/// there); without it the test says so and does not run.
@Suite("WebSocket client conformance (Autobahn|Testsuite)", .serialized, .elasticThreads)
struct AutobahnConformanceTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let agent = "genesys-ingest"

    /// Opens `path` on the fuzzing server and returns its first text message (control queries).
    func query(_ base: String, _ path: String) throws -> String? {
        let c = try WebSocketConnection.connect(url: base + path)
        defer { c.close() }
        while let m = try c.receive(until: .now + .seconds(10)) {
            if case .text(let t) = m { return t }
            if case .close = m { return nil }
        }
        return nil
    }

    @Test func sectionsOneToSevenPass() throws {
        let wstest = Self.root + "/.run/autobahn/wstest"
        guard FileManager.default.isExecutableFile(atPath: wstest) else {
            print("Autobahn|Testsuite not installed (needs pyenv's Python 2.7.18; see Scripts/install-deps): not run")
            return
        }
        let port = Network.freePort()
        let dir = NSTemporaryDirectory() + "autobahn-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let spec: [String: Any] = [
            "url": "ws://127.0.0.1:\(port)", "outdir": dir + "/reports",
            "cases": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*"], "exclude-cases": [],
            "exclude-agent-cases": [String: String](),
        ]
        try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: dir + "/spec.json"))
        let server = try ChildProcess(
            executable: wstest,
            arguments: ["-m", "fuzzingserver", "-s", dir + "/spec.json"],
            logName: "autobahn"
        )
        defer { server.killAndWait() }
        #expect(Network.waitForPort(port, timeout: 60), "the fuzzing server started: \(server.output.suffix(2000))")
        let base = "ws://127.0.0.1:\(port)"
        let count = try #require(try query(base, "/getCaseCount").flatMap { Int($0) }, "case count")
        #expect(count > 200)
        for n in 1...count {
            // Echo every message back until the case ends (a close, or a violation we refuse).
            guard let c = try? WebSocketConnection.connect(url: base + "/runCase?case=\(n)&agent=\(Self.agent)") else {
                continue
            }
            let deadline = ContinuousClock.now + .seconds(30)
            echo: while ContinuousClock.now < deadline {
                do {
                    guard let m = try c.receive(until: deadline) else { break }
                    switch m {
                    case .text(let t): try c.send(text: t)
                    case .binary(let b): try c.send(binary: b)
                    case .close: break echo
                    case .ping, .pong: continue
                    }
                } catch { break }
            }
            c.close()
        }
        var tally: [String: Int] = [:]
        var failed: [String] = []
        for n in 1...count {
            let status = try query(base, "/getCaseStatus?case=\(n)&agent=\(Self.agent)") ?? "{}"
            let behavior =
                ((try? JSONSerialization.jsonObject(with: Data(status.utf8))) as? [String: Any])?["behavior"]
                as? String ?? "missing"
            tally[behavior, default: 0] += 1
            if !["OK", "NON-STRICT", "INFORMATIONAL"].contains(behavior) {
                let info = try query(base, "/getCaseInfo?case=\(n)&agent=\(Self.agent)") ?? ""
                failed.append("\(n) \(behavior) \(info.prefix(120))")
            }
        }
        _ = try? query(base, "/updateReports?agent=\(Self.agent)")
        print("Autobahn sections 1-7: \(count) cases, \(tally.sorted { $0.key < $1.key })")
        #expect(failed.isEmpty, "cases not passed: \(failed.joined(separator: "; "))")
    }
}
