import Foundation
import IngestCore
import Testing

@testable import IngestAnalytics

/// Exact quantile by the nearest-rank method.
private func exact(_ sorted: [Double], _ q: Double) -> Double {
    let rank = Swift.max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1)
    return sorted[Swift.min(rank, sorted.count - 1)]
}

/// Rank error: how far (as a fraction of all values) the estimate's true rank is from `q`.
private func rankError(_ sorted: [Double], _ estimate: Double, _ q: Double) -> Double {
    var lo = 0
    var hi = sorted.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if sorted[mid] < estimate { lo = mid + 1 } else { hi = mid }
    }
    return abs(Double(lo) / Double(sorted.count) - q)
}

private struct Generator {
    var state: UInt64
    mutating func uniform() -> Double {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double(state >> 11) / Double(1 << 53)
    }
    /// Queue waits: mostly short, a long exponential tail (milliseconds).
    mutating func wait() -> Double { -log(1 - uniform()) * 30_000 }
}

@Suite("t-digest percentiles")
struct TDigestTests {
    @Test(arguments: ["uniform", "exponential", "bimodal"])
    func percentilesMatchExactOnesWithinStatedError(distribution: String) {
        var g = Generator(state: 42)
        var values: [Double] = []
        for i in 0..<200_000 {
            switch distribution {
            case "uniform": values.append(g.uniform() * 120_000)
            case "exponential": values.append(g.wait())
            default: values.append(i % 5 == 0 ? 300_000 + g.wait() : g.wait() / 10)
            }
        }
        var digest = TDigest()
        for v in values { digest.add(v) }
        let sorted = values.sorted()
        for q in [0.5, 0.9, 0.95, 0.99] {
            let estimate = digest.quantile(q)!
            // Stated accuracy (README): rank error ≤ 0.5 % at p50, ≤ 0.1 % at p99.
            let bound = q >= 0.99 ? 0.001 : 0.005
            #expect(
                rankError(sorted, estimate, q) <= bound,
                "\(distribution) p\(Int(q * 100)): \(estimate) vs \(exact(sorted, q))"
            )
        }
        #expect(digest.stateBytes <= 16 * 1024, "bounded state: \(digest.stateBytes) bytes")
        #expect(digest.count == Double(values.count))
    }

    @Test func mergingDigestsEqualsDigestingEverything() {
        var g = Generator(state: 7)
        let values = (0..<100_000).map { _ in g.wait() }
        var parts = (0..<10).map { _ in TDigest() }
        for (i, v) in values.enumerated() { parts[i % 10].add(v) }
        var merged = TDigest()
        for p in parts { merged.merge(p) }
        let sorted = values.sorted()
        for q in [0.5, 0.9, 0.99] {
            #expect(rankError(sorted, merged.quantile(q)!, q) <= 0.005)
        }
        #expect(merged.count == 100_000)
    }

    @Test func edgeCases() {
        var empty = TDigest()
        #expect(empty.quantile(0.5) == nil)
        var one = TDigest()
        one.add(42)
        #expect(one.quantile(0.99) == 42)
        var d = TDigest()
        d.add(.nan)
        d.add(.infinity)
        #expect(d.count == 0, "non-finite values are ignored")
        for v in [1.0, 2, 3, 4, 5] { d.add(v) }
        #expect(d.quantile(0) == 1)
        #expect(d.quantile(1) == 5)
    }
}
