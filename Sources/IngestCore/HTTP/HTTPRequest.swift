/// Header fields of one HTTP message, in arrival order. Names are stored lowercased (ASCII).
public struct HTTPHeaders: Sendable, Equatable, Sequence {
    public private(set) var fields: [(name: String, value: String)]

    public init(_ fields: [(String, String)] = []) {
        self.fields = fields.map { (name: $0.0.lowercased(), value: $0.1) }
    }

    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.fields.elementsEqual(rhs.fields) { $0.name == $1.name && $0.value == $1.value }
    }

    /// Appends a field; `name` must already be lowercased.
    mutating func appendLowercased(name: String, value: String) {
        fields.append((name: name, value: value))
    }

    public mutating func add(name: String, value: String) {
        fields.append((name: name.lowercased(), value: value))
    }

    /// The first value of `name` (case-insensitive), if any.
    public subscript(name: String) -> String? {
        let lowered = name.lowercased()
        for field in fields where field.name == lowered { return field.value }
        return nil
    }

    /// Every value of `name` (case-insensitive).
    public func values(_ name: String) -> [String] {
        let lowered = name.lowercased()
        return fields.filter { $0.name == lowered }.map(\.value)
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> {
        fields.makeIterator()
    }
}

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
