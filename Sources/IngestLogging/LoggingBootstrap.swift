import Foundation
import Logging

/// Log output formats the executables support.
public enum LogFormat: String, Sendable, CaseIterable {
    case text
    case json
}

/// Bootstraps swift-log once per process: human-readable text (default) or one JSON object per line.
public enum LoggingBootstrap {
    public static func bootstrap(format: LogFormat, level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                switch format {
                case .text: StreamLogHandler.standardError(label: label)
                case .json: JSONLogHandler(label: label)
                }
            handler.logLevel = level
            return handler
        }
    }
}

/// Writes each record as a single JSON line to standard error:
/// `{"ts":"…","level":"info","logger":"…","message":"…", <metadata>}`.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (k, v) in metadata { fields[k] = "\(v)" }
        for (k, v) in event.metadata ?? [:] { fields[k] = "\(v)" }
        var object: [String: String] = fields
        object["ts"] = ISO8601DateFormatter().string(from: Date())
        object["level"] = event.level.rawValue
        object["logger"] = label
        object["message"] = "\(event.message)"
        guard
            let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
            var line = String(data: data, encoding: .utf8)
        else { return }
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
