// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "GenesysIngest",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ingest-gateway", targets: ["ingest-gateway"]),
        .executable(name: "ingest-worker", targets: ["ingest-worker"]),
        .executable(name: "ingestctl", targets: ["ingestctl"]),
        .executable(name: "ingest-bridge", targets: ["ingest-bridge"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // C libraries: each is imported by exactly one Swift module.
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "CSystemShims"),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // libcurl's variadic setopt/getinfo behind typed wrappers (a C target needs a .c file).
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),

        // The shared vocabulary, pure (no I/O, imports no project module): envelope inspection,
        // idempotency keys, queue observation events, auth schemes, configuration, store
        // protocols, header names. Layering is checked by Scripts/check-architecture.
        .target(name: "IngestCore"),
        // The only importer of COpenSSL.
        .target(name: "IngestCrypto", dependencies: ["COpenSSL", "IngestCore"]),
        // The only importer of CRdKafka.
        .target(
            name: "IngestKafka",
            dependencies: ["CRdKafka", "CSystemShims", "IngestCore", .product(name: "Logging", package: "swift-log")]
        ),
        // The durable local spool: checksummed segment files, group-committed fsyncs, and the
        // forwarder that sends them to Kafka in order.
        .target(
            name: "IngestSpool",
            dependencies: ["CSystemShims", "IngestCore", "IngestKafka", .product(name: "Logging", package: "swift-log")]
        ),
        // The only importer of libcurl: the one outbound HTTP client of every process.
        .target(name: "IngestHTTPClient", dependencies: ["CCurl", "IngestCore"]),
        // RFC 6455: the frame codec and handshake (pure), and the client connection over the
        // outbound client's byte stream (libcurl CONNECT_ONLY: one TLS stack for the product).
        .target(name: "IngestWebSocket", dependencies: ["IngestCore", "IngestCrypto", "IngestHTTPClient"]),
        // The only importer of SQLite and libpq: the store adapters (protocols are in IngestCore).
        .target(name: "IngestStore", dependencies: ["CSQLite", "CLibPQ", "IngestCore"]),
        // The worker runtime: consumer groups, idempotency, retries, dead letters.
        .target(
            name: "IngestWorker",
            dependencies: [
                "IngestCore", "IngestCrypto", "IngestKafka", "IngestStore", "IngestHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Genesys Cloud platform API client: OAuth, shared rate budget, SDK-like retries.
        .target(
            name: "GenesysAPI",
            dependencies: ["IngestCore", "IngestHTTPClient", .product(name: "Logging", package: "swift-log")]
        ),
        // A local Genesys Cloud stand-in (token, analytics details, routing queues, rate limits).
        .target(
            name: "GenesysSimulator",
            dependencies: [
                "IngestCore", "IngestCrypto", "IngestHTTP", "IngestHTTPClient", "IngestWebSocket",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The notification bridge: Genesys notification channels over WebSockets → the spool →
        // Kafka, with heartbeat watchdog and gap records.
        .target(
            name: "IngestBridge",
            dependencies: [
                "GenesysAPI", "IngestCore", "IngestCrypto", "IngestHTTP", "IngestKafka", "IngestSpool",
                "IngestWebSocket",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The reconcile handler: fills the bridge's gaps from the Genesys REST APIs.
        .target(
            name: "IngestReconciliation",
            dependencies: [
                "GenesysAPI", "IngestWorker", "IngestKafka", "IngestCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The conversation-details enrichment handler.
        .target(
            name: "IngestEnrichment",
            dependencies: [
                "GenesysAPI", "IngestWorker", "IngestKafka", "IngestStore", "IngestCore",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The HTTP/1.1 codec (pure) and the Dispatch event loops over epoll, listener, connections.
        .target(
            name: "IngestHTTP",
            dependencies: ["CSystemShims", "IngestCore", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "IngestGateway",
            dependencies: [
                "IngestCore", "IngestCrypto", "IngestHTTP", "IngestKafka", "IngestSpool",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The analytics feature, whole: model, alerts, export, configuration, handler, engine.
        .target(
            name: "IngestAnalytics",
            dependencies: [
                "IngestCore", "IngestHTTPClient", "IngestKafka", "IngestWorker",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The overflow feature, whole: model, controller, handler, audit (no other feature).
        .target(
            name: "IngestOverflow",
            dependencies: [
                "IngestCore", "IngestHTTPClient", "IngestKafka", "IngestWorker", "GenesysAPI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(name: "IngestLogging", dependencies: [.product(name: "Logging", package: "swift-log")]),
        .target(name: "IngestTesting", dependencies: ["IngestCore", "IngestCrypto", "IngestStore", "CSystemShims"]),

        // Thin executables: parse configuration, bootstrap, run.
        .executableTarget(
            name: "ingest-gateway",
            dependencies: [
                "IngestGateway", "IngestLogging", "IngestCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "ingest-bridge",
            dependencies: [
                "IngestBridge", "IngestLogging", "IngestCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "ingest-worker",
            dependencies: [
                "IngestKafka", "IngestLogging", "IngestWorker", "IngestCore", "IngestEnrichment", "GenesysAPI",
                "IngestHTTPClient", "IngestReconciliation",
                "IngestStore", "IngestAnalytics", "IngestOverflow",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The ops console: dead letters, redrive jobs and their audit, server-rendered on our
        // HTTP server (served by `ingestctl console serve`).
        .target(
            name: "IngestConsole",
            dependencies: [
                "IngestCore", "IngestCrypto", "IngestHTTP", "IngestKafka", "IngestWorker",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "ingestctl",
            dependencies: [
                "IngestSpool", "IngestWorker", "IngestConsole",
                "IngestCore", "IngestCrypto", "IngestKafka", "GenesysSimulator", "IngestHTTPClient",
                "IngestStore", "IngestAnalytics", "IngestOverflow",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .testTarget(name: "IngestCoreTests", dependencies: ["IngestCore", "IngestCrypto"]),
        .testTarget(name: "IngestAnalyticsTests", dependencies: ["IngestAnalytics", "IngestCore"]),
        .testTarget(name: "IngestOverflowTests", dependencies: ["IngestOverflow", "IngestCore"]),
        .testTarget(name: "IngestCryptoTests", dependencies: ["IngestCrypto", "IngestCore"]),
        .testTarget(name: "IngestKafkaTests", dependencies: ["IngestKafka", "IngestTesting"]),
        // The stores on both SQLite and PostgreSQL (real PostgreSQL when INGEST_TEST_POSTGRES_URL is set).
        .testTarget(name: "IngestStoreTests", dependencies: ["IngestStore", "IngestCore", "IngestTesting"]),
        .testTarget(name: "IngestSpoolTests", dependencies: ["IngestSpool", "IngestKafka", "IngestTesting"]),
        .testTarget(
            name: "GenesysAPITests",
            dependencies: ["GenesysAPI", "GenesysSimulator", "IngestStore", "IngestTesting"]
        ),
        .testTarget(
            name: "IngestEnrichmentTests",
            dependencies: [
                "IngestEnrichment", "GenesysSimulator", "GenesysAPI", "IngestKafka", "IngestTesting", "IngestCore",
                "IngestStore", "IngestWorker",
            ]
        ),
        .testTarget(
            name: "IngestHTTPClientTests",
            dependencies: ["IngestHTTPClient", "IngestHTTP", "IngestCore", "IngestTesting"]
        ),
        .testTarget(name: "IngestHTTPTests", dependencies: ["IngestHTTP", "IngestCore", "IngestTesting"]),
        .testTarget(name: "IngestBridgeTests", dependencies: ["IngestBridge"]),
        .testTarget(
            name: "IngestConsoleTests",
            dependencies: ["IngestConsole", "IngestCore", "IngestCrypto", "IngestKafka", "IngestWorker", "IngestStore"]
        ),
        .testTarget(
            name: "IngestReconciliationTests",
            dependencies: ["IngestReconciliation", "IngestCore", "GenesysSimulator", "GenesysAPI", "IngestTesting"]
        ),
        .testTarget(
            name: "IngestWebSocketTests",
            dependencies: ["IngestWebSocket", "IngestHTTPClient", "IngestCrypto", "IngestTesting"]
        ),
        .testTarget(name: "IngestGatewayTests", dependencies: ["IngestGateway", "IngestCore"]),
        .testTarget(name: "IngestWorkerTests", dependencies: ["IngestWorker", "IngestCore"]),
        // Process-level suites: real Tansu brokers, real PostgreSQL, real gateway and worker
        // processes, the simulator; the stores on both SQLite and PostgreSQL.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "IngestGateway", "IngestWorker", "IngestStore", "IngestKafka", "IngestCore", "IngestCrypto",
                "IngestTesting", "IngestAnalytics", "GenesysSimulator", "IngestOverflow", "GenesysAPI",
                "IngestEnrichment", "IngestHTTPClient", "IngestBridge", "IngestReconciliation", "IngestConsole",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
