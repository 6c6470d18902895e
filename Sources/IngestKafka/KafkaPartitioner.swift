/// The partition a keyed record goes to, computed the way the product's producers place it.
///
/// Every producer of the product uses librdkafka's `murmur2_random` partitioner (set in
/// ``KafkaProducer/durableDefaults``), which is the Java client's default: partition =
/// `(murmur2(key) & 0x7fffffff) % partitionCount`. Stages that co-partition topics (queue
/// analytics: waits and observations by queue id) rely on it, and check records against it.
public enum KafkaPartitioner {
    /// The librdkafka property value every producer of the product sets.
    public static let propertyValue = "murmur2_random"

    /// The partition of `key` among `partitionCount` partitions (`partitionCount` ≥ 1).
    public static func partition(key: some Collection<UInt8>, partitionCount: Int32) -> Int32 {
        precondition(partitionCount > 0, "a topic has at least one partition")
        return Int32(murmur2(key) & 0x7fff_ffff) % partitionCount
    }

    /// MurmurHash2, 32-bit, seed 0x9747b28c: byte for byte what the Java client's
    /// `Utils.murmur2` and librdkafka's `rd_murmur2` compute (little-endian 4-byte blocks).
    public static func murmur2(_ key: some Collection<UInt8>) -> UInt32 {
        let bytes = Array(key)
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        let length = bytes.count
        var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: length)
        var i = 0
        while i + 4 <= length {
            var k =
                UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
            k &*= m
            k ^= k >> r
            k &*= m
            h &*= m
            h ^= k
            i += 4
        }
        switch length - i {
        case 3:
            h ^= UInt32(bytes[i + 2]) << 16
            h ^= UInt32(bytes[i + 1]) << 8
            h ^= UInt32(bytes[i])
            h &*= m
        case 2:
            h ^= UInt32(bytes[i + 1]) << 8
            h ^= UInt32(bytes[i])
            h &*= m
        case 1:
            h ^= UInt32(bytes[i])
            h &*= m
        default:
            break
        }
        h ^= h >> 13
        h &*= m
        h ^= h >> 15
        return h
    }
}
