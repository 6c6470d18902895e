import Foundation
import Testing

@testable import IngestCore

@Suite("Event fields: timestamps from the wire")
struct EventFieldsTests {
    @Test func isoStringsRoundTripToTheMillisecond() {
        #expect(EventFields.isoString(milliseconds: 0) == "1970-01-01T00:00:00.000Z")
        #expect(EventFields.isoString(milliseconds: 1_735_552_800_500) == "2024-12-30T10:00:00.500Z")
        #expect(EventFields.isoString(milliseconds: 951_782_400_001) == "2000-02-29T00:00:00.001Z")
        #expect(EventFields.isoString(milliseconds: 253_402_300_799_999) == "9999-12-31T23:59:59.999Z")
        #expect(EventFields.isoString(milliseconds: -5) == "1970-01-01T00:00:00.000Z", "clamped, never a trap")
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let ms = Int64.random(in: 0...253_402_300_799_999, using: &generator)
            #expect(EventFields.isoMilliseconds(EventFields.isoString(milliseconds: ms)) == ms)
        }
    }

    @Test func internetDateTimesBecomeEpochMilliseconds() {
        #expect(EventFields.isoMilliseconds("1970-01-01T00:00:00Z") == 0)
        #expect(EventFields.isoMilliseconds("2024-12-30T10:00:00.000Z") == 1_735_552_800_000)
        #expect(EventFields.isoMilliseconds("2024-12-30T10:00:00.5Z") == 1_735_552_800_500)
        #expect(EventFields.isoMilliseconds("2024-12-30T10:00:00.123456Z") == 1_735_552_800_123)
        // Any number of fraction digits (RFC 3339); milliseconds are its first three.
        #expect(
            EventFields.isoMilliseconds("2024-12-30T10:00:00." + String(repeating: "9", count: 500) + "Z")
                == 1_735_552_800_999
        )
        #expect(EventFields.isoMilliseconds("2024-12-30T11:30:00+01:30") == 1_735_552_800_000)
        #expect(EventFields.isoMilliseconds("2024-02-29T00:00:00Z") == 1_709_164_800_000)
        // The same instants as Foundation computes them, across years and offsets.
        let f = ISO8601DateFormatter()
        for t in ["2022-04-06T09:30:45Z", "2000-03-01T00:00:00Z", "1999-12-31T23:59:59-05:00", "2038-01-19T03:14:08Z"] {
            #expect(EventFields.isoMilliseconds(t) == f.date(from: t).map { Int64($0.timeIntervalSince1970 * 1000) })
        }
    }

    /// Malformed timestamps are nil — never a crash (ICU's parser divided by zero on one the
    /// worker-inputs fuzz target made).
    @Test func malformedTimestampsAreNil() {
        for t in [
            "", "2024", "2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2024-12-30T24:00:00Z",
            "2024-12-30T10:00:00", "2024-12-30 10:00:00Z", "2024-12-30T10:00:00.Z", "2024-12-30T10:00:00Zjunk",
            "2024-12-30T10:00:00+25:00", "1969-12-31T23:59:59Z", "２０２４-12-30T10:00:00Z",
            String(repeating: "9", count: 400) + "-01-01T00:00:00Z",
        ] {
            #expect(EventFields.isoMilliseconds(t) == nil, "\(t.prefix(40))")
        }
    }
}
