#if canImport(Glibc)
import Glibc
#endif

/// Wall-clock time as the product stores it everywhere: Unix epoch milliseconds (event times,
/// leases, claims, retention). The one place "now in milliseconds" is computed.
public enum WallClock {
    /// Now, in epoch milliseconds.
    public static func nowMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
