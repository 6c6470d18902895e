import IngestCore

/// InfluxDB line protocol (also accepted by VictoriaMetrics' `/write`):
/// `measurement,tag=value field=1.5,count=3i 1700000000000` (time in ms: write with `precision=ms`).
public enum InfluxLineProtocol {
    public enum FieldValue: Sendable, Equatable {
        case double(Double)
        case integer(Int)
    }

    /// One point; tags and fields keep their given order. Non-finite doubles are left out
    /// (the protocol has no NaN); a point left without fields is `nil`.
    public static func line(
        measurement: String,
        tags: [(String, String)],
        fields: [(String, FieldValue)],
        timeMilliseconds: Int64
    ) -> String? {
        var out = escape(measurement, extra: [",", " "])
        for (k, v) in tags where !v.isEmpty {
            out += "," + escape(k, extra: [",", "=", " "]) + "=" + escape(v, extra: [",", "=", " "])
        }
        var parts: [String] = []
        for (k, v) in fields {
            switch v {
            case .double(let d) where d.isFinite: parts.append(escape(k, extra: [",", "=", " "]) + "=" + "\(d)")
            case .double: continue
            case .integer(let i): parts.append(escape(k, extra: [",", "=", " "]) + "=\(i)i")
            }
        }
        guard !parts.isEmpty else { return nil }
        return out + " " + parts.joined(separator: ",") + " \(timeMilliseconds)"
    }

    private static func escape(_ s: String, extra: Set<Character>) -> String {
        var out = ""
        for c in s {
            if c == "\n" || c == "\r" { continue }
            if extra.contains(c) || c == "\\" { out.append("\\") }
            out.append(c)
        }
        return out
    }
}
