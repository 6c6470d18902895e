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

    /// RFC 3339 / ISO-8601 internet date-time (`2024-12-30T10:00:00Z`, fractional seconds and
    /// `±hh:mm` offsets allowed) → epoch milliseconds; nil for anything else.
    ///
    /// Parsed here, digit by digit with every field range-checked, not by Foundation's
    /// ISO8601DateFormatter: ICU's date parser crashed the process (a division by zero, found
    /// by fuzzing `worker-inputs`) on a malformed timestamp from the wire.
    public static func isoMilliseconds(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        var i = 0
        func number(_ digits: Int) -> Int? {
            guard i + digits <= b.count else { return nil }
            var v = 0
            for _ in 0..<digits {
                guard b[i] >= 48 && b[i] <= 57 else { return nil }
                v = v * 10 + Int(b[i] - 48)
                i += 1
            }
            return v
        }
        func expect(_ c: UInt8...) -> Bool {
            guard i < b.count, c.contains(b[i]) else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect(45), let month = number(2), expect(45), let day = number(2),
            expect(84, 116), let hour = number(2), expect(58), let minute = number(2), expect(58),
            let second = number(2)
        else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(month), (1...monthDays[month - 1]).contains(day), hour <= 23, minute <= 59,
            second <= 60
        else { return nil }
        var millis = 0
        if i < b.count && b[i] == 46 {  // '.'
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 48 && b[i] <= 57 {
                if digits < 3 { millis = millis * 10 + Int(b[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            if digits < 3 { for _ in digits..<3 { millis *= 10 } }
        }
        var offsetMinutes = 0
        guard i < b.count else { return nil }
        if b[i] == 90 || b[i] == 122 {  // 'Z' / 'z'
            i += 1
        } else if b[i] == 43 || b[i] == 45 {  // '+' / '-'
            let sign = b[i] == 45 ? -1 : 1
            i += 1
            guard let oh = number(2), expect(58), let om = number(2), oh <= 23, om <= 59 else { return nil }
            offsetMinutes = sign * (oh * 60 + om)
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let seconds = ((days * 24 + hour) * 60 + minute) * 60 + second - offsetMinutes * 60
        return epochMilliseconds(Double(seconds) * 1000 + Double(millis))
    }

    /// Epoch milliseconds → `yyyy-MM-ddTHH:mm:ss.SSSZ` (UTC), the inverse of
    /// ``isoMilliseconds(_:)`` for the range ``epochMilliseconds(_:)`` allows (clamped to it).
    /// Exact to the millisecond (no floating point), so a time written and read back is equal.
    public static func isoString(milliseconds: Int64) -> String {
        let ms = min(max(milliseconds, 0), 253_402_300_799_999)
        let seconds = Int(ms / 1000)
        // H. Hinnant's civil_from_days.
        let z = seconds / 86_400 + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let t = seconds % 86_400
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(t / 3600, 2)):\(pad(t / 60 % 60, 2)):"
            + "\(pad(t % 60, 2)).\(pad(Int(ms % 1000), 3))Z"
    }
}
