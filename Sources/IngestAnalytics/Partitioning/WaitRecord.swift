import IngestCore

/// A record of the waits topic: one queue wait, keyed by queue id, so that every wait of a
/// queue lands in the one partition (and the one instance) that owns the queue.
///
/// Its ``IngestHeader/producedEventID`` is derived from the source event's idempotency key
/// and the wait's index in it, so a source event handled twice (a crash between producing
/// and committing) produces the same ids, and the aggregation stage counts each once.
public enum WaitRecord {
    public static func eventID(sourceKey: String, index: Int) -> String { "wait:\(sourceKey)#\(index)" }

    public static func value(_ o: WaitObservation) -> [UInt8] {
        let text =
            "{\"queueId\":\(JSONString.quote(o.queueID)),\"mediaType\":\(JSONString.quote(o.mediaType)),"
            + "\"eventTime\":\(o.eventTimeMilliseconds),\"waitMs\":\(o.waitMilliseconds),"
            + "\"outcome\":\(JSONString.quote(o.outcome.rawValue))}"
        return Array(text.utf8)
    }
}
