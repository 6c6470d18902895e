import IngestCore

/// The chunked decoder on its own: a fixed, valid head, then the input as the chunked body
/// (sizes, extensions, data, trailers). Never a trap; a decoded body is never larger than the
/// limit; byte-by-byte feeding decodes the same.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let head = Array("POST /events HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
    let input = head + bytes(data, size)
    let limits = HTTPRequestParser.Limits(maxHeaderBytes: 1024, maxBodyBytes: 2048)
    func run(_ chunks: [[UInt8]]) -> (bodies: [[UInt8]], failed: Bool) {
        var parser = HTTPRequestParser(limits: limits)
        var bodies: [[UInt8]] = []
        for chunk in chunks {
            parser.append(chunk)
            while true {
                do {
                    let event = try parser.next()
                    if case .request(let r) = event {
                        check(r.body.count <= limits.maxBodyBytes, "body over the limit")
                        bodies.append(r.body)
                        continue
                    }
                    if case .continueExpected = event { continue }
                    break
                } catch {
                    return (bodies, true)
                }
            }
        }
        return (bodies, false)
    }
    let whole = run([input])
    let split = run(input.map { [$0] })
    check(whole.bodies == split.bodies && whole.failed == split.failed, "split decoding differs")
    return 0
}
