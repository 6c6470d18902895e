import IngestCore

/// An HTTP status code with its reason phrase.
public struct HTTPStatus: Sendable, Hashable, CustomStringConvertible {
    public var code: Int
    public var reason: String

    public init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code) \(reason)" }

    public static let `continue` = HTTPStatus(code: 100, reason: "Continue")
    public static let switchingProtocols = HTTPStatus(code: 101, reason: "Switching Protocols")
    public static let ok = HTTPStatus(code: 200, reason: "OK")
    public static let accepted = HTTPStatus(code: 202, reason: "Accepted")
    public static let badRequest = HTTPStatus(code: 400, reason: "Bad Request")
    public static let unauthorized = HTTPStatus(code: 401, reason: "Unauthorized")
    public static let notFound = HTTPStatus(code: 404, reason: "Not Found")
    public static let methodNotAllowed = HTTPStatus(code: 405, reason: "Method Not Allowed")
    public static let requestTimeout = HTTPStatus(code: 408, reason: "Request Timeout")
    public static let payloadTooLarge = HTTPStatus(code: 413, reason: "Content Too Large")
    public static let requestHeaderFieldsTooLarge = HTTPStatus(code: 431, reason: "Request Header Fields Too Large")
    public static let notImplemented = HTTPStatus(code: 501, reason: "Not Implemented")
    public static let serviceUnavailable = HTTPStatus(code: 503, reason: "Service Unavailable")
    public static let httpVersionNotSupported = HTTPStatus(code: 505, reason: "HTTP Version Not Supported")
}

/// A response to be serialized onto a connection.
public struct HTTPResponse: Sendable {
    public var status: HTTPStatus
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// When set the connection is closed after this response is written.
    public var closeConnection: Bool

    public init(
        status: HTTPStatus,
        headers: [(String, String)] = [],
        body: [UInt8] = [],
        closeConnection: Bool = false
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.closeConnection = closeConnection
    }

    /// A response with a JSON body.
    public static func json(
        _ status: HTTPStatus,
        _ json: String,
        headers: [(String, String)] = [],
        closeConnection: Bool = false
    ) -> HTTPResponse {
        HTTPResponse(
            status: status,
            headers: [("Content-Type", "application/json")] + headers,
            body: Array(json.utf8),
            closeConnection: closeConnection
        )
    }

    /// A JSON `{"error": reason}` body (reason is escaped).
    public static func error(
        _ status: HTTPStatus,
        _ reason: String,
        headers: [(String, String)] = [],
        closeConnection: Bool = false
    ) -> HTTPResponse {
        .json(status, "{\"error\":\(JSONString.quote(reason))}", headers: headers, closeConnection: closeConnection)
    }

    /// Appends the wire form of this response to `buffer`. `keepAlive` is false when the
    /// connection closes after it (a `Connection: close` header is then written).
    public func serialize(into buffer: inout [UInt8], keepAlive: Bool) {
        buffer.append(contentsOf: "HTTP/1.1 \(status.code) \(status.reason)\r\n".utf8)
        for (name, value) in headers {
            buffer.append(contentsOf: name.utf8)
            buffer.append(contentsOf: ": ".utf8)
            buffer.append(contentsOf: value.utf8)
            buffer.append(contentsOf: "\r\n".utf8)
        }
        // 1xx and 204 carry no body and no Content-Length (RFC 9110 §8.6).
        if status.code >= 200 && status.code != 204 {
            buffer.append(contentsOf: "Content-Length: \(body.count)\r\n".utf8)
        }
        if !keepAlive || closeConnection { buffer.append(contentsOf: "Connection: close\r\n".utf8) }
        buffer.append(contentsOf: "\r\n".utf8)
        buffer.append(contentsOf: body)
    }
}
