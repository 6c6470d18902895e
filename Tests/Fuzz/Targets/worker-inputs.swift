import Foundation
import IngestCore

/// The analytics worker's input parsers (acd.end, enriched records, wait records, queue
/// observation notifications) and the reconcile handler's rebuilding of detail events from
/// conversation details, over arbitrary bytes: a parse error is fine, a trap is not; parsed
/// numbers are finite; a rebuilt event has a composite identity and is an acd.end the
/// analytics input reads.
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
    if let details = try? JSONValue.parse(Data(input)) {
        for e in MissedDetailEvents.events(in: details, window: Int64.min...Int64.max) {
            let body = Array(e.message.jsonData)
            let key = try? DedupKey.derive(from: body, digest: { _ in "" }).key
            check(key?.hasPrefix("conv:") == true, "a rebuilt event without its composite identity")
            if e.topicName.hasSuffix(".acd.end") {
                check((try? AnalyticsInput.acdEnd(body)) != nil, "a rebuilt acd.end the analytics input refuses")
            }
        }
    }
    return 0
}
