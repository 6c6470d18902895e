import CSQLite
import Dispatch
import IngestCore

#if canImport(Glibc)
import Glibc
#endif

/// The embedded store: one SQLite file (WAL mode). Several worker processes on one host may
/// share the file (SQLite's locking serializes writers); use PostgreSQL to scale across hosts.
///
/// **Confinement:** the connection and its statements are used only on `queue`; every public
/// method hops there.
public final class SQLiteIdempotencyStore: IdempotencyStore, RateBudgetStore, DocumentStore, @unchecked Sendable {
    // @unchecked: `db` is confined to `queue` (see above).
    private let db: OpaquePointer
    private let queue = DispatchQueue(label: "genesys-ingest.store.sqlite")
    public let path: String
    private var isClosed = false

    /// The `user_version` the migrations below bring a store to (the last step sets it).
    public static let schemaVersion = 4

    /// Opens (creating and migrating when needed) the database at `path`.
    public init(path: String) throws(StoreError) {
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        guard sqlite3_open_v2(path, &handle, flags, nil) == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            throw StoreError("cannot open SQLite store at \(path): \(message)")
        }
        self.db = handle
        self.path = path
        sqlite3_busy_timeout(db, 10_000)
        // Several workers may open the file at once: switching to WAL and migrating take locks
        // that SQLite's busy handler does not always wait for, so retry those steps.
        try retryingWhileBusy { () throws(StoreError) in try exec("PRAGMA journal_mode=WAL") }
        try exec("PRAGMA synchronous=NORMAL")
        try retryingWhileBusy { () throws(StoreError) in try migrate() }
    }

    deinit {
        if !isClosed { sqlite3_close_v2(db) }
    }

    public func close() async {
        await run { () throws(StoreError) in
            if !self.isClosed {
                self.isClosed = true
                sqlite3_close_v2(self.db)
            }
        }
    }

    /// Runs `body`, retrying for up to 10 s while the database is locked by another process.
    private func retryingWhileBusy(_ body: () throws(StoreError) -> Void) throws(StoreError) {
        var attempts = 0
        while true {
            do {
                try body()
                return
            } catch {
                let code = sqlite3_errcode(db) & 0xFF
                attempts += 1
                guard (code == SQLITE_BUSY || code == SQLITE_LOCKED) && attempts < 200 else { throw error }
                usleep(50_000)
            }
        }
    }

    private func migrate() throws(StoreError) {
        try transaction { () throws(StoreError) in try migrateInTransaction() }
    }

    private func migrateInTransaction() throws(StoreError) {
        let version = try queryInt("PRAGMA user_version")
        if version < 1 {
            try exec(
                """
                CREATE TABLE IF NOT EXISTS ingest_dedup (
                    dedup_key TEXT PRIMARY KEY,
                    state TEXT NOT NULL,
                    owner TEXT NOT NULL,
                    lease_until INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    completed_at INTEGER
                ) WITHOUT ROWID;
                CREATE INDEX IF NOT EXISTS ingest_dedup_expires ON ingest_dedup (expires_at);
                CREATE TABLE IF NOT EXISTS ingest_side_effects (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    handler TEXT NOT NULL,
                    dedup_key TEXT NOT NULL,
                    payload TEXT NOT NULL,
                    applied_at INTEGER NOT NULL
                );
                PRAGMA user_version = 1;
                """
            )
        }
        if version < 2 {
            try exec(
                """
                CREATE TABLE IF NOT EXISTS ingest_rate_budget (
                    bucket TEXT NOT NULL,
                    window_start INTEGER NOT NULL,
                    used INTEGER NOT NULL,
                    PRIMARY KEY (bucket, window_start)
                ) WITHOUT ROWID;
                PRAGMA user_version = 2;
                """
            )
        }
        if version < 3 {
            try exec(
                """
                CREATE INDEX IF NOT EXISTS ingest_side_effects_handler ON ingest_side_effects (handler, applied_at);
                PRAGMA user_version = 3;
                """
            )
        }
        if version < 4 {
            try exec(
                """
                CREATE TABLE IF NOT EXISTS ingest_documents (
                    kind TEXT NOT NULL,
                    key TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    owner TEXT NOT NULL,
                    lease_until INTEGER NOT NULL,
                    body TEXT NOT NULL,
                    PRIMARY KEY (kind, key)
                ) WITHOUT ROWID;
                PRAGMA user_version = 4;
                """
            )
        }
    }

    // MARK: - DocumentStore

    public func document(kind: String, key: String) async throws -> VersionedDocument? {
        try await documents(kind: kind, key: key).first
    }

    public func documents(kind: String) async throws -> [VersionedDocument] {
        try await documents(kind: kind, key: nil)
    }

    private func documents(kind: String, key: String?) async throws(StoreError) -> [VersionedDocument] {
        try await run { () throws(StoreError) -> [VersionedDocument] in
            let select = try self.prepare(
                "SELECT key, version, owner, lease_until, body FROM ingest_documents WHERE kind = ?"
                    + (key == nil ? " ORDER BY key" : " AND key = ?")
            )
            defer { sqlite3_finalize(select) }
            self.bind(select, 1, kind)
            if let key { self.bind(select, 2, key) }
            var out: [VersionedDocument] = []
            while sqlite3_step(select) == SQLITE_ROW {
                out.append(
                    VersionedDocument(
                        key: String(cString: sqlite3_column_text(select, 0)),
                        version: sqlite3_column_int64(select, 1),
                        owner: String(cString: sqlite3_column_text(select, 2)),
                        leaseUntil: sqlite3_column_int64(select, 3),
                        body: String(cString: sqlite3_column_text(select, 4))
                    )
                )
            }
            return out
        }
    }

    public func putDocument(
        kind: String,
        key: String,
        expectedVersion: Int64,
        body: String,
        owner: String,
        leaseUntil: Int64
    ) async throws -> Bool {
        try await run { () throws(StoreError) -> Bool in
            let sql =
                expectedVersion == 0
                ? "INSERT OR IGNORE INTO ingest_documents (kind, key, version, owner, lease_until, body) "
                    + "VALUES (?1, ?2, 1, ?4, ?5, ?6)"
                : "UPDATE ingest_documents SET version = version + 1, owner = ?4, lease_until = ?5, body = ?6 "
                    + "WHERE kind = ?1 AND key = ?2 AND version = ?3"
            let statement = try self.prepare(sql)
            defer { sqlite3_finalize(statement) }
            self.bind(statement, 1, kind)
            self.bind(statement, 2, key)
            if expectedVersion != 0 { sqlite3_bind_int64(statement, 3, expectedVersion) }
            self.bind(statement, 4, owner)
            sqlite3_bind_int64(statement, 5, leaseUntil)
            self.bind(statement, 6, body)
            try self.stepDone(statement, "put document")
            return sqlite3_changes(self.db) == 1
        }
    }

    // MARK: - RateBudgetStore

    public func take(bucket: String, window: Int64, limit: Int) async throws -> Bool {
        try await run { () throws(StoreError) -> Bool in
            try self.transaction { () throws(StoreError) -> Bool in
                let upsert = try self.prepare(
                    "INSERT INTO ingest_rate_budget (bucket, window_start, used) VALUES (?, ?, 1) "
                        + "ON CONFLICT (bucket, window_start) DO UPDATE SET used = used + 1 WHERE used < ?"
                )
                defer { sqlite3_finalize(upsert) }
                self.bind(upsert, 1, bucket)
                sqlite3_bind_int64(upsert, 2, window)
                sqlite3_bind_int64(upsert, 3, Int64(limit))
                try self.stepDone(upsert, "rate budget")
                let taken = sqlite3_changes(self.db) == 1
                let prune = try self.prepare("DELETE FROM ingest_rate_budget WHERE bucket = ? AND window_start < ?")
                defer { sqlite3_finalize(prune) }
                self.bind(prune, 1, bucket)
                sqlite3_bind_int64(prune, 2, window - 120)
                try self.stepDone(prune, "rate budget prune")
                return taken
            }
        }
    }

    // MARK: - IdempotencyStore

    public func claim(
        _ keys: [String],
        owner: String,
        nowMilliseconds now: Int64,
        leaseMilliseconds lease: Int64
    )
        async throws -> [String: ClaimOutcome]
    {
        try await run { () throws(StoreError) -> [String: ClaimOutcome] in
            try self.transaction { () throws(StoreError) -> [String: ClaimOutcome] in
                var out: [String: ClaimOutcome] = [:]
                let select = try self.prepare(
                    "SELECT state, owner, lease_until, expires_at FROM ingest_dedup WHERE dedup_key = ?"
                )
                defer { sqlite3_finalize(select) }
                let upsert = try self.prepare(
                    "INSERT INTO ingest_dedup (dedup_key, state, owner, lease_until, expires_at) VALUES (?, 'claimed', ?, ?, ?) "
                        + "ON CONFLICT (dedup_key) DO UPDATE SET state = 'claimed', owner = excluded.owner, "
                        + "lease_until = excluded.lease_until, expires_at = excluded.expires_at, completed_at = NULL"
                )
                defer { sqlite3_finalize(upsert) }
                for key in Set(keys) {
                    sqlite3_reset(select)
                    self.bind(select, 1, key)
                    var outcome = ClaimOutcome.claimed
                    if sqlite3_step(select) == SQLITE_ROW {
                        let state = String(cString: sqlite3_column_text(select, 0))
                        let holder = String(cString: sqlite3_column_text(select, 1))
                        let leaseUntil = sqlite3_column_int64(select, 2)
                        let expiresAt = sqlite3_column_int64(select, 3)
                        if state == "done" && expiresAt > now {
                            outcome = .duplicate
                        } else if state == "claimed" && leaseUntil > now && holder != owner {
                            outcome = .busy(untilMilliseconds: leaseUntil)
                        }
                    }
                    if outcome == .claimed {
                        sqlite3_reset(upsert)
                        self.bind(upsert, 1, key)
                        self.bind(upsert, 2, owner)
                        sqlite3_bind_int64(upsert, 3, now + lease)
                        sqlite3_bind_int64(upsert, 4, now + lease)
                        try self.stepDone(upsert, "claim")
                    }
                    out[key] = outcome
                }
                return out
            }
        }
    }

    public func complete(
        _ keys: [String],
        owner: String,
        nowMilliseconds now: Int64,
        retainMilliseconds retain: Int64,
        sideEffects: [SideEffect]
    ) async throws -> Set<String> {
        try await run { () throws(StoreError) -> Set<String> in
            try self.transaction { () throws(StoreError) -> Set<String> in
                let update = try self.prepare(
                    "UPDATE ingest_dedup SET state = 'done', completed_at = ?, expires_at = ? "
                        + "WHERE dedup_key = ? AND owner = ? AND state = 'claimed'"
                )
                defer { sqlite3_finalize(update) }
                var completed = Set<String>()
                for key in Set(keys) {
                    sqlite3_reset(update)
                    sqlite3_bind_int64(update, 1, now)
                    sqlite3_bind_int64(update, 2, now + retain)
                    self.bind(update, 3, key)
                    self.bind(update, 4, owner)
                    try self.stepDone(update, "complete")
                    if sqlite3_changes(self.db) == 1 { completed.insert(key) }
                }
                let insert = try self.prepare(
                    "INSERT INTO ingest_side_effects (handler, dedup_key, payload, applied_at) VALUES (?, ?, ?, ?)"
                )
                defer { sqlite3_finalize(insert) }
                // Only effects of keys still owned: a key taken over after our lease expired is
                // the new owner's to apply.
                for effect in sideEffects where completed.contains(effect.dedupKey) {
                    sqlite3_reset(insert)
                    self.bind(insert, 1, effect.handler)
                    self.bind(insert, 2, effect.dedupKey)
                    self.bind(insert, 3, effect.payload)
                    sqlite3_bind_int64(insert, 4, now)
                    try self.stepDone(insert, "record side effect")
                }
                return completed
            }
        }
    }

    public func release(_ keys: [String], owner: String) async throws {
        try await run { () throws(StoreError) in
            try self.transaction { () throws(StoreError) in
                let delete = try self.prepare(
                    "DELETE FROM ingest_dedup WHERE dedup_key = ? AND owner = ? AND state = 'claimed'"
                )
                defer { sqlite3_finalize(delete) }
                for key in Set(keys) {
                    sqlite3_reset(delete)
                    self.bind(delete, 1, key)
                    self.bind(delete, 2, owner)
                    try self.stepDone(delete, "release")
                }
            }
        }
    }

    /// The schema version this store is at (``schemaVersion`` once opened).
    public func storedSchemaVersion() async throws -> Int {
        try await run { () throws(StoreError) -> Int in try self.queryInt("PRAGMA user_version") }
    }

    public func purge(nowMilliseconds now: Int64) async throws -> Int {
        try await run { () throws(StoreError) -> Int in
            let delete = try self.prepare("DELETE FROM ingest_dedup WHERE expires_at < ?")
            defer { sqlite3_finalize(delete) }
            sqlite3_bind_int64(delete, 1, now)
            try self.stepDone(delete, "purge")
            return Int(sqlite3_changes(self.db))
        }
    }

    public func sideEffects(handler: String, appliedSince: Int64) async throws -> [SideEffect] {
        try await run { () throws(StoreError) -> [SideEffect] in
            let select = try self.prepare(
                "SELECT dedup_key, payload FROM ingest_side_effects WHERE handler = ? AND applied_at >= ? ORDER BY id"
            )
            defer { sqlite3_finalize(select) }
            self.bind(select, 1, handler)
            sqlite3_bind_int64(select, 2, appliedSince)
            var out: [SideEffect] = []
            while sqlite3_step(select) == SQLITE_ROW {
                out.append(
                    SideEffect(
                        handler: handler,
                        dedupKey: String(cString: sqlite3_column_text(select, 0)),
                        payload: String(cString: sqlite3_column_text(select, 1))
                    )
                )
            }
            return out
        }
    }

    public func keyStates(_ keys: [String]) async throws -> [String: String] {
        guard !keys.isEmpty else { return [:] }
        return try await run { () throws(StoreError) -> [String: String] in
            var out: [String: String] = [:]
            for start in stride(from: 0, to: keys.count, by: 500) {
                let part = Array(keys[start..<min(keys.count, start + 500)])
                let select = try self.prepare(
                    "SELECT dedup_key, state FROM ingest_dedup WHERE dedup_key IN ("
                        + part.map { _ in "?" }.joined(separator: ",") + ")"
                )
                defer { sqlite3_finalize(select) }
                for (i, key) in part.enumerated() { self.bind(select, Int32(i + 1), key) }
                while sqlite3_step(select) == SQLITE_ROW {
                    out[String(cString: sqlite3_column_text(select, 0))] = String(
                        cString: sqlite3_column_text(select, 1)
                    )
                }
            }
            return out
        }
    }

    public func purgeSideEffects(handler: String, appliedBefore: Int64) async throws -> Int {
        try await run { () throws(StoreError) -> Int in
            let delete = try self.prepare("DELETE FROM ingest_side_effects WHERE handler = ? AND applied_at < ?")
            defer { sqlite3_finalize(delete) }
            self.bind(delete, 1, handler)
            sqlite3_bind_int64(delete, 2, appliedBefore)
            try self.stepDone(delete, "purge side effects")
            return Int(sqlite3_changes(self.db))
        }
    }

    // MARK: - Helpers (on `queue`)

    private func run<T: Sendable>(_ body: @escaping @Sendable () throws(StoreError) -> T) async throws(StoreError) -> T
    {
        let result: Result<T, StoreError> = await withCheckedContinuation { continuation in
            queue.async {
                guard !self.isClosed else {
                    continuation.resume(returning: .failure(StoreError("SQLite store is closed")))
                    return
                }
                continuation.resume(returning: Result { () throws(StoreError) -> T in try body() })
            }
        }
        return try result.get()
    }

    private func run(_ body: @escaping @Sendable () throws(StoreError) -> Void) async {
        _ = try? await run { () throws(StoreError) -> Int in
            try body()
            return 0
        }
    }

    private func transaction<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        try exec("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try exec("COMMIT")
            return value
        } catch {
            try? exec("ROLLBACK")
            throw error
        }
    }

    private func exec(_ sql: String) throws(StoreError) {
        var message: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &message) != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(message)
            throw StoreError("SQLite store \(path): \(text)")
        }
    }

    private func prepare(_ sql: String) throws(StoreError) -> OpaquePointer {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw StoreError("SQLite store \(path): \(String(cString: sqlite3_errmsg(db)))")
        }
        return statement
    }

    private func bind(_ statement: OpaquePointer, _ index: Int32, _ text: String) {
        sqlite3_bind_text(statement, index, text, -1, csqlite_transient())
    }

    private func stepDone(_ statement: OpaquePointer, _ operation: String) throws(StoreError) {
        let rc = sqlite3_step(statement)
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else {
            throw StoreError("SQLite store \(path): \(operation) failed: \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    private func queryInt(_ sql: String) throws(StoreError) -> Int {
        let statement = try prepare(sql)
        defer { sqlite3_finalize(statement) }
        guard sqlite3_step(statement) == SQLITE_ROW else { return 0 }
        return Int(sqlite3_column_int64(statement, 0))
    }
}
