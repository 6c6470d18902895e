import Foundation
import GenesysSimulator
import IngestCore
import IngestStore
import IngestTesting
import Logging
import Testing

@testable import GenesysAPI

private func simulator(_ configure: (inout SimulatorConfiguration) -> Void = { _ in }) throws -> GenesysSimulator {
    var config = SimulatorConfiguration()
    configure(&config)
    let sim = GenesysSimulator(configuration: config, logger: Logger(label: "sim"))
    try sim.start()
    sim.addConversation(
        ConversationDetailsFactory.details(
            conversationID: "c-1",
            queueID: "q-1",
            agentID: "a-1",
            start: Date().addingTimeInterval(-120),
            waitMilliseconds: 12_000,
            talkMilliseconds: 60_000,
            abandoned: false
        )
    )
    return sim
}

private func client(
    _ sim: GenesysSimulator,
    secret: String = "sim-secret",
    budget: (any RateBudget)? = nil,
    configure: (inout GenesysClientConfiguration) -> Void = { _ in }
) -> GenesysClient {
    var config = GenesysClientConfiguration(
        clientID: "sim-client",
        clientSecret: secret,
        apiBaseURL: sim.baseURL,
        loginBaseURL: sim.baseURL
    )
    config.serverErrorBackoffSeconds = [0.05, 0.1, 0.2]
    configure(&config)
    return GenesysClient(
        configuration: config,
        budget: budget ?? SharedRateBudget(store: InMemoryRateBudgetStore(), bucket: "t", limit: 100_000),
        logger: Logger(label: "client")
    )
}

/// Fast back-off for tests that provoke 5xx or dropped connections.
private func fastRetries(_ config: inout GenesysClientConfiguration) {
    config.serverErrorBackoffSeconds = Array(repeating: 0.01, count: 12)
}

@Suite("Genesys API client against the simulator", .serialized, .elasticThreads)
struct GenesysClientTests {
    @Test func regionsMapToAPIAndLoginHosts() {
        #expect(GenesysRegion.baseURLs(region: "eu-central-1")?.api == "https://api.mypurecloud.de")
        #expect(GenesysRegion.baseURLs(region: "eu-central-1")?.login == "https://login.mypurecloud.de")
        #expect(GenesysRegion.baseURLs(region: "us-east-2")?.login == "https://login.use2.us-gov-pure.cloud")
        #expect(GenesysRegion.apiHosts.count == 17)
        #expect(GenesysRegion.baseURLs(region: "mars-1") == nil)
    }

    @Test func tokenIsCachedAndFetchedOnceUnderConcurrency() async throws {
        let sim = try simulator()
        let api = client(sim)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<40 {
                group.addTask { _ = try await api.conversationDetails(id: "c-1") }
            }
            try await group.waitForAll()
        }
        for _ in 0..<10 { _ = try await api.conversationDetails(ids: ["c-1", "c-2"]) }
        #expect(sim.statistics.tokensIssued == 1, "one refresh in flight however many requests wait")
        #expect(await api.tokenRefreshCount == 1)
        await sim.stop()
    }

    @Test func shortLivedTokensAreRefreshedBeforeTheyExpire() async throws {
        let sim = try simulator { $0.tokenLifetimeSeconds = 3 }
        let api = client(sim)
        // Calls until three tokens were issued (however slowly the calls run on a loaded
        // machine): each was renewed before the previous one expired, so the simulator never
        // had to refuse an expired token.
        var failures = 0
        let deadline = ContinuousClock.now + .seconds(60)
        while sim.statistics.tokensIssued < 3 && ContinuousClock.now < deadline {
            do { _ = try await api.conversationDetails(id: "c-1") } catch { failures += 1 }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(failures == 0)
        #expect(sim.statistics.tokensIssued >= 3, "a 3 s token is renewed")
        // A client that used each token until it failed would have been refused twice by now;
        // one refusal is a call that straddled the expiry on a loaded machine.
        #expect(sim.statistics.rejectedTokens <= 1, "renewed before it expired, not used until it failed")
        await sim.stop()
    }

    @Test func a401IsRecoveredWithOneForcedRefresh() async throws {
        let sim = try simulator()
        let api = client(sim)
        _ = try await api.conversationDetails(id: "c-1")
        sim.revokeTokens()
        let details = try await api.conversationDetails(id: "c-1")
        #expect(details["conversationId"]?.stringValue == "c-1")
        #expect(sim.statistics.tokensIssued == 2)
        await sim.stop()
    }

    @Test func badCredentialsAreAnAuthenticationError() async throws {
        let sim = try simulator()
        let api = client(sim, secret: "wrong")
        await #expect {
            _ = try await api.conversationDetails(id: "c-1")
        } throws: { error in
            guard case GenesysAPIError.authentication = error else { return false }
            return true
        }
        await sim.stop()
    }

    @Test func rateLimitHeadersAreHonouredAndA429IsWaitedOut() async throws {
        let sim = try simulator {
            $0.requestsPerMinute = 5
            $0.rateWindowSeconds = 4
        }
        // Alone, a client reads inin-ratelimit-* and pauses before the limit: no 429.
        let alone = client(sim)
        for _ in 0..<8 { _ = try await alone.conversationDetails(id: "c-1") }
        #expect(sim.statistics.rateLimited == 0)
        // Clients that have not seen the headers yet (as other instances would) exhaust the
        // window: the later ones get a 429, wait Retry-After (no attempt spent) and succeed.
        // A longer window here, so that 7 calls fit in it on a loaded machine too.
        // Long windows, so that the calls fit in one on a loaded machine.
        let busy = try simulator {
            $0.requestsPerMinute = 5
            $0.rateWindowSeconds = 30
        }
        let patient: (inout GenesysClientConfiguration) -> Void = { $0.maxRetryAfterSeconds = 60 }
        for _ in 0..<6 { _ = try await client(busy, configure: patient).conversationDetails(id: "c-1") }
        #expect(busy.statistics.rateLimited >= 1, "the simulator did answer 429")
        // Asked to wait longer than the maximum: give up with a rate-limit error.
        let full = try simulator {
            $0.requestsPerMinute = 5
            $0.rateWindowSeconds = 30
        }
        for _ in 0..<5 { _ = try await client(full).conversationDetails(id: "c-1") }
        let impatient = client(full) { $0.maxRetryAfterSeconds = 0.5 }
        await #expect {
            _ = try await impatient.conversationDetails(id: "c-1")
        } throws: { error in
            guard case GenesysAPIError.rateLimited = error else { return false }
            return true
        }
        await busy.stop()
        await full.stop()
        await sim.stop()
    }

    @Test func serverErrorsAreRetriedAndNotFoundIsNot() async throws {
        let sim = try simulator { $0.serverErrorRate = 0.5 }
        let api = client(sim, configure: fastRetries)
        for _ in 0..<10 { _ = try await api.conversationDetails(id: "c-1") }
        // Every other request is refused (spread evenly, not drawn at random): ten answers
        // took about twenty requests.
        #expect(sim.statistics.apiRequests >= 18, "the 503s were retried: \(sim.statistics.apiRequests) requests")
        await #expect {
            _ = try await client(sim, configure: fastRetries)
                .conversationDetails(id: "missing")
        } throws: { error in
            guard case GenesysAPIError.notFound = error else { return false }
            return true
        }
        await sim.stop()
    }

    @Test func droppedConnectionsAreRetried() async throws {
        let sim = try simulator { $0.connectionDropRate = 0.4 }
        let api = client(sim, configure: fastRetries)
        for _ in 0..<10 { _ = try await api.conversationDetails(id: "c-1") }
        #expect(sim.statistics.apiRequests >= 10)
        await sim.stop()
    }

    @Test func multiGetReturnsOnlyAvailableConversations() async throws {
        let sim = try simulator { $0.detailsDelayMilliseconds = 600 }
        sim.addConversation(
            ConversationDetailsFactory.details(
                conversationID: "c-late",
                queueID: "q-1",
                agentID: nil,
                start: Date(),
                waitMilliseconds: 5000,
                talkMilliseconds: 0,
                abandoned: true
            )
        )
        let api = client(sim)
        #expect(try await api.conversationDetails(ids: ["c-late"]).isEmpty, "not available yet")
        try await Task.sleep(for: .milliseconds(800))
        let found = try await api.conversationDetails(ids: ["c-late", "unknown"])
        #expect(found.map { $0["conversationId"]?.stringValue } == ["c-late"])
        await sim.stop()
    }

    /// The details query over an interval, every page of it: 230 conversations in two queues
    /// come back once each, only those that started in the interval, only the queue asked for
    /// when filtered.
    @Test func theDetailsQueryReadsEveryPageOfAnInterval() async throws {
        let sim = try simulator()
        let t0: Int64 = 1_767_225_600_000
        for i in 0..<230 {
            sim.addConversation(
                ConversationDetailsFactory.details(
                    ConversationDetailsFactory.Shape(
                        conversationID: "c-\(i)",
                        queueID: i % 2 == 0 ? "q-even" : "q-odd",
                        agentID: nil,
                        start: t0 + Int64(i) * 1000,
                        queueStart: t0 + Int64(i) * 1000,
                        queueEnd: t0 + Int64(i) * 1000 + 500,
                        end: t0 + Int64(i) * 1000 + 500
                    )
                )
            )
        }
        let api = client(sim)
        let all = try await api.conversationDetailsQuery(from: t0, to: t0 + 230_000)
        #expect(all.count == 230 && Set(all.compactMap { $0["conversationId"]?.stringValue }).count == 230)
        let some = try await api.conversationDetailsQuery(from: t0 + 10_000, to: t0 + 20_000)
        #expect(some.compactMap { $0["conversationId"]?.stringValue } == (10..<20).map { "c-\($0)" })
        let even = try await api.conversationDetailsQuery(from: t0, to: t0 + 230_000, queueIDs: ["q-even"])
        #expect(even.count == 115)
        #expect(try await api.conversationDetailsQuery(from: t0 + 300_000, to: t0 + 400_000).isEmpty)
        await sim.stop()
    }

    @Test func bulkPresenceReadsKnownUsers() async throws {
        let sim = try simulator()
        sim.setPresence(userID: "u-1", systemPresence: "ON_QUEUE")
        sim.setPresence(userID: "u-2", systemPresence: "BREAK", message: "lunch")
        let api = client(sim)
        let found = try await api.userPresences(ids: ["u-1", "u-2", "u-unknown"])
        #expect(found.compactMap { $0["userId"]?.stringValue } == ["u-1", "u-2"])
        #expect(found.last?["presenceDefinition"]?["systemPresence"]?.stringValue == "BREAK")
        #expect(found.last?["message"]?.stringValue == "lunch")
        #expect(try await api.userPresences(ids: []).isEmpty)
        await sim.stop()
    }

    /// Two clients (as two worker instances) share one budget through one store file: together
    /// they stay under the simulator's limit and never see a 429. Independent budgets would not.
    @Test func aSharedBudgetHoldsAcrossInstances() async throws {
        let sim = try simulator {
            $0.requestsPerMinute = 24
            $0.rateWindowSeconds = 6
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("budget-\(UUID()).sqlite").path
        let first = client(
            sim,
            budget: SharedRateBudget(
                store: try SQLiteIdempotencyStore(path: path),
                bucket: "sim-client",
                limit: 24,
                periodSeconds: 6,
                slices: 6
            )
        )
        let second = client(
            sim,
            budget: SharedRateBudget(
                store: try SQLiteIdempotencyStore(path: path),
                bucket: "sim-client",
                limit: 24,
                periodSeconds: 6,
                slices: 6
            )
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            for api in [first, second] {
                for _ in 0..<15 { group.addTask { _ = try await api.conversationDetails(id: "c-1") } }
            }
            try await group.waitForAll()
        }
        let stats = sim.statistics
        #expect(stats.rateLimited == 0)
        #expect(stats.maxPerMinute <= 24)
        #expect(stats.apiRequests == 30)
        await sim.stop()
    }
}

@Suite("Simulator routing endpoints (for the overflow controller)", .elasticThreads)
struct SimulatorRoutingTests {
    @Test func queueReadModifyWriteMembersAndObservations() async throws {
        let sim = try simulator()
        sim.addQueue(["id": "q-1", "name": "Support", "dateModified": "2026-01-01T00:00:00Z"])
        sim.setObservations(queueID: "q-1", waiting: 7, interacting: 3, longestWaitingMilliseconds: 95_000)
        let api = client(sim)
        func object(_ r: GenesysClient.Response) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: r.body) as? [String: Any])
        }
        var queue = try object(try await api.request("GET", "/api/v2/routing/queues/q-1"))
        #expect(queue["name"] as? String == "Support")
        queue["name"] = "Support (overflow)"
        let updated = try object(
            try await api.request(
                "PUT",
                "/api/v2/routing/queues/q-1",
                body: try JSONSerialization.data(withJSONObject: queue)
            )
        )
        #expect(updated["name"] as? String == "Support (overflow)")
        #expect(updated["dateModified"] as? String != "2026-01-01T00:00:00Z", "a PUT moves dateModified")

        let add = try JSONSerialization.data(withJSONObject: [["id": "u-1"], ["id": "u-2"]])
        _ = try await api.request("POST", "/api/v2/routing/queues/q-1/members", body: add)
        let remove = try JSONSerialization.data(withJSONObject: [["id": "u-1"], ["id": "absent"]])
        _ = try await api.request("POST", "/api/v2/routing/queues/q-1/members?delete=true", body: remove)
        let members = try object(try await api.request("GET", "/api/v2/routing/queues/q-1/members"))
        #expect((members["entities"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["u-2"])

        let query: [String: Any] = [
            "filter": ["type": "or", "predicates": [["dimension": "queueId", "value": "q-1"]]],
            "metrics": ["oWaiting", "oInteracting", "oLongestWaiting"],
        ]
        let observed = try object(
            try await api.request(
                "POST",
                "/api/v2/analytics/queues/observations/query",
                body: try JSONSerialization.data(withJSONObject: query)
            )
        )
        let data = ((observed["results"] as? [[String: Any]])?.first?["data"] as? [[String: Any]]) ?? []
        let waiting = data.first { $0["metric"] as? String == "oWaiting" }?["stats"] as? [String: Any]
        #expect(waiting?["count"] as? Int == 7)
        let ewt = try object(try await api.request("GET", "/api/v2/routing/queues/q-1/estimatedwaittime"))
        #expect((ewt["results"] as? [[String: Any]])?.isEmpty == false)
        await sim.stop()
    }

    /// Regression (issue 10): members were cut at the first page because the client stopped on
    /// a `total` field the current SDK schema no longer has.
    @Test func membersOfALargeQueueArePagedWithoutTotal() async throws {
        let sim = try simulator()
        sim.addQueue(["id": "q-big", "name": "Big"])
        let ids = Set((0..<250).map { "user-\($0)" })
        sim.setMembers("q-big", ids)
        let api = client(sim)
        let page =
            try JSONSerialization.jsonObject(
                with: try await api.request("GET", "/api/v2/routing/queues/q-big/members?pageSize=100&pageNumber=3")
                    .body
            ) as? [String: Any]
        #expect(page?["total"] == nil, "the listing has no total, as in the SDK schema")
        #expect(page?["pageCount"] as? Int == 3)
        #expect((page?["entities"] as? [Any])?.count == 50)
        #expect(page?["nextUri"] == nil)
        #expect(try await RoutingAPI(client: api).members("q-big") == ids)
        // Exactly 200: two full pages, then pageCount says stop (no empty third request).
        sim.setMembers("q-big", Set(ids.sorted().prefix(200)))
        #expect(try await RoutingAPI(client: api).members("q-big").count == 200)
        await sim.stop()
    }

    /// The simulator answers like Genesys, so a client mistake fails in our tests.
    @Test func simulatorIsAsStrictAsGenesys() async throws {
        let sim = try simulator()
        sim.addQueue(["id": "q-1", "name": "Support"])
        let api = client(sim)
        func status(_ method: String, _ path: String, _ body: Any?) async -> Int {
            do {
                let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
                return try await api.request(method, path, body: data).status
            } catch let error as GenesysAPIError {
                if case .client(let status, _, _) = error { return status }
                return -1
            } catch {
                return -2
            }
        }
        // A queue PUT without `name` is refused.
        #expect(await status("PUT", "/api/v2/routing/queues/q-1", ["description": "no name"]) == 400)
        // The details query needs an interval of at most 7 days and honours paging.
        #expect(await status("POST", "/api/v2/analytics/conversations/details/query", [:] as [String: Any]) == 400)
        let old = ["interval": "2001-01-01T00:00:00Z/2001-02-01T00:00:00Z"]
        #expect(await status("POST", "/api/v2/analytics/conversations/details/query", old) == 400)
        let start = Date().addingTimeInterval(-3600)
        for i in 0..<12 {
            sim.addConversation(
                ConversationDetailsFactory.details(
                    conversationID: "page-\(i)",
                    queueID: "q-1",
                    agentID: "a-1",
                    start: start.addingTimeInterval(Double(i)),
                    waitMilliseconds: 1000,
                    talkMilliseconds: 1000,
                    abandoned: false
                )
            )
        }
        let f = ISO8601DateFormatter()
        let interval = f.string(from: start.addingTimeInterval(-1)) + "/" + f.string(from: start.addingTimeInterval(60))
        let query: [String: Any] = ["interval": interval, "paging": ["pageSize": 5, "pageNumber": 3]]
        let answer =
            try JSONSerialization.jsonObject(
                with: try await api.request(
                    "POST",
                    "/api/v2/analytics/conversations/details/query",
                    body: try JSONSerialization.data(withJSONObject: query)
                ).body
            ) as? [String: Any]
        #expect(answer?["totalHits"] as? Int == 12, "only the conversations inside the interval")
        #expect(
            (answer?["conversations"] as? [[String: Any]])?.compactMap { $0["conversationId"] as? String } == [
                "page-10", "page-11",
            ]
        )
        // Estimated wait intents are the SDK's enum values.
        let ewt =
            try JSONSerialization.jsonObject(
                with: try await api.request("GET", "/api/v2/routing/queues/q-1/estimatedwaittime").body
            ) as? [String: Any]
        let intents = (ewt?["results"] as? [[String: Any]])?.compactMap { $0["intent"] as? String } ?? []
        #expect(!intents.isEmpty)
        let allowed: Set = ["ALL", "CALL", "CALLBACK", "CHAT", "EMAIL", "SOCIALEXPRESSION", "VIDEOCOMM", "MESSAGE"]
        #expect(intents.allSatisfy(allowed.contains), "\(intents)")
        await sim.stop()
    }
}
