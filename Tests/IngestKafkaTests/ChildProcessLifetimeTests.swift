import Foundation
import IngestTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Regression (issue 10): after a hung test run was killed, 12 brokers, gateways and workers it
/// had started were still running and holding ports. Children now die with the test process.
@Suite("Test child processes die with the test run", .elasticThreads)
struct ChildProcessLifetimeTests {
    static let helperVariable = "INGEST_TEST_CHILD_LIFETIME_HELPER"

    /// Runs only inside the helper process below: starts a broker, reports it, waits.
    @Test(.enabled(if: ProcessInfo.processInfo.environment[helperVariable] == "1"))
    func helperStartsABrokerAndWaits() throws {
        let broker = try TansuBroker()
        let pidFile = ProcessInfo.processInfo.environment[Self.helperVariable + "_FILE"] ?? "/dev/null"
        let pid = try #require(broker.pid)
        try "\(pid) \(broker.port)\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
        sleep(120)
    }

    @Test func aSIGKILLedTestRunLeavesNoBrokerBehind() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(
            "helper-\(UUID().uuidString.prefix(8))"
        )
        defer { try? FileManager.default.removeItem(at: file) }
        let helper = try ChildProcess(
            executable: CommandLine.arguments[0],
            arguments: ["--testing-library", "swift-testing", "--filter", "helperStartsABrokerAndWaits"],
            environment: [Self.helperVariable: "1", Self.helperVariable + "_FILE": file.path],
            logName: "lifetime-helper"
        )
        var fields: [Int32] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while fields.count < 2 && ContinuousClock.now < deadline && helper.isRunning {
            fields = ((try? String(contentsOf: file, encoding: .utf8)) ?? "").split(whereSeparator: \.isWhitespace)
                .compactMap { Int32($0) }
            usleep(100_000)
        }
        try #require(fields.count == 2, "the helper did not start a broker: \(helper.output.suffix(1500))")
        let (brokerPID, port) = (fields[0], Int(fields[1]))
        #expect(kill(brokerPID, 0) == 0, "the broker runs while its test process lives")
        helper.signal(SIGKILL)
        #expect(helper.waitForExit(timeout: 10) != nil)
        var gone = false
        for _ in 0..<100 {
            // Reaped by init once orphaned; a zombie counts as gone too (it holds no port).
            if kill(brokerPID, 0) != 0 || Self.isZombie(brokerPID) {
                gone = true
                break
            }
            usleep(100_000)
        }
        #expect(gone, "broker \(brokerPID) outlived the killed test process")
        #expect(!Network.waitForPort(port, timeout: 1), "port \(port) is free again")
    }

    /// Under `.elasticThreads`, tests that block hold threads of their own: more child tasks
    /// than the machine has cores, each blocked until all of them have arrived, all get a
    /// thread (on the cooperative pool, two cores here, the rendezvous can never complete).
    @Test func blockedTasksEachGetAThread() async {
        let parties = ProcessInfo.processInfo.activeProcessorCount + 3
        let arrived = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let completed = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<parties {
                group.addTask {
                    arrived.signal()
                    return release.wait(timeout: .now() + 60) == .success
                }
            }
            group.addTask {
                for _ in 0..<parties where arrived.wait(timeout: .now() + 60) == .timedOut { return false }
                for _ in 0..<parties { release.signal() }
                return true
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(completed == parties + 1, "every blocked task was released")
    }

    static func isZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }
}
