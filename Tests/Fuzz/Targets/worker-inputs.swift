import IngestCore

/// The analytics worker's input parsers (acd.end, enriched records, wait records, queue
/// observation notifications) over arbitrary bytes: a parse error is fine, a trap is not; parsed numbers
/// are finite.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    if let wait = try? AnalyticsInput.acdEnd(input) {
        check(WaitObservation(encoded: wait.encoded) == wait, "a wait does not survive its store encoding")
    }
    _ = WaitObservation(encoded: String(decoding: input, as: UTF8.self))
    // The waits topic's records (written by the waits stage, read by the aggregation stage).
    if let wait = try? AnalyticsInput.wait(input) {
        check((try? AnalyticsInput.wait(WaitRecord.value(wait))) == wait, "a wait record does not round-trip")
    }
    if let waits = try? AnalyticsInput.enriched(input) { for w in waits { _ = w.encoded } }
    if let o = try? AnalyticsInput.observations(input) {
        for v in [o.waiting, o.interacting, o.onQueueUsers, o.longestWaitingSeconds] {
            if let v { check(v.isFinite, "non-finite observation") }
        }
    }
    return 0
}
