import Testing

@testable import IngestCore

@Suite("Numbers from response headers")
struct ResponseHeaderNumberTests {
    /// A hostile Retry-After must neither trap (`Duration.seconds(.nan)`) nor stall a worker.
    @Test func retryAfterIsFiniteAndNonNegativeOrNil() {
        #expect(ResponseHeaderNumbers.retryAfterSeconds("3") == 3)
        #expect(ResponseHeaderNumbers.retryAfterSeconds(" 1.5 ") == 1.5)
        #expect(ResponseHeaderNumbers.retryAfterSeconds("0") == 0)
        for bad in [
            nil, "", "nan", "NaN", "inf", "-inf", "infinity", "-1", "1e400", "1e3", "0x10",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            String(repeating: "9", count: 400), "3 4", "1..2",
        ] {
            #expect(ResponseHeaderNumbers.retryAfterSeconds(bad) == nil, "\(bad ?? "nil")")
        }
        #expect(ResponseHeaderNumbers.count("300") == 300)
        for bad in ["-1", "1.5", "99999999999999999999", "", "x"] {
            #expect(ResponseHeaderNumbers.count(bad) == nil, "\(bad)")
        }
    }
}
