import CLibPQ
import Dispatch
import IngestCore

#if canImport(Glibc)
import Glibc
#endif

/// The shared store for scaled-out workers: PostgreSQL through libpq. Every operation is one
/// statement over arrays (one round trip per batch, whatever its size), and claim/complete
/// are atomic per statement, so racing workers get exactly one claim per key.
///
/// **Confinement:** the connection is used only on `queue`; every public method hops there.
public final class PostgresIdempotencyStore: IdempotencyStore, RateBudgetStore, DocumentStore, @unchecked Sendable {
    // @unchecked: `connection` is confined to `queue` (see above).
    private var connection: OpaquePointer?
    private let queue = DispatchQueue(label: "genesys-ingest.store.postgres")
    private let url: String
    private let schema: String
    private let migrates: Bool

    /// The schema version the migrations below bring a store to.
    public static let schemaVersion = 4

    /// Connects to `url` (a libpq URI such as `postgres://user:pw@host:5432/db`) and creates
    /// or migrates the tables in `schema`.
    public convenience init(url: String, schema: String = "public") throws(StoreError) {
        try self.init(url: url, schema: schema, migrate: true)
    }

    /// - Parameter migrate: false for a connection that only reads and writes its own tables
    ///   (the enrichment table in a reporting database gets no idempotency tables).
    init(url: String, schema: String, migrate: Bool) throws(StoreError) {
        self.url = url
        self.schema = schema
        self.migrates = migrate
        guard schema.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw StoreError("PostgreSQL schema name '\(schema)' may contain only letters, digits and _")
        }
        let result: Result<Void, StoreError> = queue.sync { Result { () throws(StoreError) in try connect() } }
        try result.get()
    }

    deinit {
        if let connection { PQfinish(connection) }
    }

    /// A URL safe to log (password removed).
    public var redactedURL: String {
        // scheme://user:password@host… → scheme://user:***@host…
        guard let at = url.lastIndex(of: "@"), let slashes = url.firstIndex(of: "/") else { return url }
        let credentialsStart = url.index(slashes, offsetBy: 2, limitedBy: at) ?? at
        guard let colon = url[credentialsStart..<at].firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }

    private func connect() throws(StoreError) {
        if let connection { PQfinish(connection) }
        let c = PQconnectdb(url)
        guard let c, PQstatus(c) == CONNECTION_OK else {
            let message = c.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
            if let c { PQfinish(c) }
            connection = nil
            throw StoreError("cannot connect to PostgreSQL at \(redactedURL): \(message.trimmingTrailingNewline)")
        }
        connection = c
        try execute("SET application_name = 'genesys-ingest-worker'")
        // Notices ("schema … already exists, skipping") are not for operators.
        try execute("SET client_min_messages TO warning")
        // Serialise schema creation and migrations of several workers starting at once
        // (`CREATE SCHEMA IF NOT EXISTS` alone races: "duplicate key value violates unique
        // constraint pg_namespace_nspname_index").
        try execute("SELECT pg_advisory_lock(727274)")
        defer { try? execute("SELECT pg_advisory_unlock(727274)") }
        try execute("CREATE SCHEMA IF NOT EXISTS \(schema)")
        try execute("SET search_path = \(schema)")
        guard migrates else { return }
        try execute(
            """
            CREATE TABLE IF NOT EXISTS ingest_schema_version (version INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS ingest_dedup (
                dedup_key TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                owner TEXT NOT NULL,
                lease_until BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                completed_at BIGINT
            );
            CREATE INDEX IF NOT EXISTS ingest_dedup_expires ON ingest_dedup (expires_at);
            CREATE TABLE IF NOT EXISTS ingest_side_effects (
                id BIGSERIAL PRIMARY KEY,
                handler TEXT NOT NULL,
                dedup_key TEXT NOT NULL,
                payload TEXT NOT NULL,
                applied_at BIGINT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS ingest_rate_budget (
                bucket TEXT NOT NULL,
                window_start BIGINT NOT NULL,
                used INTEGER NOT NULL,
                PRIMARY KEY (bucket, window_start)
            );
            INSERT INTO ingest_schema_version (version)
                SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM ingest_schema_version);
            CREATE INDEX IF NOT EXISTS ingest_side_effects_handler ON ingest_side_effects (handler, applied_at);
            CREATE TABLE IF NOT EXISTS ingest_documents (
                kind TEXT NOT NULL,
                key TEXT NOT NULL,
                version BIGINT NOT NULL,
                owner TEXT NOT NULL,
                lease_until BIGINT NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (kind, key)
            );
            UPDATE ingest_schema_version SET version = \(Self.schemaVersion) WHERE version < \(Self.schemaVersion);
            """
        )
    }

    public func close() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            queue.async {
                if let connection = self.connection { PQfinish(connection) }
                self.connection = nil
                c.resume()
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
        // Row locks are taken in one global order (sorted keys): two workers claiming
        // overlapping keys (every rebalance does that) wait for each other instead of
        // deadlocking. A deadlock PostgreSQL still detects is retried by `query`.
        let rows = try await query(
            """
            WITH input AS (SELECT DISTINCT unnest($1::text[]) AS k),
            claimed AS (
                INSERT INTO ingest_dedup AS d (dedup_key, state, owner, lease_until, expires_at)
                SELECT k, 'claimed', $2, $3, $3 FROM input ORDER BY k COLLATE "C"
                ON CONFLICT (dedup_key) DO UPDATE
                    SET state = 'claimed', owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until,
                        expires_at = EXCLUDED.expires_at, completed_at = NULL
                    WHERE (d.state = 'done' AND d.expires_at <= $4)
                       OR (d.state = 'claimed' AND (d.lease_until <= $4 OR d.owner = $2))
                RETURNING d.dedup_key
            )
            SELECT i.k, (c.dedup_key IS NOT NULL), d.state, d.lease_until
            FROM input i LEFT JOIN claimed c ON c.dedup_key = i.k LEFT JOIN ingest_dedup d ON d.dedup_key = i.k
            """,
            [Self.arrayLiteral(keys), owner, String(now + lease), String(now)]
        )
        var out: [String: ClaimOutcome] = [:]
        for row in rows {
            guard let key = row[0] else { continue }
            if row[1] == "t" {
                out[key] = .claimed
            } else if row[2] == "done" {
                out[key] = .duplicate
            } else {
                // Held by someone else (or just inserted by a racing worker: look again soon).
                out[key] = .busy(untilMilliseconds: row[3].flatMap { Int64($0) } ?? now + 200)
            }
        }
        return out
    }

    public func complete(
        _ keys: [String],
        owner: String,
        nowMilliseconds now: Int64,
        retainMilliseconds retain: Int64,
        sideEffects: [SideEffect]
    ) async throws -> Set<String> {
        let rows = try await query(
            """
            WITH done AS (
                UPDATE ingest_dedup SET state = 'done', completed_at = $3, expires_at = $4
                WHERE dedup_key = ANY($1::text[]) AND owner = $2 AND state = 'claimed'
                RETURNING dedup_key
            ), effects AS (
                INSERT INTO ingest_side_effects (handler, dedup_key, payload, applied_at)
                SELECT e.h, e.k, e.p, $3 FROM unnest($5::text[], $6::text[], $7::text[]) AS e(h, k, p)
                JOIN done ON done.dedup_key = e.k
                RETURNING 1
            )
            SELECT dedup_key FROM done
            """,
            [
                Self.arrayLiteral(keys), owner, String(now), String(now + retain),
                Self.arrayLiteral(sideEffects.map(\.handler)), Self.arrayLiteral(sideEffects.map(\.dedupKey)),
                Self.arrayLiteral(sideEffects.map(\.payload)),
            ]
        )
        return Set(rows.compactMap { $0[0] })
    }

    public func release(_ keys: [String], owner: String) async throws {
        _ = try await query(
            "DELETE FROM ingest_dedup WHERE dedup_key = ANY($1::text[]) AND owner = $2 AND state = 'claimed'",
            [Self.arrayLiteral(keys), owner]
        )
    }

    /// The schema version this store is at (``schemaVersion`` once opened).
    public func storedSchemaVersion() async throws -> Int {
        Int(try await query("SELECT max(version) FROM ingest_schema_version", []).first?[0] ?? "0") ?? 0
    }

    public func purge(nowMilliseconds now: Int64) async throws -> Int {
        let rows = try await query(
            "WITH gone AS (DELETE FROM ingest_dedup WHERE expires_at < $1 RETURNING 1) SELECT count(*) FROM gone",
            [String(now)]
        )
        return rows.first?[0].flatMap { Int($0) } ?? 0
    }

    public func sideEffects(handler: String, appliedSince: Int64) async throws -> [SideEffect] {
        try await query(
            "SELECT dedup_key, payload FROM ingest_side_effects WHERE handler = $1 AND applied_at >= $2 ORDER BY id",
            [handler, String(appliedSince)]
        )
        .map { SideEffect(handler: handler, dedupKey: $0[0] ?? "", payload: $0[1] ?? "") }
    }

    public func keyStates(_ keys: [String]) async throws -> [String: String] {
        var out: [String: String] = [:]
        for start in stride(from: 0, to: keys.count, by: 500) {
            let part = Array(keys[start..<min(keys.count, start + 500)])
            let placeholders = (1...part.count).map { "$\($0)" }.joined(separator: ",")
            for row in try await query(
                "SELECT dedup_key, state FROM ingest_dedup WHERE dedup_key IN (\(placeholders))",
                part
            ) {
                if let key = row[0], let state = row[1] { out[key] = state }
            }
        }
        return out
    }

    public func purgeSideEffects(handler: String, appliedBefore: Int64) async throws -> Int {
        let rows = try await query(
            "WITH gone AS (DELETE FROM ingest_side_effects WHERE handler = $1 AND applied_at < $2 RETURNING 1) "
                + "SELECT count(*) FROM gone",
            [handler, String(appliedBefore)]
        )
        return rows.first?[0].flatMap { Int($0) } ?? 0
    }

    // MARK: - DocumentStore

    public func document(kind: String, key: String) async throws -> VersionedDocument? {
        try await query(
            "SELECT version, owner, lease_until, body FROM ingest_documents WHERE kind = $1 AND key = $2",
            [kind, key]
        ).first.map { Self.document(key: key, $0) }
    }

    public func putDocument(
        kind: String,
        key: String,
        expectedVersion: Int64,
        body: String,
        owner: String,
        leaseUntil: Int64
    ) async throws -> Bool {
        let sql =
            expectedVersion == 0
            ? "INSERT INTO ingest_documents (kind, key, version, owner, lease_until, body) "
                + "VALUES ($1, $2, $3::bigint + 1, $4, $5, $6) ON CONFLICT (kind, key) DO NOTHING RETURNING 1"
            : "UPDATE ingest_documents SET version = version + 1, owner = $4, lease_until = $5, body = $6 "
                + "WHERE kind = $1 AND key = $2 AND version = $3 RETURNING 1"
        let rows = try await query(sql, [kind, key, String(expectedVersion), owner, String(leaseUntil), body])
        return !rows.isEmpty
    }

    public func documents(kind: String) async throws -> [VersionedDocument] {
        try await query(
            "SELECT version, owner, lease_until, body, key FROM ingest_documents WHERE kind = $1 ORDER BY key",
            [kind]
        ).map { Self.document(key: $0[4] ?? "", $0) }
    }

    private static func document(key: String, _ row: [String?]) -> VersionedDocument {
        VersionedDocument(
            key: key,
            version: row[0].flatMap { Int64($0) } ?? 0,
            owner: row[1] ?? "",
            leaseUntil: row[2].flatMap { Int64($0) } ?? 0,
            body: row[3] ?? ""
        )
    }

    // MARK: - RateBudgetStore

    public func take(bucket: String, window: Int64, limit: Int) async throws -> Bool {
        let rows = try await query(
            """
            WITH taken AS (
                INSERT INTO ingest_rate_budget AS b (bucket, window_start, used) VALUES ($1, $2, 1)
                ON CONFLICT (bucket, window_start) DO UPDATE SET used = b.used + 1 WHERE b.used < $3
                RETURNING 1
            ), pruned AS (
                DELETE FROM ingest_rate_budget WHERE bucket = $1 AND window_start < $2 - 120
            )
            SELECT count(*) FROM taken
            """,
            [bucket, String(window), String(limit)]
        )
        return rows.first?[0] == "1"
    }

    // MARK: - libpq (on `queue`)

    /// How often a statement aborted by a deadlock or serialization failure is run again.
    static let maxConflictRetries = 5

    func query(_ sql: String, _ parameters: [String]) async throws(StoreError) -> [[String?]] {
        let result: Result<[[String?]], StoreError> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(
                    returning: Result { () throws(StoreError) -> [[String?]] in
                        var conflicts = 0
                        while true {
                            do throws(StoreError) {
                                return try self.run(sql, parameters)
                            } catch  where error.isTransientConflict && conflicts < Self.maxConflictRetries {
                                // Deadlock or serialization failure: the statement was rolled
                                // back whole; run it again after a short jittered pause.
                                conflicts += 1
                                usleep(UInt32.random(in: 1_000...(10_000 * UInt32(conflicts))))
                            } catch {
                                // One reconnect for a dropped connection, then report.
                                guard self.connection.map({ PQstatus($0) != CONNECTION_OK }) ?? true else {
                                    throw error
                                }
                                try self.connect()
                                return try self.run(sql, parameters)
                            }
                        }
                    }
                )
            }
        }
        return try result.get()
    }

    private func run(_ sql: String, _ parameters: [String]) throws(StoreError) -> [[String?]] {
        guard let connection else { throw StoreError("PostgreSQL store \(redactedURL) is not connected") }
        // PQexecParams copies the parameter strings; the C strings live for the call only.
        let cStrings = parameters.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        let pointers = cStrings.map { UnsafePointer<CChar>($0) }
        let result = pointers.withUnsafeBufferPointer { p in
            PQexecParams(connection, sql, Int32(parameters.count), nil, p.baseAddress, nil, nil, 0)
        }
        guard let result else { throw StoreError("PostgreSQL store \(redactedURL): out of memory") }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK else {
            // PG_DIAG_SQLSTATE is the field code 'C'; the string belongs to `result`.
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            throw StoreError(
                "PostgreSQL store \(redactedURL): \(String(cString: PQresultErrorMessage(result)).trimmingTrailingNewline)",
                sqlState: state
            )
        }
        var rows: [[String?]] = []
        let n = PQntuples(result)
        let fields = PQnfields(result)
        rows.reserveCapacity(Int(n))
        for r in 0..<n {
            var row: [String?] = []
            for f in 0..<fields {
                row.append(PQgetisnull(result, r, f) == 1 ? nil : String(cString: PQgetvalue(result, r, f)))
            }
            rows.append(row)
        }
        return rows
    }

    private func execute(_ sql: String) throws(StoreError) {
        guard let connection else { throw StoreError("PostgreSQL store \(redactedURL) is not connected") }
        guard let result = PQexec(connection, sql) else { throw StoreError("PostgreSQL store: out of memory") }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK else {
            throw StoreError(
                "PostgreSQL store \(redactedURL): \(String(cString: PQresultErrorMessage(result)).trimmingTrailingNewline)"
            )
        }
    }

    /// A PostgreSQL text-array literal: `{"a","b\"c"}`.
    static func arrayLiteral(_ values: [String]) -> String {
        var out = "{"
        for (i, v) in values.enumerated() {
            if i > 0 { out += "," }
            out += "\""
            for ch in v.unicodeScalars {
                if ch == "\"" || ch == "\\" { out += "\\" }
                out.unicodeScalars.append(ch)
            }
            out += "\""
        }
        return out + "}"
    }
}

extension String {
    var trimmingTrailingNewline: String {
        var s = self
        while s.hasSuffix("\n") { s.removeLast() }
        return s
    }
}
