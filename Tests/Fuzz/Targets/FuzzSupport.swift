// Shared by every fuzz target (compiled into each target's module by Scripts/fuzz).

import IngestCore

#if canImport(Glibc)
import Glibc
#endif

/// A property the input broke: prints it (optimised builds drop `precondition` messages) and
/// aborts, so libFuzzer records the input.
func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if condition { return }
    fputs("fuzz check failed: \(message())\n", stderr)
    abort()
}

func bytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// Splits `input` into chunks of 1…`maxChunk` bytes.
func randomSplits(_ input: [UInt8], seed: UInt64, maxChunk: Int) -> [[UInt8]] {
    // Seeded from the input, so a crash reproduces from its file.
    var random = SplitMix64(seed: seed)
    var chunks: [[UInt8]] = []
    var i = 0
    while i < input.count {
        let n = 1 + Int(random.next() % UInt64(max(1, maxChunk)))
        chunks.append(Array(input[i..<min(input.count, i + n)]))
        i += n
    }
    return chunks
}
