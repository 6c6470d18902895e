import Foundation

/// Runs blocking work (socket reads with deadlines, child-process waits) on a thread of its
/// own and awaits it, so that a test does not hold one of the few cooperative-pool threads
/// other tests' async work needs (on a 2-core machine the pool has two: a 15 s blocking test
/// stalled unrelated suites running beside it).
public func onDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }
    }
}
