import Foundation

/// Read-only look at a spool directory (`ingestctl spool stats|verify|export`): safe on a
/// spool a gateway is using, or on a disk taken from a dead host. Changes nothing.
public enum SpoolInspector {
    public struct Segment: Sendable, Equatable {
        public var name: String
        public var bytes: Int
        public var records: Int
        public var firstSequence: UInt64?
        public var lastSequence: UInt64?
        /// Bytes that are not whole, valid records (corruption, or a torn tail).
        public var badBytes: Int
    }

    public struct Report: Sendable, Equatable {
        public var segments: [Segment]
        /// Everything up to this sequence was acknowledged by Kafka.
        public var acknowledgedSequence: UInt64
        public var pendingRecords: Int
        public var quarantined: [String]

        public var badBytes: Int { segments.reduce(0) { $0 + $1.badBytes } }
    }

    /// Scans every segment; `visit` sees each readable record not yet acknowledged, in order.
    public static func scan(directory dir: String, visit: (SpoolRecord) -> Void = { _ in }) -> Report {
        let acknowledged = SpoolLog.readCheckpoint(dir)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix("segment-") && $0.hasSuffix(".spool") }.sorted()
        var segments: [Segment] = []
        var pending = 0
        for name in names {
            let bytes = SpoolLog.readFile(dir + "/" + name) ?? []
            var s = Segment(name: name, bytes: bytes.count, records: 0, badBytes: 0)
            bytes.withUnsafeBytes { all in
                var offset = 0
                while offset < all.count {
                    switch SpoolFrame.decode(UnsafeRawBufferPointer(rebasing: all[offset...])) {
                    case .record(let r, let size):
                        s.records += 1
                        if s.firstSequence == nil { s.firstSequence = r.sequence }
                        s.lastSequence = r.sequence
                        if r.sequence > acknowledged {
                            pending += 1
                            visit(r)
                        }
                        offset += size
                    case .incomplete, .corrupt:
                        s.badBytes += 1
                        offset += 1
                    }
                }
            }
            segments.append(s)
        }
        let quarantined = ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/quarantine")) ?? []).sorted()
        return Report(
            segments: segments,
            acknowledgedSequence: acknowledged,
            pendingRecords: pending,
            quarantined: quarantined
        )
    }

    /// One record as a JSON line: value as UTF-8 text when it is, base64 otherwise.
    public static func jsonLine(_ r: SpoolRecord) -> String {
        var object: [String: Any] = ["sequence": r.sequence, "topic": r.topic]
        if let key = r.key { object["key"] = String(decoding: key, as: UTF8.self) }
        var headers: [[String: String]] = []
        for h in r.headers { headers.append(["name": h.name, "value": String(decoding: h.value, as: UTF8.self)]) }
        object["headers"] = headers
        if let text = String(validating: r.value, as: UTF8.self) {
            object["value"] = text
        } else {
            object["valueBase64"] = Data(r.value).base64EncodedString()
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
