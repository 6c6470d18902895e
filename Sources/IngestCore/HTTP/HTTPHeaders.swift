/// Header fields of one HTTP message, in arrival order. Names are stored lowercased (ASCII).
public struct HTTPHeaders: Sendable, Equatable, Sequence {
    public private(set) var fields: [(name: String, value: String)]

    public init(_ fields: [(String, String)] = []) {
        self.fields = fields.map { (name: $0.0.lowercased(), value: $0.1) }
    }

    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.fields.elementsEqual(rhs.fields) { $0.name == $1.name && $0.value == $1.value }
    }

    /// Appends a field; `name` must already be lowercased (the parser's fast path).
    public mutating func appendLowercased(name: String, value: String) {
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
