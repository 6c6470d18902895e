import IngestCore

/// What a parser made of a byte stream: the requests in order, then the error that ended it.
struct ParseOutcome: Equatable {
    var requests: [String] = []
    var error: HTTPParseError?
}

func parse(_ chunks: [[UInt8]], limits: HTTPRequestParser.Limits) -> ParseOutcome {
    var parser = HTTPRequestParser(limits: limits)
    var outcome = ParseOutcome()
    for chunk in chunks {
        parser.append(chunk)
        drain: while true {
            do {
                switch try parser.next() {
                case .request(let r):
                    let headers = r.headers.map { "\($0.name)=\($0.value)" }.joined(separator: "\n")
                    outcome.requests.append(
                        "\(r.method) \(r.target) 1.\(r.versionMinor) \(r.keepAlive)\n\(headers)\n\(r.body)"
                    )
                case .continueExpected: continue
                case .needMoreData: break drain
                }
            } catch {
                outcome.error = error
                return outcome
            }
        }
    }
    return outcome
}

/// The HTTP/1.1 request parser (head, Content-Length and chunked bodies, trailers, limits),
/// fed whole and in random splits: it must never trap, and both must give the same requests
/// and the same error (a parser that frames differently by packet boundaries is a smuggling
/// risk). The first byte seeds the splits; the second picks small or default limits.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let all = bytes(data, size)
    let input = Array(all.dropFirst(2))
    let limits =
        all[1] & 1 == 0
        ? HTTPRequestParser.Limits(maxHeaderBytes: 256, maxBodyBytes: 300)
        : HTTPRequestParser.Limits()
    let whole = parse([input], limits: limits)
    let split = parse(randomSplits(input, seed: UInt64(all[0]), maxChunk: 1 + Int(all[0] % 23)), limits: limits)
    check(whole == split, "whole: \(whole)\nsplit: \(split)")
    return 0
}
