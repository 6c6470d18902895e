import IngestCore

/// How a queued interaction ended (`acdOutcome` of an `acd.end` detail event).
public enum ACDOutcome: String, Sendable {
    case answered = "ANSWERED"
    case abandoned = "ABANDON"
    case flowOut = "FLOW_OUT"
    case unknown = "UNKNOWN"
}

/// One queue wait, from an `acd.end` event (or an enriched record's `tAcd`).
public struct WaitObservation: Sendable, Equatable {
    public var queueID: String
    public var mediaType: String
    /// The event's own time (epoch ms): windows use it, not arrival time.
    public var eventTimeMilliseconds: Int64
    public var waitMilliseconds: Double
    public var outcome: ACDOutcome

    public init(
        queueID: String,
        mediaType: String,
        eventTimeMilliseconds: Int64,
        waitMilliseconds: Double,
        outcome: ACDOutcome
    ) {
        self.queueID = queueID
        self.mediaType = mediaType
        self.eventTimeMilliseconds = eventTimeMilliseconds
        self.waitMilliseconds = waitMilliseconds
        self.outcome = outcome
    }
}

/// Figures of one queue over a window or an interval.
public struct WaitStatistics: Sendable, Equatable {
    public var offered = 0
    public var answered = 0
    public var abandoned = 0
    public var flowedOut = 0
    /// Answered within the service-level threshold.
    public var answeredWithinThreshold = 0
    public var p50: Double?
    public var p90: Double?
    public var p95: Double?
    public var p99: Double?

    public var abandonRate: Double? { offered == 0 ? nil : Double(abandoned) / Double(offered) }
    /// Share of answered interactions answered within the threshold.
    public var serviceLevel: Double? { answered == 0 ? nil : Double(answeredWithinThreshold) / Double(answered) }
}

/// Wait-time aggregation per queue and media type by event time: sliding windows (default 5,
/// 15 and 60 minutes) and Genesys's 30-minute intervals, with allowed lateness.
///
/// State per queue is a handful of t-digest buckets: 1-minute buckets serve windows up to
/// 5 minutes, 5-minute buckets the longer ones (their edges move in 5-minute steps), so every
/// window stays within a fixed memory bound however many events arrive. A pure value type.
public struct QueueWaitAggregator: Sendable {
    public struct Configuration: Sendable {
        public var windowMinutes: [Int] = [5, 15, 60]
        public var intervalMinutes = 30
        /// Events at most this much older than the newest event time seen are still counted.
        public var allowedLatenessMilliseconds: Int64 = 120_000
        public var serviceLevelThresholdMilliseconds: Double = 20_000
        public var compression: Double = 50
        /// Waits a bucket keeps unmerged until it is sealed (no wait can reach it any more):
        /// up to this many per bucket, its percentiles depend only on which waits it holds,
        /// not on their order, so any number of instances report identical figures.
        public var bucketBufferLimit = 1000
        /// Queue/media pairs tracked at most (bounded metric cardinality).
        public var maxQueues = 2000

        public init() {}
    }

    public enum AddResult: Sendable, Equatable {
        case counted
        /// Older than the allowed lateness: not counted (reported as late).
        case late
        /// A new queue beyond `maxQueues`.
        case rejectedCardinality
    }

    public struct QueueKey: Hashable, Sendable {
        public var queueID: String
        public var mediaType: String

        public init(queueID: String, mediaType: String) {
            self.queueID = queueID
            self.mediaType = mediaType
        }
    }

    struct Bucket: Sendable {
        var digest: TDigest
        var stats = WaitStatistics()

        init(compression: Double, bufferLimit: Int = 1000) {
            digest = TDigest(compression: compression, bufferLimit: bufferLimit)
        }

        mutating func add(_ o: WaitObservation, threshold: Double) {
            stats.offered += 1
            switch o.outcome {
            case .answered:
                stats.answered += 1
                if o.waitMilliseconds <= threshold { stats.answeredWithinThreshold += 1 }
            case .abandoned: stats.abandoned += 1
            case .flowOut: stats.flowedOut += 1
            case .unknown: break
            }
            digest.add(o.waitMilliseconds)
        }
    }

    struct QueueState: Sendable {
        var minuteBuckets: [Int64: Bucket] = [:]
        /// Also the source of interval statistics (an interval is a run of 5-minute buckets).
        var fiveMinuteBuckets: [Int64: Bucket] = [:]
        /// Interval starts with data that have not been published yet.
        var openIntervals: Set<Int64> = []
    }

    public let configuration: Configuration
    private(set) var queues: [QueueKey: QueueState] = [:]
    /// The newest event time seen (epoch ms).
    public private(set) var newestEventTime: Int64 = 0
    public private(set) var lateEvents = 0

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    public var queueKeys: [QueueKey] { Array(queues.keys) }

    public mutating func add(_ o: WaitObservation) -> AddResult {
        if newestEventTime > 0 && o.eventTimeMilliseconds < newestEventTime - configuration.allowedLatenessMilliseconds
        {
            lateEvents += 1
            return .late
        }
        let key = QueueKey(queueID: o.queueID, mediaType: o.mediaType)
        if queues[key] == nil && queues.count >= configuration.maxQueues { return .rejectedCardinality }
        newestEventTime = max(newestEventTime, o.eventTimeMilliseconds)
        let t = o.eventTimeMilliseconds
        let threshold = configuration.serviceLevelThresholdMilliseconds
        let c = configuration.compression
        let limit = configuration.bucketBufferLimit
        let interval = Self.floor(t, Int64(configuration.intervalMinutes) * 60_000)
        // Mutate in place: copying the state out and back would copy its bucket dictionaries.
        Self.update(&queues[key, default: QueueState()]) { state in
            state.minuteBuckets[Self.floor(t, 60_000), default: Bucket(compression: c, bufferLimit: limit)].add(
                o,
                threshold: threshold
            )
            state.fiveMinuteBuckets[Self.floor(t, 300_000), default: Bucket(compression: c, bufferLimit: limit)].add(
                o,
                threshold: threshold
            )
            state.openIntervals.insert(interval)
        }
        if newestEventTime - lastSeal >= 60_000 { seal() }
        return .counted
    }

    private var lastSeal: Int64 = 0

    /// Compresses the buckets no wait can reach any more (their end plus the allowed lateness
    /// has passed), freeing their buffers. Figures do not change: windows merge every bucket
    /// in its canonical form.
    private mutating func seal() {
        lastSeal = newestEventTime
        let horizon = newestEventTime - configuration.allowedLatenessMilliseconds
        for key in Array(queues.keys) {
            Self.update(&queues[key]!) { state in
                for (start, _) in state.minuteBuckets where start + 60_000 <= horizon {
                    state.minuteBuckets[start]!.digest.compress()
                }
                for (start, _) in state.fiveMinuteBuckets where start + 300_000 <= horizon {
                    state.fiveMinuteBuckets[start]!.digest.compress()
                }
            }
        }
    }

    @inline(__always) private static func update(_ state: inout QueueState, _ body: (inout QueueState) -> Void) {
        body(&state)
    }

    /// Statistics of the window of `minutes` ending at `endMilliseconds` (default: the newest event time).
    public mutating func window(
        _ key: QueueKey,
        minutes: Int,
        endingAt endMilliseconds: Int64? = nil
    ) -> WaitStatistics? {
        guard let state = queues[key] else { return nil }
        let end = endMilliseconds ?? newestEventTime
        let fine = minutes <= 5
        let size: Int64 = fine ? 60_000 : 300_000
        let buckets = fine ? state.minuteBuckets : state.fiveMinuteBuckets
        let start = Self.floor(end, size) - Int64(minutes) * 60_000 + size
        return statistics(of: buckets, from: start, before: end + 1)
    }

    /// Statistics of the interval (e.g. 30 minutes) that starts at `startMilliseconds`.
    public mutating func interval(_ key: QueueKey, startingAt startMilliseconds: Int64) -> WaitStatistics? {
        guard let state = queues[key], state.openIntervals.contains(startMilliseconds) else { return nil }
        let end = startMilliseconds + Int64(configuration.intervalMinutes) * 60_000
        return statistics(of: state.fiveMinuteBuckets, from: startMilliseconds, before: end)
    }

    /// Merged statistics of the buckets starting in `from ..< before`.
    private func statistics(of buckets: [Int64: Bucket], from start: Int64, before end: Int64) -> WaitStatistics {
        var merged = Bucket(compression: configuration.compression)
        // In time order: the merged sketch (and so each percentile) does not depend on the
        // dictionary's iteration order, so a rebuilt aggregator reports the same figures.
        for (bucketStart, bucket) in buckets.sorted(by: { $0.key < $1.key })
        where bucketStart >= start && bucketStart < end {
            merged.stats.offered += bucket.stats.offered
            merged.stats.answered += bucket.stats.answered
            merged.stats.abandoned += bucket.stats.abandoned
            merged.stats.flowedOut += bucket.stats.flowedOut
            merged.stats.answeredWithinThreshold += bucket.stats.answeredWithinThreshold
            merged.digest.merge(bucket.digest)
        }
        return Self.finish(&merged)
    }

    /// Intervals whose end plus the allowed lateness has passed: complete, ready to publish.
    public func closedIntervals() -> [(QueueKey, Int64)] {
        let length = Int64(configuration.intervalMinutes) * 60_000
        var out: [(QueueKey, Int64)] = []
        for (key, state) in queues {
            for start in state.openIntervals
            where start + length + configuration.allowedLatenessMilliseconds <= newestEventTime {
                out.append((key, start))
            }
        }
        return out.sorted { $0.1 < $1.1 }
    }

    /// Forgets `keys` entirely (queues this instance no longer owns).
    public mutating func remove(_ keys: some Sequence<QueueKey>) {
        for key in keys { queues[key] = nil }
    }

    /// Drops buckets no window can reach any more and intervals already published; returns the
    /// queues left without any data (they are forgotten, freeing their place under `maxQueues`).
    @discardableResult
    public mutating func evict(publishedIntervals: [(QueueKey, Int64)] = []) -> [QueueKey] {
        // Five-minute buckets serve the longest window and any interval not yet published.
        let longest = Int64(configuration.windowMinutes.max() ?? 60) * 60_000
        var horizon = newestEventTime - longest - configuration.allowedLatenessMilliseconds - 300_000
        for (key, start) in publishedIntervals { queues[key]?.openIntervals.remove(start) }
        for state in queues.values { if let oldest = state.openIntervals.min() { horizon = min(horizon, oldest) } }
        let minuteHorizon = newestEventTime - 6 * 60_000 - configuration.allowedLatenessMilliseconds
        for key in Array(queues.keys) {
            guard var state = queues[key] else { continue }
            state.minuteBuckets = state.minuteBuckets.filter { $0.key >= minuteHorizon }
            state.fiveMinuteBuckets = state.fiveMinuteBuckets.filter { $0.key >= horizon }
            queues[key] = state
        }
        let quiet = queues.filter {
            $0.value.minuteBuckets.isEmpty && $0.value.fiveMinuteBuckets.isEmpty && $0.value.openIntervals.isEmpty
        }.map(\.key)
        for key in quiet { queues[key] = nil }
        return quiet
    }

    /// Sketch bytes held for `key` by the buckets a window of `minutes` reads.
    public func stateBytes(_ key: QueueKey, minutes: Int) -> Int {
        guard let state = queues[key] else { return 0 }
        let fine = minutes <= 5
        let size: Int64 = fine ? 60_000 : 300_000
        let start = Self.floor(newestEventTime, size) - Int64(minutes) * 60_000 + size
        return (fine ? state.minuteBuckets : state.fiveMinuteBuckets).filter { $0.key >= start }.values
            .reduce(0) { $0 + $1.digest.stateBytes }
    }

    private static func finish(_ bucket: inout Bucket) -> WaitStatistics {
        var stats = bucket.stats
        stats.p50 = bucket.digest.quantile(0.5)
        stats.p90 = bucket.digest.quantile(0.9)
        stats.p95 = bucket.digest.quantile(0.95)
        stats.p99 = bucket.digest.quantile(0.99)
        return stats
    }

    @inline(__always) static func floor(_ t: Int64, _ size: Int64) -> Int64 { t - ((t % size) + size) % size }
}

extension WaitObservation {
    /// A compact, tab-separated form (queue, media, event time, wait, outcome): the analytics
    /// handler records it as a side effect, and the aggregator is rebuilt from it on start.
    public var encoded: String {
        "\(queueID)\t\(mediaType)\t\(eventTimeMilliseconds)\t\(waitMilliseconds)\t\(outcome.rawValue)"
    }

    public init?(encoded: String) {
        let f = encoded.split(separator: "\t", omittingEmptySubsequences: false)
        guard f.count == 5, let t = Int64(f[2]), let w = Double(f[3]), let o = ACDOutcome(rawValue: String(f[4]))
        else { return nil }
        self.init(
            queueID: String(f[0]),
            mediaType: String(f[1]),
            eventTimeMilliseconds: t,
            waitMilliseconds: w,
            outcome: o
        )
    }
}

extension QueueWaitAggregator {
    /// Interval starts with data not yet published for `key`.
    public func openIntervals(_ key: QueueKey) -> [Int64] {
        (queues[key]?.openIntervals).map { $0.sorted() } ?? []
    }
}
