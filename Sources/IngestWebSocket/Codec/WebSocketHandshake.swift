import Foundation
import IngestCrypto

/// The client's opening handshake (RFC 6455 §4.1): the upgrade request and the checks on the
/// server's answer. No extensions or subprotocols are offered, so a server that selects any
/// is refused.
public struct WebSocketHandshake: Sendable {
    /// The `Sec-WebSocket-Key`: 16 random bytes, base64.
    public let key: String
    public static let maxResponseHeadBytes = 16 << 10
    static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    public init(key: String = Data(SecureRandom.bytes(16)).base64EncodedString()) {
        self.key = key
    }

    /// The GET request that asks `host` to upgrade `path` (path and query, from the URL).
    public func request(host: String, path: String, headers: [(String, String)] = []) -> [UInt8] {
        var text = "GET \(path.isEmpty ? "/" : path) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\n"
        text += "Connection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    /// What the server must answer in `Sec-WebSocket-Accept` for `key`.
    public static func acceptValue(for key: String) -> String {
        Data(SHA1Digest.bytes(Array((key + guid).utf8))).base64EncodedString()
    }

    public enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        case headTooLarge
        case malformed(String)
        case notUpgraded(status: Int, reason: String)
        case badAccept
        case unexpectedExtension(String)

        public var description: String {
            switch self {
            case .headTooLarge: "the server's handshake answer is larger than 16 KiB"
            case .malformed(let what): "the server's handshake answer is malformed: \(what)"
            case .notUpgraded(let status, let reason):
                "the server refused the WebSocket upgrade: HTTP \(status) \(reason)"
            case .badAccept: "the server's Sec-WebSocket-Accept does not match the key (not a WebSocket server?)"
            case .unexpectedExtension(let value):
                "the server selected an extension or subprotocol not offered: \(value)"
            }
        }
    }

    /// Checks the server's answer in `bytes` (which may hold frames after the head). Returns
    /// how many bytes the head took, or nil when it is not complete yet.
    public func validateResponse(_ bytes: [UInt8]) throws(Failure) -> Int? {
        guard let end = Self.headEnd(bytes) else {
            if bytes.count > Self.maxResponseHeadBytes { throw .headTooLarge }
            return nil
        }
        guard end <= Self.maxResponseHeadBytes else { throw .headTooLarge }
        let head = String(decoding: bytes[0..<end], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]), (100...599).contains(status)
        else { throw .malformed("status line '\(statusLine.prefix(80))'") }
        var headers: [String: [String]] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw .malformed("header line '\(line.prefix(80))'") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers[name, default: []].append(value)
        }
        guard status == 101 else {
            throw .notUpgraded(status: status, reason: parts.count > 2 ? String(parts[2]) : "")
        }
        guard headers["upgrade"]?.contains(where: { $0.lowercased() == "websocket" }) == true else {
            throw .malformed("no 'Upgrade: websocket'")
        }
        let connectionTokens = (headers["connection"] ?? []).flatMap { $0.lowercased().split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard connectionTokens.contains("upgrade") else { throw .malformed("no 'Connection: Upgrade'") }
        guard headers["sec-websocket-accept"] == [Self.acceptValue(for: key)] else { throw .badAccept }
        if let ext = headers["sec-websocket-extensions"]?.first { throw .unexpectedExtension(ext) }
        if let proto = headers["sec-websocket-protocol"]?.first { throw .unexpectedExtension(proto) }
        return end + 4
    }

    /// Index of the CRLFCRLF that ends the head.
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4)
        where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i
        }
        return nil
    }
}
