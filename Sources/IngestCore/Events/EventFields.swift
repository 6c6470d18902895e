import Foundation

/// Reading fields of Genesys event payloads decoded with `JSONSerialization`: every number
/// from the wire is checked before it is converted (`Int64(1e300)` traps).
public enum EventFields {
    /// The body as a JSON object, or nil.
    public static func object(_ body: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }

    /// A finite number, or nil.
    public static func number(_ value: Any?) -> Double? {
        guard let d = (value as? NSNumber)?.doubleValue else { return nil }
        return d.isFinite ? d : nil
    }

    /// A media type in lower case (`unknown` when absent).
    public static func mediaType(_ value: Any?) -> String {
        guard let s = value as? String, !s.isEmpty else { return "unknown" }
        return s.lowercased()
    }

    /// Epoch milliseconds from 1970 to the end of year 9999, as Int64; nil outside.
    public static func epochMilliseconds(_ value: Double) -> Int64? {
        guard value.isFinite, value >= 0, value <= 253_402_300_799_999 else { return nil }
        return Int64(value.rounded())
    }

    /// ISO-8601 with or without fractional seconds → epoch milliseconds.
    public static func isoMilliseconds(_ text: String) -> Int64? {
        guard !text.isEmpty else { return nil }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: text) { return epochMilliseconds(d.timeIntervalSince1970 * 1000) }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: text).flatMap { epochMilliseconds($0.timeIntervalSince1970 * 1000) }
    }
}
