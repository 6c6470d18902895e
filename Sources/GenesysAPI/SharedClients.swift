import IngestCore
import Logging

extension GenesysClient {
    /// One Genesys client per OAuth client in this process (one token cache, one rate budget),
    /// whichever features use it; the budget is counted in `budgetStore` when given, so it is
    /// shared with every other instance using the same OAuth client too.
    private static let registry = LockedValue<[String: GenesysClient]>([:])

    /// The process's client for `configuration`'s OAuth client, created on first use.
    public static func shared(
        _ configuration: GenesysClientConfiguration,
        limit: Int,
        periodSeconds: Int,
        budgetStore: (any RateBudgetStore)?,
        logger: Logger
    ) -> GenesysClient {
        let key = "\(configuration.apiBaseURL)|\(configuration.clientID)"
        return registry.withLock { clients in
            if let existing = clients[key] { return existing }
            let client = GenesysClient(
                configuration: configuration,
                budget: SharedRateBudget(
                    store: budgetStore ?? InMemoryRateBudgetStore(),
                    bucket: configuration.clientID,
                    limit: limit,
                    periodSeconds: Double(periodSeconds)
                ),
                logger: logger
            )
            clients[key] = client
            return client
        }
    }
}
