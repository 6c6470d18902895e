import Foundation
import IngestCore

/// What the analytics workers published about the queues (`genesys.queue.metrics`: one running
/// summary per queue, media type and 30-minute interval, `final: true` once the interval
/// closed), folded to the newest record of each interval — the queue pages' data. A pure value
/// type: records in, figures out.
struct QueueSummaries {
    struct Interval: Equatable {
        var queueID: String
        var mediaType: String
        /// Epoch ms of the interval's start (the part of `interval` before the `/`).
        var start: Int64
        var final: Bool
        var offered: Int
        var answered: Int
        var abandoned: Int
        var abandonRate: Double?
        var serviceLevel: Double?
        /// p50, p90, p95, p99 in milliseconds.
        var waits: [String: Int]
    }

    /// Queue id → media type → interval start → the newest summary.
    private(set) var byQueue: [String: [String: [Int64: Interval]]] = [:]
    /// Bounded: at most this many intervals kept per queue and media type (the newest).
    var keepIntervals = 96

    /// Takes one record's value; malformed ones are ignored (every number is checked).
    mutating func add(_ value: [UInt8]) {
        guard let v = try? JSONValue.parse(Data(value)), let queue = v["queueId"]?.stringValue, !queue.isEmpty,
            queue.count <= 200, let interval = v["interval"]?.stringValue,
            let startText = interval.split(separator: "/").first,
            let start = EventFields.isoMilliseconds(String(startText))
        else { return }
        func count(_ k: String) -> Int {
            guard let n = v[k]?.numberValue, n.isFinite, n >= 0, n <= 1e12 else { return 0 }
            return Int(n)
        }
        func rate(_ k: String) -> Double? {
            guard let n = v[k]?.numberValue, n.isFinite, n >= 0, n <= 1 else { return nil }
            return n
        }
        var waits: [String: Int] = [:]
        for (k, w) in v["waitMs"]?.objectValue ?? [:] {
            if let n = w.numberValue, n.isFinite, n >= 0, n <= 1e12 { waits[k] = Int(n) }
        }
        let media = v["mediaType"]?.stringValue ?? "unknown"
        let entry = Interval(
            queueID: queue,
            mediaType: media,
            start: start,
            final: v["final"] == .bool(true),
            offered: count("offered"),
            answered: count("answered"),
            abandoned: count("abandoned"),
            abandonRate: rate("abandonRate"),
            serviceLevel: rate("serviceLevel"),
            waits: waits
        )
        var intervals = byQueue[queue, default: [:]][media, default: [:]]
        // A final summary is never replaced by a late running one.
        if let known = intervals[start], known.final && !entry.final { return }
        intervals[start] = entry
        if intervals.count > keepIntervals, let oldest = intervals.keys.min() { intervals[oldest] = nil }
        byQueue[queue, default: [:]][media] = intervals
    }

    /// The newest interval of each queue and media type, by queue id.
    var latest: [Interval] {
        byQueue.values.flatMap { $0.values.compactMap { $0.values.max { $0.start < $1.start } } }
            .sorted { ($0.queueID, $0.mediaType) < ($1.queueID, $1.mediaType) }
    }

    /// One queue's intervals, oldest first, per media type.
    func history(_ queueID: String) -> [String: [Interval]] {
        (byQueue[queueID] ?? [:]).mapValues { $0.values.sorted { $0.start < $1.start } }
    }
}

extension HTML {
    /// A small line chart (server-side SVG) of `points` (x: index, y: value), with its maximum
    /// named; nil values leave a gap.
    static func lineChart(_ points: [Double?], label: String, width: Int = 480, height: Int = 80) -> String {
        let top = max(1, points.compactMap { $0 }.max() ?? 1)
        let step = points.count > 1 ? Double(width - 4) / Double(points.count - 1) : 0
        var path = ""
        var pen = false
        for (i, p) in points.enumerated() {
            guard let p else {
                pen = false
                continue
            }
            let x = 2 + Double(i) * step
            let y = Double(height - 2) - p / top * Double(height - 4)
            path += String(format: "%@%.1f %.1f ", pen ? "L" : "M", x, y)
            pen = true
        }
        return
            "<svg role=\"img\" aria-label=\"\(escape(label))\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\"><rect width=\"\(width)\" height=\"\(height)\" fill=\"#fff\" stroke=\"#e3e6eb\"/><path d=\"\(path)\" fill=\"none\" stroke=\"#4f7bd9\" stroke-width=\"2\"/><text x=\"4\" y=\"12\" font-size=\"10\" fill=\"#6b7280\">\(escape(label)) · max \(String(format: "%.0f", top))</text></svg>"
    }
}

/// What the analytics and overflow workers keep in the shared store about a queue: the
/// alerts firing (documents `analytics-alert`, body `firing|resolved<TAB>rule<TAB>queue<TAB>media`)
/// and the overflow controller's state (document `overflow`, key the queue id, a JSON
/// `OverflowActivation`). Read as the stored text: the console imports no feature.
struct QueueStates {
    struct Alert: Equatable {
        var rule: String
        var queueID: String
        var mediaType: String
    }

    struct Overflow: Equatable {
        var state: String
        var since: Int64?
        var lastOutcome: String?
        var lastEndedAt: Int64?
        var addedMembers: Int
    }

    var firing: [Alert] = []
    var overflow: [String: Overflow] = [:]

    static let alertKind = "analytics-alert"
    static let overflowKind = "overflow"

    static func alert(_ body: String) -> Alert? {
        let f = body.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        guard f.count == 4, f[0] == "firing" else { return nil }
        return Alert(rule: f[1], queueID: f[2], mediaType: f[3])
    }

    static func overflow(_ body: String) -> (queueID: String, Overflow)? {
        guard let v = try? JSONValue.parse(Data(body.utf8)), let queue = v["queueID"]?.stringValue,
            let state = v["state"]?.stringValue
        else { return nil }
        func ms(_ x: JSONValue?) -> Int64? {
            guard let n = x?.numberValue else { return nil }
            return EventFields.epochMilliseconds(n)
        }
        let last = v["lastActivation"]
        return (
            queue,
            Overflow(
                state: state,
                since: ms(v["stateSince"]),
                lastOutcome: last?["outcome"]?.stringValue,
                lastEndedAt: ms(last?["endedAt"]),
                addedMembers: last?["addedMembers"]?.elements.count ?? 0
            )
        )
    }

    /// Reads both kinds of documents from `store`.
    static func read(_ store: any DocumentStore) throws -> QueueStates {
        let (alerts, overflows) = try blocking {
            (try await store.documents(kind: alertKind), try await store.documents(kind: overflowKind))
        }
        var out = QueueStates()
        out.firing = alerts.compactMap { alert($0.body) }.sorted { ($0.queueID, $0.rule) < ($1.queueID, $1.rule) }
        for d in overflows { if let (q, o) = overflow(d.body) { out.overflow[q] = o } }
        return out
    }
}
