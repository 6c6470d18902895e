/// Why a body is not acceptable JSON.
public enum JSONScanError: Error, Equatable, Sendable, CustomStringConvertible {
    case notAnObject
    case syntax(offset: Int)
    case tooDeep(limit: Int)
    /// A string holds bytes that are not UTF-8 (RFC 8259 §8.1 requires UTF-8).
    case invalidUTF8(offset: Int)

    public var description: String {
        switch self {
        case .notAnObject: "body must be a JSON object"
        case .syntax(let offset): "body is not valid JSON (error at byte \(offset))"
        case .invalidUTF8(let offset): "body is not valid UTF-8 (error at byte \(offset)); JSON must be UTF-8"
        case .tooDeep(let limit): "body nests deeper than \(limit) levels"
        }
    }
}

/// A validating, allocation-light JSON scanner that checks a whole document's syntax and
/// captures the string values found at a few object paths (e.g. `detail.topicName`).
///
/// It exists so the gateway can check "the body is a JSON object" and read its routing fields
/// at a few nanoseconds per byte without building a document tree. Values elsewhere are
/// validated and skipped. Nesting is bounded (no recursion on input-controlled depth beyond
/// ``maxDepth``), so hostile input cannot exhaust the stack.
public struct JSONScanner: Sendable {
    public static let maxDepth = 128

    /// Paths to capture, as key sequences from the root object, e.g. `["detail", "topicName"]`.
    public let paths: [[String]]
    private let pathBytes: [[[UInt8]]]

    public init(paths: [[String]]) {
        self.paths = paths
        self.pathBytes = paths.map { $0.map { Array($0.utf8) } }
    }

    /// Scans `bytes`; returns the captured values by index into ``paths``: strings decoded,
    /// numbers as their literal text, nil when the path is absent or holds another kind of value.
    public func scan(_ bytes: UnsafeBufferPointer<UInt8>) throws(JSONScanError) -> [String?] {
        var state = ScanState(bytes: bytes, paths: pathBytes)
        state.skipWhitespace()
        guard state.index < bytes.count, bytes[state.index] == UInt8(ascii: "{") else {
            if state.index < bytes.count, Self.startsValue(bytes[state.index]) { throw .notAnObject }
            throw state.index >= bytes.count ? .notAnObject : .syntax(offset: state.index)
        }
        try state.parseValue(depth: 0, matching: Array(pathBytes.indices), level: 0)
        state.skipWhitespace()
        if state.index != bytes.count { throw .syntax(offset: state.index) }
        return state.captures
    }

    public func scan(_ bytes: [UInt8]) throws(JSONScanError) -> [String?] {
        try bytes.withUnsafeBufferPointer { (p) throws(JSONScanError) -> [String?] in try scan(p) }
    }

    static func startsValue(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "["), UInt8(ascii: "\""), UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"),
            UInt8(ascii: "-"), 48...57:
            true
        default: false
        }
    }
}

private struct ScanState {
    let bytes: UnsafeBufferPointer<UInt8>
    let paths: [[[UInt8]]]
    var index = 0
    var captures: [String?]

    init(bytes: UnsafeBufferPointer<UInt8>, paths: [[[UInt8]]]) {
        self.bytes = bytes
        self.paths = paths
        self.captures = Array(repeating: nil, count: paths.count)
    }

    @inline(__always) mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 32, 9, 10, 13: index += 1
            default: return
            }
        }
    }

    /// Parses one value. `matching` lists the capture paths whose first `level` keys match the
    /// keys leading here.
    mutating func parseValue(depth: Int, matching: [Int], level: Int) throws(JSONScanError) {
        if depth >= JSONScanner.maxDepth { throw .tooDeep(limit: JSONScanner.maxDepth) }
        skipWhitespace()
        guard index < bytes.count else { throw .syntax(offset: index) }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            try parseObject(depth: depth, matching: matching, level: level)
        case UInt8(ascii: "["):
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return
            }
            while true {
                try parseValue(depth: depth + 1, matching: [], level: 0)
                skipWhitespace()
                guard index < bytes.count else { throw .syntax(offset: index) }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                if bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return
                }
                throw .syntax(offset: index)
            }
        case UInt8(ascii: "\""):
            let completed = matching.filter { paths[$0].count == level }
            let range = try parseString()
            if !completed.isEmpty {
                let value = decodeString(range)
                for p in completed where captures[p] == nil { captures[p] = value }
            }
        case UInt8(ascii: "t"): try expectLiteral("true")
        case UInt8(ascii: "f"): try expectLiteral("false")
        case UInt8(ascii: "n"): try expectLiteral("null")
        default:
            let start = index
            try parseNumber()
            // Numbers are captured as their literal text (e.g. an epoch-millisecond eventTime).
            for p in matching where paths[p].count == level && captures[p] == nil {
                captures[p] = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            }
        }
    }

    mutating func parseObject(depth: Int, matching: [Int], level: Int) throws(JSONScanError) {
        index += 1  // {
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return
        }
        let deeper = matching.filter { paths[$0].count > level }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw .syntax(offset: index) }
            let keyRange = try parseString()
            var childMatching: [Int] = []
            if !deeper.isEmpty {
                for p in deeper where keyEquals(keyRange, paths[p][level]) { childMatching.append(p) }
            }
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw .syntax(offset: index) }
            index += 1
            try parseValue(depth: depth + 1, matching: childMatching, level: level + 1)
            skipWhitespace()
            guard index < bytes.count else { throw .syntax(offset: index) }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return
            }
            throw .syntax(offset: index)
        }
    }

    /// Parses a string starting at its opening quote; returns the range of its raw contents.
    mutating func parseString() throws(JSONScanError) -> Range<Int> {
        index += 1
        let start = index
        while index < bytes.count {
            let b = bytes[index]
            if b == UInt8(ascii: "\"") {
                let range = start..<index
                index += 1
                return range
            }
            if b == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count else { throw .syntax(offset: index) }
                switch bytes[index + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                case UInt8(ascii: "u"):
                    guard index + 5 < bytes.count else { throw .syntax(offset: index) }
                    for k in 2...5 where ASCII.hexValue(bytes[index + k]) == nil {
                        throw .syntax(offset: index + k)
                    }
                    index += 6
                default:
                    throw .syntax(offset: index)
                }
                continue
            }
            if b < 0x20 { throw .syntax(offset: index) }
            if b >= 0x80 {
                index = try skipUTF8Sequence(at: index)
                continue
            }
            index += 1
        }
        throw .syntax(offset: index)
    }

    /// Checks the multi-byte UTF-8 sequence starting at `i` (RFC 3629: shortest form only, no
    /// surrogates, at most U+10FFFF) and returns the index after it. Bytes outside strings are
    /// all ASCII structure, so checking strings checks the whole document.
    func skipUTF8Sequence(at i: Int) throws(JSONScanError) -> Int {
        let lead = bytes[i]
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            high = 0x9F
        case 0xF0:
            length = 4
            low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            high = 0x8F
        default: throw .invalidUTF8(offset: i)
        }
        guard bytes.count - i >= length else { throw .invalidUTF8(offset: i) }
        let second = bytes[i + 1]
        guard second >= low, second <= high else { throw .invalidUTF8(offset: i + 1) }
        var k = 2
        while k < length {
            guard bytes[i + k] & 0xC0 == 0x80 else { throw .invalidUTF8(offset: i + k) }
            k += 1
        }
        return i + length
    }

    func keyEquals(_ range: Range<Int>, _ key: [UInt8]) -> Bool {
        guard range.count == key.count else { return false }
        var k = 0
        for i in range {
            if bytes[i] != key[k] { return false }
            k += 1
        }
        return true
    }

    /// Decodes a validated string's raw contents, resolving escapes.
    func decodeString(_ range: Range<Int>) -> String {
        let raw = UnsafeBufferPointer(rebasing: bytes[range])
        if !raw.contains(UInt8(ascii: "\\")) { return String(decoding: raw, as: UTF8.self) }
        var scalars = String.UnicodeScalarView()
        var utf8Run: [UInt8] = []
        func flush() {
            if !utf8Run.isEmpty {
                scalars.append(contentsOf: String(decoding: utf8Run, as: UTF8.self).unicodeScalars)
                utf8Run.removeAll()
            }
        }
        var i = 0
        var pendingHigh: UInt32?
        while i < raw.count {
            let b = raw[i]
            guard b == UInt8(ascii: "\\") else {
                utf8Run.append(b)
                i += 1
                continue
            }
            flush()
            let e = raw[i + 1]
            i += 2
            var scalar: UInt32
            switch e {
            case UInt8(ascii: "b"): scalar = 8
            case UInt8(ascii: "f"): scalar = 12
            case UInt8(ascii: "n"): scalar = 10
            case UInt8(ascii: "r"): scalar = 13
            case UInt8(ascii: "t"): scalar = 9
            case UInt8(ascii: "u"):
                scalar = 0
                for k in 0..<4 { scalar = scalar * 16 + UInt32(ASCII.hexValue(raw[i + k]) ?? 0) }
                i += 4
            default: scalar = UInt32(e)
            }
            if (0xD800...0xDBFF).contains(scalar) {
                pendingHigh = scalar
                continue
            }
            if (0xDC00...0xDFFF).contains(scalar), let high = pendingHigh {
                scalar = 0x10000 + ((high - 0xD800) << 10) + (scalar - 0xDC00)
            }
            pendingHigh = nil
            scalars.append(Unicode.Scalar(scalar) ?? "\u{FFFD}")
        }
        flush()
        return String(scalars)
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONScanError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw .syntax(offset: index) }
        let p = literal.utf8Start
        for k in 0..<count where bytes[index + k] != p[k] { throw .syntax(offset: index + k) }
        index += count
    }

    mutating func parseNumber() throws(JSONScanError) {
        let start = index
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, ASCII.isDigit(bytes[index]) else { throw .syntax(offset: start) }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, ASCII.isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < bytes.count, ASCII.isDigit(bytes[index]) else { throw .syntax(offset: index) }
            while index < bytes.count, ASCII.isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard index < bytes.count, ASCII.isDigit(bytes[index]) else { throw .syntax(offset: index) }
            while index < bytes.count, ASCII.isDigit(bytes[index]) { index += 1 }
        }
    }
}
