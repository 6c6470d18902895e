import Foundation
import Testing

/// A task executor whose jobs never wait behind a blocked thread: each job runs on an idle
/// thread of its own pool, or on a new one when every thread is busy; a thread idle for 10 s
/// ends.
///
/// Why tests need it: Swift's global executor on Linux is a cooperative pool as wide as the
/// machine has cores — two here — and it never adds a thread when one blocks (measured: six
/// tasks each sleeping 1 s take 3 s). Integration tests block on purpose (socket reads with
/// deadlines, child-process waits, Kafka reads), so two of them running side by side stalled
/// every other suite's timers and continuations: a PagerDuty retry test that needs 2 s did not
/// finish in 20 s. Under ``Trait/elasticThreads`` a blocking test holds only a thread of its
/// own.
///
/// Confinement: `jobs` and `idle` are guarded by `lock`; each worker thread waits on its
/// own semaphore, handed to `idle` while it has nothing to run.
public final class ElasticTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `lock` (see above).

    /// The executor every test under ``Trait/elasticThreads`` shares.
    public static let shared = ElasticTaskExecutor()

    private let lock = NSLock()
    private var jobs: [UnownedJob] = []
    /// Threads waiting for work, each by the semaphore that wakes it.
    private var idle: [DispatchSemaphore] = []

    public init() {}

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        lock.lock()
        jobs.append(job)
        // Claim an idle thread for this job (or start one): a job never waits for a busy one.
        let wake = idle.popLast()
        lock.unlock()
        if let wake {
            wake.signal()
        } else {
            Thread.detachNewThread { [self] in work() }
        }
    }

    private func work() {
        let wake = DispatchSemaphore(value: 0)
        while true {
            lock.lock()
            if !jobs.isEmpty {
                let job = jobs.removeFirst()
                lock.unlock()
                job.runSynchronously(on: asUnownedTaskExecutor())
                continue
            }
            idle.append(wake)
            lock.unlock()
            if wake.wait(timeout: .now() + 10) == .timedOut {
                lock.lock()
                if let mine = idle.firstIndex(where: { $0 === wake }) {
                    idle.remove(at: mine)
                    lock.unlock()
                    return
                }
                lock.unlock()
                // Claimed just as the wait ended: take the signal that was sent.
                wake.wait()
            }
        }
    }
}

/// Runs a test, or every test of a suite, with ``ElasticTaskExecutor/shared`` as its task
/// executor preference: its synchronous code, its child tasks and the default actors it calls
/// run on threads that may block without starving the rest of the run.
public struct ElasticThreadsTrait: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test,
        testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        try await withTaskExecutorPreference(ElasticTaskExecutor.shared) { try await function() }
    }
}

extension Trait where Self == ElasticThreadsTrait {
    /// Lets the tests block (sockets, child processes, Kafka reads) without holding one of the
    /// cooperative pool's few threads; see ``ElasticTaskExecutor``.
    public static var elasticThreads: Self { ElasticThreadsTrait() }
}
