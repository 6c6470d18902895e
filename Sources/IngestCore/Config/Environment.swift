/// A configuration problem, phrased so an operator can fix it.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Reads typed settings from an environment dictionary. Secrets may come from `NAME` or, when
/// set, from the file named by `NAME_FILE` (Docker/Kubernetes secrets); trailing newlines of
/// a file are dropped.
public struct EnvironmentReader: Sendable {
    public var values: [String: String]
    /// Reads a file's contents (injected so the core stays free of I/O).
    public var readFile: @Sendable (String) throws -> [UInt8]

    public init(_ values: [String: String], readFile: @escaping @Sendable (String) throws -> [UInt8]) {
        self.values = values
        self.readFile = readFile
    }

    /// The non-empty value of `name`, if set.
    public func string(_ name: String) -> String? {
        guard let v = values[name], !v.isEmpty else { return nil }
        return v
    }

    public func string(_ name: String, default value: String) -> String {
        string(name) ?? value
    }

    public func int(
        _ name: String,
        default value: Int,
        range: ClosedRange<Int> = 0...Int.max
    ) throws(ConfigurationError)
        -> Int
    {
        guard let text = string(name) else { return value }
        guard let n = Int(text.trimmingASCIIWhitespace()), range.contains(n) else {
            throw ConfigurationError("\(name)=\(text) is not an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    public func bool(_ name: String, default value: Bool) throws(ConfigurationError) -> Bool {
        guard let text = string(name)?.lowercased() else { return value }
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigurationError("\(name)=\(text) must be true or false")
        }
    }

    /// A secret from `name` or the file at `name_FILE` (setting both is an error).
    public func secret(_ name: String) throws(ConfigurationError) -> [UInt8]? {
        let direct = string(name)
        let file = string(name + "_FILE")
        if direct != nil && file != nil {
            throw ConfigurationError("set only one of \(name) and \(name)_FILE")
        }
        if let direct { return Array(direct.utf8) }
        guard let file else { return nil }
        var bytes: [UInt8]
        do { bytes = try readFile(file) } catch {
            throw ConfigurationError("cannot read \(name)_FILE at \(file): \(error)")
        }
        while let last = bytes.last, last == 10 || last == 13 { bytes.removeLast() }
        if bytes.isEmpty { throw ConfigurationError("\(name)_FILE at \(file) is empty") }
        return bytes
    }

    /// `key=value,key=value` (e.g. librdkafka properties in `variable`) → dictionary.
    public static func keyValueList(
        _ text: String,
        variable: String
    ) throws(ConfigurationError)
        -> [String: String]
    {
        var out: [String: String] = [:]
        for pair in text.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else {
                throw ConfigurationError("\(variable) entry '\(pair)' is not key=value")
            }
            out[kv[0].trimmingASCIIWhitespace()] = kv[1].trimmingASCIIWhitespace()
        }
        return out
    }

}
