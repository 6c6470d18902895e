/// A versioned document (e.g. one queue's overflow state), written only by compare-and-set.
public struct VersionedDocument: Sendable, Equatable {
    public var key: String
    /// Incremented by every write; 0 means "not stored yet".
    public var version: Int64
    /// The instance holding the document's lease, and until when (epoch ms).
    public var owner: String
    public var leaseUntil: Int64
    public var body: String

    public init(key: String, version: Int64, owner: String, leaseUntil: Int64, body: String) {
        self.key = key
        self.version = version
        self.owner = owner
        self.leaseUntil = leaseUntil
        self.body = body
    }
}

/// Shared, versioned documents with optimistic concurrency: the building block for durable
/// state machines and leases across worker instances.
public protocol DocumentStore: Sendable {
    func document(kind: String, key: String) async throws -> VersionedDocument?
    /// Stores `body` if the stored version is `expectedVersion` (0: the document must not
    /// exist yet); returns whether it was written (false: someone else wrote first).
    func putDocument(
        kind: String,
        key: String,
        expectedVersion: Int64,
        body: String,
        owner: String,
        leaseUntil: Int64
    ) async throws -> Bool
    func documents(kind: String) async throws -> [VersionedDocument]
}
