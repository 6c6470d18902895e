import Foundation
import IngestCrypto

/// When a channel was last known to be receiving, kept in the spool directory so that a
/// restarted bridge reports the gap from that moment (the time it was down), not from its own
/// start. One small file per planned channel, `channel-<n>.receiving`, rewritten atomically
/// (write, rename) at most every few seconds; it names the channel's topics so that a changed
/// configuration does not claim an old channel's gap.
struct ReceivingMark {
    let path: String
    let topicsDigest: String

    init(directory: String, channel: Int, topics: [String]) {
        path = directory + "/channel-\(channel).receiving"
        topicsDigest = SHA256Digest.hex(Array(topics.joined(separator: "\n").utf8))
    }

    /// The last moment recorded (epoch ms) for these topics, if any.
    func read() -> Int64? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let parts = String(decoding: data, as: UTF8.self).split(separator: " ")
        guard parts.count == 2, parts[1].trimmingCharacters(in: .whitespacesAndNewlines) == topicsDigest,
            let ms = Int64(parts[0]), ms > 0
        else { return nil }
        return ms
    }

    func write(_ milliseconds: Int64) {
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: Data("\(milliseconds) \(topicsDigest)\n".utf8))
        else { return }
        _ = rename(tmp, path)
    }
}
