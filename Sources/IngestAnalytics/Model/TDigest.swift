import Foundation
import IngestCore

/// A merging t-digest (Dunning & Ertl): a small, mergeable summary of a distribution that
/// answers quantiles with the best accuracy near the tails (p90, p99), where wait-time alerts
/// look. With the default compression of 100 it keeps at most a few hundred centroids
/// (a few kilobytes) however many values it has seen.
///
/// A value type; not thread-safe while mutated (confine it like any other struct).
public struct TDigest: Sendable, Equatable {
    public struct Centroid: Sendable, Equatable {
        public var mean: Double
        public var weight: Double
    }

    public let compression: Double
    /// Values kept unmerged before the digest compresses on its own. Up to this many values
    /// the digest is a function of the multiset alone, not of the order the values came in
    /// (see ``canonical``); beyond it, of the order too (within the stated error either way).
    public let bufferLimit: Int
    public private(set) var centroids: [Centroid] = []
    private var buffer: [Centroid] = []
    public private(set) var count: Double = 0
    public private(set) var min = Double.infinity
    public private(set) var max = -Double.infinity

    /// - Parameter bufferLimit: default `2 × compression` (the classic merging digest);
    ///   larger limits trade memory for order independence (the analytics buckets use 1,000).
    public init(compression: Double = 100, bufferLimit: Int? = nil) {
        self.compression = compression
        self.bufferLimit = Swift.max(1, bufferLimit ?? Int(compression) * 2)
    }

    /// Adds a value (with a weight, e.g. a pre-aggregated count).
    public mutating func add(_ value: Double, weight: Double = 1) {
        guard value.isFinite, weight > 0 else { return }
        buffer.append(Centroid(mean: value, weight: weight))
        count += weight
        if value < min { min = value }
        if value > max { max = value }
        if buffer.count >= bufferLimit { compress() }
    }

    /// This digest with its unmerged values compressed: the same for the same values in any
    /// order, as long as no more than ``bufferLimit`` values arrived since the last
    /// ``compress()``. Merging canonical forms keeps windows independent of arrival order and
    /// of when buckets were sealed.
    public var canonical: TDigest {
        guard !buffer.isEmpty else { return self }
        var copy = self
        copy.compress()
        return copy
    }

    /// Folds `other` into this digest (digests of the same population merge losslessly enough
    /// for windows and intervals to be combined). `other` enters in its ``canonical`` form.
    public mutating func merge(_ other: TDigest) {
        guard other.count > 0 else { return }
        buffer.append(contentsOf: other.canonical.centroids)
        count += other.count
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
        compress()
    }

    /// Merges the unmerged values into the centroids.
    public mutating func compress() {
        guard !buffer.isEmpty else { return }
        var all = centroids + buffer
        buffer.removeAll(keepingCapacity: true)
        // A total order (equal means by weight): the result does not depend on input order.
        all.sort { ($0.mean, $0.weight) < ($1.mean, $1.weight) }
        let total = all.reduce(0) { $0 + $1.weight }
        var merged: [Centroid] = []
        merged.reserveCapacity(Int(compression) * 2)
        var current = all[0]
        var weightSoFar = 0.0
        var kLeft = k(0)
        for c in all.dropFirst() {
            let q = (weightSoFar + current.weight + c.weight) / total
            if k(q) - kLeft <= 1 {
                // Merge into the current centroid (weighted mean).
                let w = current.weight + c.weight
                current.mean += (c.mean - current.mean) * c.weight / w
                current.weight = w
            } else {
                weightSoFar += current.weight
                kLeft = k(weightSoFar / total)
                merged.append(current)
                current = c
            }
        }
        merged.append(current)
        centroids = merged
    }

    /// The k1 scale function: small centroids at the tails, large ones in the middle.
    @inline(__always) private func k(_ q: Double) -> Double {
        compression / (2 * Double.pi) * asin(2 * Swift.min(Swift.max(q, 0), 1) - 1)
    }

    /// The value at quantile `q` (0…1); nil when empty.
    public mutating func quantile(_ q: Double) -> Double? {
        compress()
        return quantileOfCompressed(q)
    }

    /// Quantile of an already-compressed digest (no mutation).
    public func quantileOfCompressed(_ q: Double) -> Double? {
        guard count > 0, !centroids.isEmpty else { return nil }
        let q = Swift.min(Swift.max(q, 0), 1)
        if centroids.count == 1 { return centroids[0].mean }
        let target = q * count
        if target <= centroids[0].weight / 2 {
            // Between min and the first centroid's mean.
            let first = centroids[0]
            return min + (first.mean - min) * (target / (first.weight / 2))
        }
        var cumulative = 0.0
        for i in 0..<(centroids.count - 1) {
            let a = centroids[i]
            let b = centroids[i + 1]
            let left = cumulative + a.weight / 2
            let right = cumulative + a.weight + b.weight / 2
            if target <= right {
                let t = (target - left) / (right - left)
                return a.mean + (b.mean - a.mean) * t
            }
            cumulative += a.weight
        }
        let last = centroids[centroids.count - 1]
        let left = count - last.weight / 2
        if target <= left { return last.mean }
        return last.mean + (max - last.mean) * ((target - left) / (last.weight / 2))
    }

    /// The size of the digest's state in bytes (centroids and pending buffer, 16 bytes each).
    public var stateBytes: Int { (centroids.count + buffer.count) * MemoryLayout<Centroid>.stride + 48 }
}
