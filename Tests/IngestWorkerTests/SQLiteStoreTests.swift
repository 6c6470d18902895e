import Foundation
import Testing

@testable import IngestStore

private func temporaryDatabase() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("ingest-store-\(UUID().uuidString).sqlite").path
}

@Suite("SQLite idempotency store")
struct SQLiteStoreTests {
    @Test func claimCompleteThenDuplicateWithinTheWindow() async throws {
        let store = try SQLiteIdempotencyStore(path: temporaryDatabase())
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

    @Test func anExpiredLeaseIsTakenOverAndTheOldOwnerCannotComplete() async throws {
        let store = try SQLiteIdempotencyStore(path: temporaryDatabase())
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

    @Test func racingWorkersOnOneFileGetExactlyOneClaimPerKey() async throws {
        let path = temporaryDatabase()
        let a = try SQLiteIdempotencyStore(path: path)
        let b = try SQLiteIdempotencyStore(path: path)
        let keys = (0..<200).map { "key-\($0)" }
        async let fromA = a.claim(keys, owner: "A", nowMilliseconds: 0, leaseMilliseconds: 60_000)
        async let fromB = b.claim(keys.reversed(), owner: "B", nowMilliseconds: 0, leaseMilliseconds: 60_000)
        let (ra, rb) = try await (fromA, fromB)
        for key in keys {
            let winners = [ra[key] == .claimed, rb[key] == .claimed].filter { $0 }.count
            #expect(winners == 1, "\(key)")
        }
    }

    @Test func releaseAndPurge() async throws {
        let store = try SQLiteIdempotencyStore(path: temporaryDatabase())
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
}
