// Shared by every fuzz target (compiled into each target's module by Scripts/fuzz).

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

/// A deterministic generator seeded from the input, so a crash reproduces from its file.
struct FuzzRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
}

func bytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// Splits `input` into chunks of 1…`maxChunk` bytes.
func randomSplits(_ input: [UInt8], seed: UInt64, maxChunk: Int) -> [[UInt8]] {
    var random = FuzzRandom(seed)
    var chunks: [[UInt8]] = []
    var i = 0
    while i < input.count {
        let n = 1 + random.below(maxChunk)
        chunks.append(Array(input[i..<min(input.count, i + n)]))
        i += n
    }
    return chunks
}
