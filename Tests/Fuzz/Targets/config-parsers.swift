import Foundation
import IngestCore

/// The alert-rule text parser, the shared alert-state reader and the overflow configuration parser (JSON, then loop and
/// capacity validation with a seeded load simulation) over arbitrary input: a
/// ConfigurationError with a message is fine, a trap or a hang is not.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let all = bytes(data, size)
    let input = Array(all.dropFirst())
    if all[0] & 1 == 0 {
        let text = String(decoding: input, as: UTF8.self)
        _ = try? AlertRule.parseList(text, windows: [5, 15, 60])
        // Shared alert states are read back from the store by every instance.
        if let state = AlertState(text) { check(AlertState(state.body) == state, "an alert state does not round-trip") }
    } else {
        _ = try? OverflowConfiguration.parse(Data(input))
    }
    return 0
}
