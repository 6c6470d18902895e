import IngestCore

/// The JSON scanner, envelope inspection and idempotency-key derivation over arbitrary bytes:
/// never a trap, and whatever the scanner accepts is valid UTF-8 (RFC 8259).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    let inspector = EnvelopeInspector()
    let accepted: Bool
    do {
        let info = try inspector.inspect(input)
        _ = EnvelopeInspector.route(topicName: info.topicName)
        accepted = true
    } catch {
        accepted = false
    }
    let derived = try? DedupKey.derive(from: input, producedEventID: nil) { "d\($0.count)" }
    check((derived != nil) == accepted, "the inspector and the key derivation disagree on validity")
    if accepted {
        check(String(validating: input, as: UTF8.self) != nil, "accepted a body that is not UTF-8")
    }
    return 0
}
