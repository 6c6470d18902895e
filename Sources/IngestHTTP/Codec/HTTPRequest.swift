import IngestCore

/// A complete HTTP/1.x request as the parser delivers it.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The request target as sent (origin form: path and optional query).
    public var target: String
    public var versionMinor: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Whether the connection may carry another request after this one.
    public var keepAlive: Bool

    public init(
        method: String,
        target: String,
        versionMinor: Int = 1,
        headers: HTTPHeaders = HTTPHeaders(),
        body: [UInt8] = [],
        keepAlive: Bool = true
    ) {
        self.method = method
        self.target = target
        self.versionMinor = versionMinor
        self.headers = headers
        self.body = body
        self.keepAlive = keepAlive
    }

    /// The path part of the target, without the query.
    public var path: Substring {
        if let q = target.firstIndex(of: "?") { return target[..<q] }
        return target[...]
    }
}
