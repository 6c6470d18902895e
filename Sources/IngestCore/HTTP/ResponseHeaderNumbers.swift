/// Numbers that outbound clients read from response headers. Every one is checked: a
/// hostile or broken server (or proxy) must not be able to stall a worker forever or trap it
/// (`Duration.seconds(.nan)` traps; `+inf` would pause a rate budget for good).
public enum ResponseHeaderNumbers {
    /// `Retry-After` as delta-seconds (RFC 9110 §10.2.3): a finite, non-negative number.
    /// Nil when absent or unusable (negative, NaN, infinite, an HTTP-date, garbage); callers
    /// then use their default. Callers cap the value themselves.
    public static func retryAfterSeconds(_ value: String?) -> Double? {
        guard let text = value?.trimmingASCIIWhitespace(), !text.isEmpty, text.utf8.count <= 32,
            text.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == 46 }),
            let seconds = Double(text), seconds.isFinite, seconds >= 0
        else { return nil }
        return seconds
    }

    /// A non-negative integer header such as `inin-ratelimit-count` (at most 18 digits).
    public static func count(_ value: String?) -> Int? {
        guard let text = value?.trimmingASCIIWhitespace(), !text.isEmpty, text.utf8.count <= 18,
            text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 })
        else { return nil }
        return Int(text)
    }
}
