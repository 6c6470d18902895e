import Foundation
import IngestCore
import IngestStore
import Testing

/// A fresh SQLite database file's path in the temporary directory.
public func temporaryDatabase() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("ingest-store-\(UUID().uuidString).sqlite").path
}

/// The PostgreSQL test database (Scripts/test starts one and exports this variable).
public let testPostgresURL = ProcessInfo.processInfo.environment["INGEST_TEST_POSTGRES_URL"]

/// Which store a test runs against; PostgreSQL cases run when `INGEST_TEST_POSTGRES_URL` is set.
public enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    public var testDescription: String { rawValue }

    public static var available: [StoreKind] { testPostgresURL == nil ? [.sqlite] : allCases }

    /// A fresh, empty store; `sharing` names one to open a second connection to.
    public func make(sharing location: String? = nil) throws -> (store: any IdempotencyStore, location: String) {
        switch self {
        case .sqlite:
            let path = location ?? temporaryDatabase()
            return (try SQLiteIdempotencyStore(path: path), path)
        case .postgres:
            let schema =
                location ?? "t_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
            return (try PostgresIdempotencyStore(url: testPostgresURL!, schema: schema), schema)
        }
    }
}
