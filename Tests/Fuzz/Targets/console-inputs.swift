import Foundation
import IngestCore

/// The console's parsers of request text over arbitrary bytes: form/query strings, the
/// dead-letter filters built from them, the `Cookie` header and a session payload. Nothing
/// traps; a parsed query's parameters parse again to the same query.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: bytes(data, size), as: UTF8.self)
    let form = RequestText.decodeForm(Substring(text))
    if let query = try? DeadLetterQuery.parse(form) {
        let again = try? DeadLetterQuery.parse(Dictionary(query.parameters) { a, _ in a })
        check(again == query, "a query's parameters do not parse back to it")
        _ = query.dlqTopics(naming: TopicNaming())
    }
    if let signed = RequestText.signedCookie(text, name: "ingest_console") {
        _ = RequestText.sessionFields(String(decoding: signed.payload, as: UTF8.self))
    }
    _ = RequestText.sessionFields(text)
    check(
        RequestText.decodeBase64url(Substring(RequestText.base64url(Array(text.utf8)))) == Array(text.utf8),
        "base64url round trip"
    )
    return 0
}
