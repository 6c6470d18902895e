import Foundation
import IngestCore

/// Which dead letters a page, a count or a redrive plan is about: every filter the console
/// offers, matched against one record at a time (a pure value type, tested without Kafka).
public struct DeadLetterQuery: Sendable, Equatable {
    /// Origin or dead-letter topics; empty = every raw topic's `.dlq`.
    public var topics: [String] = []
    public var errorClass: String?
    public var handler: String?
    /// A substring of the error message (case-insensitive).
    public var errorText: String?
    public var conversationID: String?
    public var queueID: String?
    /// Dead-lettered at or after / before (epoch ms; the last failure's time).
    public var since: Int64?
    public var until: Int64?
    /// `name=value`: a header with exactly this value.
    public var header: (name: String, value: String)?
    /// `a.b.c=value`: the value's JSON at this path equals `value` (a string, or a number's text).
    public var jsonPath: (path: [String], value: String)?

    public init() {}

    public static func == (a: DeadLetterQuery, b: DeadLetterQuery) -> Bool {
        a.parameters.map { "\($0.0)=\($0.1)" } == b.parameters.map { "\($0.0)=\($0.1)" }
    }

    /// The dead-letter topics to read.
    public func dlqTopics(naming: TopicNaming) -> [String] {
        let base = topics.isEmpty ? naming.allTopics : topics
        return base.map { $0.hasSuffix(".dlq") ? $0 : $0 + ".dlq" }
    }

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// From a query string or form: `topic` (comma-separated), `class`, `handler`, `text`,
    /// `conversation`, `queue`, `since`, `until` (ISO 8601 or epoch ms), `header` (name=value),
    /// `path` (a.b=value). Empty values are no filter.
    public static func parse(_ p: [String: String]) throws(Invalid) -> DeadLetterQuery {
        func value(_ k: String) -> String? {
            guard let v = p[k]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        func time(_ k: String) throws(Invalid) -> Int64? {
            guard let v = value(k) else { return nil }
            if let ms = Int64(v), ms >= 0 { return ms }
            guard let ms = EventFields.isoMilliseconds(v) else {
                throw Invalid(description: "\(k) '\(v)' is not ISO 8601 (2026-01-01T10:00:00Z) or epoch milliseconds")
            }
            return ms
        }
        var q = DeadLetterQuery()
        q.topics =
            value("topic")?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty } ?? []
        q.errorClass = value("class")
        q.handler = value("handler")
        q.errorText = value("text")
        q.conversationID = value("conversation")
        q.queueID = value("queue")
        q.since = try time("since")
        q.until = try time("until")
        if let h = value("header") {
            let kv = h.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, !kv[0].isEmpty else { throw Invalid(description: "header must be name=value") }
            q.header = (String(kv[0]), String(kv[1]))
        }
        if let j = value("path") {
            let kv = j.split(separator: "=", maxSplits: 1)
            let path = kv.first?.split(separator: ".").map(String.init) ?? []
            guard kv.count == 2, !path.isEmpty else { throw Invalid(description: "path must be a.b.c=value") }
            q.jsonPath = (path, String(kv[1]))
        }
        return q
    }

    /// The query as parameters again (for links and hidden form fields).
    public var parameters: [(String, String)] {
        var out: [(String, String)] = []
        if !topics.isEmpty { out.append(("topic", topics.joined(separator: ","))) }
        for (k, v) in [
            ("class", errorClass), ("handler", handler), ("text", errorText), ("conversation", conversationID),
            ("queue", queueID), ("since", since.map(String.init)), ("until", until.map(String.init)),
            ("header", header.map { "\($0.name)=\($0.value)" }),
            ("path", jsonPath.map { $0.path.joined(separator: ".") + "=" + $0.value }),
        ] {
            if let v { out.append((k, v)) }
        }
        return out
    }

    /// The string (or number's text) at `path` in a JSON value; nil when absent or not JSON.
    static func value(at path: [String], in bytes: [UInt8]) -> String? {
        guard var node = try? JSONValue.parse(Data(bytes)) else { return nil }
        for key in path {
            if let o = node.objectValue, let next = o[key] {
                node = next
            } else if let a = node.arrayValue, let i = Int(key), a.indices.contains(i) {
                node = a[i]
            } else {
                return nil
            }
        }
        switch node {
        case .string(let s): return s
        case .number(let n): return n.rounded() == n && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        case .bool(let b): return String(b)
        default: return nil
        }
    }
}

/// The dead letters' positions: `topic/partition@offset`.
public struct RecordPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public var offset: Int64

    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    public var description: String { "\(topic)/\(partition)@\(offset)" }

    public static func < (a: RecordPosition, b: RecordPosition) -> Bool {
        (a.topic, a.partition, a.offset) < (b.topic, b.partition, b.offset)
    }
}
