import IngestCore

/// The WebSocket client's frame decoder and message assembler over arbitrary server bytes (a
/// hostile or broken notification server): every input ends in frames, "need more" or a
/// protocol error with a close code — never a trap or an allocation beyond the limits — and the
/// verdict does not depend on how the bytes were split into reads.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = bytes(data, size)
    func run(_ chunks: [[UInt8]]) -> (messages: [WebSocketMessage], error: WebSocketProtocolError?) {
        var decoder = WebSocketFrameDecoder(maxFramePayload: 4096)
        var assembler = WebSocketMessageAssembler(maxMessageBytes: 8192)
        var messages: [WebSocketMessage] = []
        for chunk in chunks {
            decoder.append(chunk)
            do {
                while let frame = try decoder.next() {
                    check(frame.payload.count <= 4096, "a frame beyond the limit was returned")
                    if frame.opcode.isControl {
                        check(frame.payload.count <= 125 && frame.fin, "a bad control frame passed")
                    }
                    if let m = try assembler.push(frame) { messages.append(m) }
                }
            } catch {
                check([1002, 1007, 1009].contains(error.closeCode), "unexpected close code \(error.closeCode)")
                return (messages, error)
            }
        }
        return (messages, nil)
    }
    let whole = run([input])
    let split = run(randomSplits(input, seed: UInt64(size) &* 0x9E37_79B9, maxChunk: 7))
    check(whole.messages == split.messages, "messages depend on how the bytes were split")
    check(whole.error == split.error, "the verdict depends on how the bytes were split")
    for m in whole.messages {
        if case .text(let t) = m { check(String(validating: Array(t.utf8), as: UTF8.self) != nil, "invalid text") }
    }
    return 0
}
