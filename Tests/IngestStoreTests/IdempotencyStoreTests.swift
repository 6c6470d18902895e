import Foundation
import IngestCore
import IngestTesting
import Testing

@testable import IngestStore

@Suite("Idempotency stores (SQLite and PostgreSQL)", .elasticThreads)
struct IdempotencyStoreTests {
    /// What the console's trace shows: each key's state, absent keys left out (600 keys:
    /// more than one batch of placeholders).
    @Test(arguments: StoreKind.available)
    func keyStatesReportClaimedDoneAndNothingForReleased(kind: StoreKind) async throws {
        let store = try kind.make().store
        let keys = (0..<600).map { "h|k-\($0)" }
        _ = try await store.claim(keys, owner: "w1", nowMilliseconds: 1000, leaseMilliseconds: 60_000)
        _ = try await store.complete(
            Array(keys[0..<300]),
            owner: "w1",
            nowMilliseconds: 1100,
            retainMilliseconds: 60_000,
            sideEffects: []
        )
        try await store.release(["h|k-599"], owner: "w1")
        let states = try await store.keyStates(keys + ["h|never"])
        #expect(states.count == 599)
        #expect(states["h|k-0"] == "done" && states["h|k-299"] == "done")
        #expect(states["h|k-300"] == "claimed")
        #expect(states["h|k-599"] == nil && states["h|never"] == nil)
        #expect(try await store.keyStates([]).isEmpty)
    }

    @Test(arguments: StoreKind.available)
    func claimCompleteThenDuplicateWithinTheWindow(kind: StoreKind) async throws {
        let store = try kind.make().store
        let first = try await store.claim(["a", "b"], owner: "w1", nowMilliseconds: 1000, leaseMilliseconds: 500)
        #expect(first == ["a": .claimed, "b": .claimed])
        let done = try await store.complete(
            ["a"],
            owner: "w1",
            nowMilliseconds: 1100,
            retainMilliseconds: 10_000,
            sideEffects: [SideEffect(handler: "h", dedupKey: "a", payload: "1")]
        )
        #expect(done == ["a"])
        let again = try await store.claim(["a", "b"], owner: "w2", nowMilliseconds: 1200, leaseMilliseconds: 500)
        #expect(again["a"] == .duplicate)
        #expect(again["b"] == .busy(untilMilliseconds: 1500))
        // After the retention window the key is new again.
        #expect(
            try await store.claim(["a"], owner: "w2", nowMilliseconds: 20_000, leaseMilliseconds: 500)["a"] == .claimed
        )
        #expect(try await store.sideEffects(handler: "h").map(\.payload) == ["1"])
    }

    @Test(arguments: StoreKind.available)
    func anExpiredLeaseIsTakenOverAndTheOldOwnerCannotComplete(kind: StoreKind) async throws {
        let store = try kind.make().store
        _ = try await store.claim(["k"], owner: "crashed", nowMilliseconds: 0, leaseMilliseconds: 100)
        #expect(
            try await store.claim(["k"], owner: "w2", nowMilliseconds: 50, leaseMilliseconds: 100)["k"]
                == .busy(untilMilliseconds: 100)
        )
        #expect(
            try await store.claim(["k"], owner: "w2", nowMilliseconds: 101, leaseMilliseconds: 100)["k"] == .claimed
        )
        let late = try await store.complete(
            ["k"],
            owner: "crashed",
            nowMilliseconds: 150,
            retainMilliseconds: 1000,
            sideEffects: [SideEffect(handler: "h", dedupKey: "k", payload: "old")]
        )
        #expect(late.isEmpty)
        let ok = try await store.complete(
            ["k"],
            owner: "w2",
            nowMilliseconds: 160,
            retainMilliseconds: 1000,
            sideEffects: [SideEffect(handler: "h", dedupKey: "k", payload: "new")]
        )
        #expect(ok == ["k"])
        #expect(try await store.sideEffects(handler: "h").map(\.payload) == ["new"])
    }

    @Test(arguments: StoreKind.available)
    func racingWorkersGetExactlyOneClaimPerKey(kind: StoreKind) async throws {
        let (a, location) = try kind.make()
        let b = try kind.make(sharing: location).store
        // Several rounds of overlapping claims in opposite orders: on PostgreSQL this hit
        // "deadlock detected" before claims took row locks in one order (issue 10).
        for round in 0..<8 {
            let keys = (0..<200).map { "key-\(round)-\($0)" }
            async let fromA = a.claim(keys, owner: "A", nowMilliseconds: 0, leaseMilliseconds: 60_000)
            async let fromB = b.claim(keys.reversed(), owner: "B", nowMilliseconds: 0, leaseMilliseconds: 60_000)
            let (ra, rb) = try await (fromA, fromB)
            for key in keys {
                let winners = [ra[key] == .claimed, rb[key] == .claimed].filter { $0 }.count
                #expect(winners == 1, "\(key)")
            }
        }
    }

    /// Regression (issue 10): creating a document failed on PostgreSQL ("could not determine
    /// data type of parameter $3"), so the overflow controller could not start an activation.
    @Test(arguments: StoreKind.available)
    func documentsAreCreatedOnceAndWrittenByCompareAndSet(kind: StoreKind) async throws {
        let (first, location) = try kind.make()
        let a = try #require(first as? any DocumentStore)
        let b = try #require(try kind.make(sharing: location).store as? any DocumentStore)
        #expect(try await a.document(kind: "overflow", key: "q1") == nil)
        #expect(
            try await a.putDocument(
                kind: "overflow",
                key: "q1",
                expectedVersion: 0,
                body: "v1",
                owner: "A",
                leaseUntil: 10
            )
        )
        // A second creation loses.
        #expect(
            !(try await b.putDocument(
                kind: "overflow",
                key: "q1",
                expectedVersion: 0,
                body: "x",
                owner: "B",
                leaseUntil: 10
            ))
        )
        let stored = try #require(try await b.document(kind: "overflow", key: "q1"))
        #expect(stored == VersionedDocument(key: "q1", version: 1, owner: "A", leaseUntil: 10, body: "v1"))
        // Compare-and-set: only the writer that read version 1 wins.
        #expect(
            try await b.putDocument(
                kind: "overflow",
                key: "q1",
                expectedVersion: 1,
                body: "v2",
                owner: "B",
                leaseUntil: 20
            )
        )
        #expect(
            !(try await a.putDocument(
                kind: "overflow",
                key: "q1",
                expectedVersion: 1,
                body: "v2a",
                owner: "A",
                leaseUntil: 20
            ))
        )
        #expect(try await a.document(kind: "overflow", key: "q1")?.body == "v2")
        #expect(try await a.document(kind: "overflow", key: "q1")?.version == 2)
        #expect(try await a.documents(kind: "overflow").map(\.key) == ["q1"])
    }

    @Test(arguments: StoreKind.available)
    func migrationsReachTheDeclaredSchemaVersion(kind: StoreKind) async throws {
        let store = try kind.make().store
        switch store {
        case let s as SQLiteIdempotencyStore:
            #expect(try await s.storedSchemaVersion() == SQLiteIdempotencyStore.schemaVersion)
        case let p as PostgresIdempotencyStore:
            #expect(try await p.storedSchemaVersion() == PostgresIdempotencyStore.schemaVersion)
        default:
            Issue.record("unexpected store \(type(of: store))")
        }
        await store.close()
    }

    @Test(arguments: StoreKind.available)
    func releaseAndPurge(kind: StoreKind) async throws {
        let store = try kind.make().store
        _ = try await store.claim(["x", "y"], owner: "w", nowMilliseconds: 0, leaseMilliseconds: 1000)
        try await store.release(["x"], owner: "w")
        #expect(
            try await store.claim(["x"], owner: "other", nowMilliseconds: 10, leaseMilliseconds: 1000)["x"] == .claimed
        )
        _ = try await store.complete(["y"], owner: "w", nowMilliseconds: 10, retainMilliseconds: 100, sideEffects: [])
        #expect(try await store.purge(nowMilliseconds: 50) == 0)
        #expect(try await store.purge(nowMilliseconds: 2000) == 2)
    }

    @Test func reopeningKeepsStateAndBadPathsFailClearly() async throws {
        let path = temporaryDatabase()
        do {
            let store = try SQLiteIdempotencyStore(path: path)
            _ = try await store.claim(["p"], owner: "w", nowMilliseconds: 0, leaseMilliseconds: 10)
            _ = try await store.complete(
                ["p"],
                owner: "w",
                nowMilliseconds: 1,
                retainMilliseconds: 1_000_000,
                sideEffects: []
            )
            await store.close()
        }
        let reopened = try SQLiteIdempotencyStore(path: path)
        #expect(
            try await reopened.claim(["p"], owner: "w2", nowMilliseconds: 5, leaseMilliseconds: 10)["p"] == .duplicate
        )
        #expect(throws: StoreError.self) { try SQLiteIdempotencyStore(path: "/nonexistent-dir/x.sqlite") }
    }

    /// Workers starting together open one fresh SQLite file at the same moment.
    @Test func concurrentOpensOfOneFreshFileAllSucceed() async throws {
        for _ in 0..<5 {
            let path = temporaryDatabase()
            let opened = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<6 {
                    group.addTask { (try? SQLiteIdempotencyStore(path: path)) != nil }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(opened == 6)
        }
    }

    @Test func postgresErrorsNameTheServerWithoutThePassword() {
        do {
            _ = try PostgresIdempotencyStore(url: "postgres://ingest:hunter2@127.0.0.1:1/nowhere")
            Issue.record("expected a connection error")
        } catch {
            #expect("\(error)".contains("127.0.0.1:1"))
            #expect(!"\(error)".contains("hunter2"))
        }
    }

    @Test func arrayLiteralsEscapeQuotesAndBackslashes() {
        #expect(PostgresIdempotencyStore.arrayLiteral(["a", #"b"c"#, #"d\e"#, ""]) == #"{"a","b\"c","d\\e",""}"#)
    }
}
