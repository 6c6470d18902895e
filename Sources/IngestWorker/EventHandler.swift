import IngestCore
import IngestKafka
import IngestStore
import Synchronization

/// One consumed event as handlers see it.
public struct WorkerEvent: Sendable {
    public var record: KafkaRecord
    /// The idempotency key, made by the handler's ``EventHandler/idempotency`` strategy.
    public var dedupKey: String
    /// The key the store claims for one handler: side effects committed with it carry it as
    /// their ``SideEffect/dedupKey``.
    public func claimKey(handler: String) -> String { "\(handler)|\(dedupKey)" }
    public var topicName: String?
    public var conversationID: String?

    public var body: [UInt8] { record.value }

    public init(record: KafkaRecord, dedupKey: String, topicName: String?, conversationID: String?) {
        self.record = record
        self.dedupKey = dedupKey
        self.topicName = topicName
        self.conversationID = conversationID
    }
}

/// How a handler failed; the runtime's reaction depends on the class.
public enum HandlerFailure: Error, Sendable, Equatable {
    /// Transient (timeout, 5xx): back off with jitter and retry, up to the attempt limit.
    case retryable(String)
    /// Not available yet (e.g. details not computed): retry after `afterMilliseconds` without
    /// spending an attempt, until the event is older than the maximum age.
    case delay(String, afterMilliseconds: Int)
    /// Can never succeed (malformed input): dead-letter at once.
    case poison(String)
    /// The worker cannot work (bad credentials, 401/403 upstream): pause consumption and
    /// report; nothing is dead-lettered.
    case fatal(String)

    public var errorClass: String {
        switch self {
        case .retryable: "retryable"
        case .delay: "delay"
        case .poison: "poison"
        case .fatal: "fatal"
        }
    }

    public var message: String {
        switch self {
        case .retryable(let m), .delay(let m, _), .poison(let m), .fatal(let m): m
        }
    }
}

/// A unit of work the runtime runs for events. Handlers run concurrently for different Kafka
/// keys and in order for one key. Each handler has its own idempotency keys.
public protocol EventHandler: Sendable {
    var name: String { get }
    /// How this handler's idempotency keys are made (``IdempotencyStrategy/automatic`` unless
    /// the handler says otherwise).
    var idempotency: IdempotencyStrategy { get }
    /// Whether this handler wants `event` (e.g. by topic family or type).
    func accepts(_ event: WorkerEvent) -> Bool
    /// Does the work. Returned side effects are recorded atomically with the completion of the
    /// event's idempotency key, so they are applied exactly once.
    func handle(_ event: WorkerEvent) async throws(HandlerFailure) -> [SideEffect]
    /// Called once the side effects `handle` returned are committed with their keys (only the
    /// effects of keys this worker still owned). Handlers that keep in-memory state derived
    /// from their effects apply them here, so memory follows the store exactly.
    func didCommit(_ effects: [SideEffect]) async
    /// Called with events skipped because their key was already completed — by this worker
    /// earlier, or by the member that owned the partition before a rebalance. Handlers whose
    /// in-memory state follows their effects catch up here (deduplicating what they hold).
    func didSkipDuplicates(_ events: [WorkerEvent]) async
    /// Called when this member's assignment changes, before any record of a newly assigned
    /// partition reaches ``handle(_:)``. A ``HandlerFailure/fatal(_:)`` pauses the worker
    /// (e.g. topics that must be co-partitioned are not); other failures are logged.
    func assignmentChanged(_ event: RebalanceEvent) async throws(HandlerFailure)
}

extension EventHandler {
    public var idempotency: IdempotencyStrategy { .automatic }
    public func didCommit(_ effects: [SideEffect]) async {}
    public func didSkipDuplicates(_ events: [WorkerEvent]) async {}
    public func assignmentChanged(_ event: RebalanceEvent) async throws(HandlerFailure) {}
}

/// Accepts everything and does nothing (measures the runtime itself).
public struct NoopHandler: EventHandler {
    public let name = "noop"
    public init() {}
    public func accepts(_ event: WorkerEvent) -> Bool { true }
    public func handle(_ event: WorkerEvent) async throws(HandlerFailure) -> [SideEffect] { [] }
}

/// Records each event it handles as a side effect
/// (`topic/partition/offset conversation run=<start>-<end>`, where start and end are ticks
/// of one process-wide counter taken as the handler began and finished, so a test can see
/// the order handlers really ran in). Bodies containing a marker fail on purpose (poison,
/// retryable, fatal): tests and demos.
public struct RecordHandler: EventHandler {
    public let name = "record"
    let options: RecordHandlerOptions
    private let poison: [UInt8]
    private let retryable: [UInt8]
    private let fatal: [UInt8]

    public init(options: RecordHandlerOptions) {
        self.options = options
        self.poison = Array(options.poisonMarker.utf8)
        self.retryable = Array(options.retryableMarker.utf8)
        self.fatal = Array(options.fatalMarker.utf8)
    }

    public func accepts(_ event: WorkerEvent) -> Bool { true }

    /// One tick per handler start and end, process-wide.
    private static let clock = Atomic<Int>(0)

    public func handle(_ event: WorkerEvent) async throws(HandlerFailure) -> [SideEffect] {
        let start = Self.clock.add(1, ordering: .sequentiallyConsistent).newValue
        if options.workMilliseconds > 0 {
            let ms = options.randomWork ? Int.random(in: 0...options.workMilliseconds) : options.workMilliseconds
            try? await Task.sleep(for: .milliseconds(ms))
        }
        let body = event.body
        if body.contains(subsequence: poison) { throw .poison("event marked as poison") }
        if body.contains(subsequence: retryable) { throw .retryable("event marked to fail") }
        if body.contains(subsequence: fatal) { throw .fatal("event marked fatal (simulated 401 from upstream)") }
        let r = event.record
        return [
            SideEffect(
                handler: name,
                dedupKey: event.dedupKey,
                payload: "\(r.topic)/\(r.partition)/\(r.offset) \(event.conversationID ?? "-") "
                    + "run=\(start)-\(Self.clock.add(1, ordering: .sequentiallyConsistent).newValue)"
            )
        ]
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        let first = needle[0]
        var i = 0
        while i <= count - needle.count {
            if self[i] == first && self[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}
