import Foundation
import Testing

/// The Grafana dashboards in `Scripts/grafana/` and the metrics real processes export: a panel
/// that queries a name no process exports draws an empty graph forever, so the process-level
/// tests check each dashboard against a real `/metrics` page.
enum DashboardCoverage {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Scripts/grafana")

    /// The product's metric names (`ingest_…`, `genesys_…`) that a dashboard's panel queries use.
    static func queriedMetrics(dashboard name: String) throws -> Set<String> {
        let data = try Data(contentsOf: directory.appendingPathComponent("\(name).json"))
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let panels = root["panels"] as? [[String: Any]]
        else { throw DashboardError("\(name).json has no panels") }
        var names: Set<String> = []
        for panel in panels {
            for target in panel["targets"] as? [[String: Any]] ?? [] {
                guard let expr = target["expr"] as? String else { continue }
                names.formUnion(metricNames(inQuery: expr))
            }
        }
        return names
    }

    /// Identifiers of a PromQL expression that name our metrics (label values are quoted, so
    /// they are skipped; functions and keywords do not start with the prefixes).
    static func metricNames(inQuery expr: String) -> Set<String> {
        var names: Set<String> = []
        var current = ""
        var inQuotes = false
        for ch in expr + " " {
            if ch == "\"" { inQuotes.toggle() }
            if !inQuotes, ch.isLetter || ch.isNumber || ch == "_" || ch == ":" {
                current.append(ch)
                continue
            }
            if current.hasPrefix("ingest_") || current.hasPrefix("genesys_") { names.insert(current) }
            current = ""
        }
        return names
    }

    /// The metric names a Prometheus text page has samples for.
    static func exportedMetrics(_ page: String) -> Set<String> {
        var names: Set<String> = []
        for line in page.split(separator: "\n") where !line.hasPrefix("#") {
            let name = line.prefix { $0 != "{" && $0 != " " }
            if !name.isEmpty { names.insert(String(name)) }
        }
        return names
    }

    /// Records an issue for every metric the dashboard queries (restricted to names with one of
    /// `prefixes`) that the process does not export. `page` reads its `/metrics`; it is read
    /// again for up to `seconds` while names are missing (a series appears with the first
    /// event that sets it: an observation a second after the load began, say).
    static func expectExported(
        dashboard: String,
        prefixes: [String],
        excluding excluded: [String] = [],
        within seconds: Double = 20,
        sourceLocation: SourceLocation = #_sourceLocation,
        page: () async throws -> String
    ) async throws {
        let queried = try queriedMetrics(dashboard: dashboard).filter { name in
            prefixes.contains { name.hasPrefix($0) } && !excluded.contains { name.hasPrefix($0) }
        }
        #expect(
            !queried.isEmpty,
            "dashboard \(dashboard) queries metrics with \(prefixes)",
            sourceLocation: sourceLocation
        )
        let deadline = ContinuousClock.now + .seconds(seconds)
        var missing = queried.subtracting(exportedMetrics(try await page())).sorted()
        while !missing.isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(250))
            missing = queried.subtracting(exportedMetrics(try await page())).sorted()
        }
        #expect(
            missing.isEmpty,
            "dashboard \(dashboard) queries metrics the process does not export: \(missing)",
            sourceLocation: sourceLocation
        )
    }

    struct DashboardError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }
}

@Suite("Grafana dashboards parse")
struct DashboardParsingTests {
    @Test func queriesNameTheProductsMetricsOnly() {
        #expect(
            DashboardCoverage.metricNames(
                inQuery: #"histogram_quantile(0.99, sum by (le) (rate(ingest_x_bucket{a="genesys_not_a_metric"}[5m])))"#
            ) == ["ingest_x_bucket"]
        )
        #expect(
            DashboardCoverage.exportedMetrics("# TYPE ingest_a counter\ningest_a{x=\"1\"} 2\ningest_b 3\n")
                == ["ingest_a", "ingest_b"]
        )
    }

    @Test(arguments: ["gateway", "worker", "bridge", "queues"])
    func everyDashboardQueriesProductMetrics(name: String) throws {
        #expect(try DashboardCoverage.queriedMetrics(dashboard: name).count >= 5)
    }
}
