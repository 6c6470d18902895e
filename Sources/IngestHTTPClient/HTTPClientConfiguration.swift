import IngestCore

/// Proxies for outbound requests, as `curl` and most tools read them from the environment:
/// `HTTPS_PROXY` for `https://` URLs, `HTTP_PROXY` for `http://` URLs (lower-case names too;
/// the lower-case one wins when both are set, as in curl), and `NO_PROXY`, a comma-separated
/// list of host names, domain suffixes (`.example.com` or `example.com`), IP addresses, or
/// `*` for every host.
public struct ProxySettings: Sendable, Equatable {
    public var httpsProxy: String?
    public var httpProxy: String?
    public var noProxy: String?

    public init(httpsProxy: String? = nil, httpProxy: String? = nil, noProxy: String? = nil) {
        self.httpsProxy = httpsProxy
        self.httpProxy = httpProxy
        self.noProxy = noProxy
    }

    public init(environment: EnvironmentReader) {
        func pick(_ name: String) -> String? {
            environment.string(name.lowercased()) ?? environment.string(name)
        }
        self.init(httpsProxy: pick("HTTPS_PROXY"), httpProxy: pick("HTTP_PROXY"), noProxy: pick("NO_PROXY"))
    }

    /// The proxy for `url`, or nil to connect directly.
    public func proxy(for url: String) -> String? {
        let lower = url.lowercased()
        let candidate: String?
        if lower.hasPrefix("https://") {
            candidate = httpsProxy
        } else if lower.hasPrefix("http://") {
            candidate = httpProxy
        } else {
            candidate = nil
        }
        guard let candidate, !candidate.isEmpty else { return nil }
        guard let host = Self.host(of: lower) else { return candidate }
        return bypasses(host: host) ? nil : candidate
    }

    /// Whether `NO_PROXY` names `host` (already lower-case).
    public func bypasses(host: String) -> Bool {
        guard let noProxy else { return false }
        for raw in noProxy.split(separator: ",") {
            var entry = raw.trimmingASCIIWhitespace().lowercased()
            if entry.isEmpty { continue }
            if entry == "*" { return true }
            // A port in the entry is not compared (curl ignores it too).
            if let colon = entry.lastIndex(of: ":"), !entry.contains("]"), entry.firstIndex(of: ":") == colon {
                entry = String(entry[..<colon])
            }
            if entry.hasPrefix(".") { entry.removeFirst() }
            if host == entry || host.hasSuffix("." + entry) { return true }
        }
        return false
    }

    /// The host of an absolute `scheme://[userinfo@]host[:port]/…` URL, without brackets.
    static func host(of url: String) -> String? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        var rest = url[schemeEnd.upperBound...]
        if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            return String(rest[rest.index(after: rest.startIndex)..<close])
        }
        if let colon = rest.firstIndex(of: ":") { rest = rest[..<colon] }
        return rest.isEmpty ? nil : String(rest)
    }
}

/// Settings of the process's outbound HTTP client (Genesys API, PagerDuty, TSDB, webhooks).
public struct HTTPClientConfiguration: Sendable, Equatable {
    /// Longest wait for a TCP (and TLS) connection.
    public var connectTimeoutMilliseconds: Int
    /// The whole-request deadline when a request names none.
    public var defaultTimeoutMilliseconds: Int
    /// A PEM file of extra CA certificates trusted in addition to the system ones (a company
    /// proxy that inspects TLS, a private PagerDuty or TSDB endpoint).
    public var caFile: String?
    public var proxy: ProxySettings
    /// Connections kept open per host (reused by later requests).
    public var maxConnectionsPerHost: Int
    /// Larger response bodies fail the request (a misbehaving server cannot exhaust memory).
    public var maxResponseBytes: Int
    public var userAgent: String

    public init(
        connectTimeoutMilliseconds: Int = 10_000,
        defaultTimeoutMilliseconds: Int = 30_000,
        caFile: String? = nil,
        proxy: ProxySettings = ProxySettings(),
        maxConnectionsPerHost: Int = 16,
        maxResponseBytes: Int = 64 * 1024 * 1024,
        userAgent: String = "genesys-ingest"
    ) {
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.defaultTimeoutMilliseconds = defaultTimeoutMilliseconds
        self.caFile = caFile
        self.proxy = proxy
        self.maxConnectionsPerHost = maxConnectionsPerHost
        self.maxResponseBytes = maxResponseBytes
        self.userAgent = userAgent
    }

    public static let variableNames = [
        "INGEST_HTTP_CLIENT_CA_FILE", "INGEST_HTTP_CLIENT_CONNECT_TIMEOUT_MS", "INGEST_HTTP_CLIENT_TIMEOUT_MS",
        "INGEST_HTTP_CLIENT_MAX_CONNECTIONS_PER_HOST", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
        "NO_PROXY", "no_proxy",
    ]

    /// `INGEST_HTTP_CLIENT_CA_FILE`, `INGEST_HTTP_CLIENT_CONNECT_TIMEOUT_MS`,
    /// `INGEST_HTTP_CLIENT_TIMEOUT_MS`, `INGEST_HTTP_CLIENT_MAX_CONNECTIONS_PER_HOST`, and the
    /// proxy variables (``ProxySettings``).
    public init(environment: EnvironmentReader) throws(ConfigurationError) {
        self.init(
            connectTimeoutMilliseconds: try environment.int(
                "INGEST_HTTP_CLIENT_CONNECT_TIMEOUT_MS",
                default: 10_000,
                range: 1...600_000
            ),
            defaultTimeoutMilliseconds: try environment.int(
                "INGEST_HTTP_CLIENT_TIMEOUT_MS",
                default: 30_000,
                range: 1...3_600_000
            ),
            caFile: environment.string("INGEST_HTTP_CLIENT_CA_FILE"),
            proxy: ProxySettings(environment: environment),
            maxConnectionsPerHost: try environment.int(
                "INGEST_HTTP_CLIENT_MAX_CONNECTIONS_PER_HOST",
                default: 16,
                range: 1...1024
            )
        )
    }
}
