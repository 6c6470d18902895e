#if canImport(Glibc)
import Glibc
#endif

/// A value behind a `pthread_mutex_t`; the project's lock (used where `Synchronization.Mutex`
/// would be).
///
/// Why not `Mutex`: on Linux it locks with raw futex calls, which ThreadSanitizer cannot see,
/// so every state it guards is reported as a race and real races drown in the noise.
/// pthread mutexes are intercepted by TSan, so the test command's TSan run reports only real
/// races. Same shape as `Mutex`: `withLock { state in … }`; never call back into the same
/// lock from the closure (not recursive).
public final class LockedValue<Value>: @unchecked Sendable {
    // @unchecked: `value` is only touched between pthread_mutex_lock and _unlock.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        let result = pthread_mutex_init(mutex, nil)
        precondition(result == 0, "pthread_mutex_init failed: \(result)")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    @inline(__always)
    public func withLock<Result, Failure: Error>(
        _ body: (inout sending Value) throws(Failure) -> sending Result
    ) throws(Failure) -> sending Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
