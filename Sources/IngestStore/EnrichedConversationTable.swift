/// Enriched conversations in PostgreSQL, one row per conversation (`enriched_conversations`):
/// newer data wins, and replays never duplicate rows (the conversation id is the key). Its
/// connection creates only this table: a reporting database gets none of the worker's
/// idempotency tables.
public final class EnrichedConversationTable: Sendable {
    private let connection: PostgresIdempotencyStore

    /// Connects to `url` and creates the table in `schema` when missing.
    public init(url: String, schema: String = "public") async throws {
        connection = try PostgresIdempotencyStore(url: url, schema: schema, migrate: false)
        _ = try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS enriched_conversations (
                conversation_id TEXT PRIMARY KEY,
                conversation_end TIMESTAMPTZ,
                record JSONB NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )
            """,
            []
        )
    }

    public func close() async { await connection.close() }

    /// The tables in this connection's schema (what the table's owner finds in a reporting
    /// database).
    public func tablesInSchema() async throws -> [String] {
        try await connection.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename",
            []
        ).compactMap { $0[0] }
    }

    /// Inserts or updates a conversation; an update applies only when its `conversationEnd` is
    /// not older than the stored one (Genesys may rewrite details for up to 48 hours).
    /// - Returns: whether the row was written.
    @discardableResult
    public func upsertEnrichedConversation(id: String, conversationEnd: String, recordJSON: String) async throws -> Bool
    {
        let rows = try await connection.query(
            """
            INSERT INTO enriched_conversations AS c (conversation_id, conversation_end, record, updated_at)
            VALUES ($1, $2::timestamptz, $3::jsonb, now())
            ON CONFLICT (conversation_id) DO UPDATE
                SET conversation_end = EXCLUDED.conversation_end, record = EXCLUDED.record, updated_at = now()
                WHERE c.conversation_end IS NULL OR EXCLUDED.conversation_end >= c.conversation_end
            RETURNING 1
            """,
            [id, conversationEnd, recordJSON]
        )
        return !rows.isEmpty
    }

    /// The number of stored enriched conversations.
    public func enrichedConversationCount() async throws -> Int {
        Int(try await connection.query("SELECT count(*) FROM enriched_conversations", []).first?[0] ?? "0") ?? 0
    }
}
