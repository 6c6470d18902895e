import Foundation
import IngestCore
import Testing

@testable import IngestAnalytics

@Suite("Alert rules, hysteresis and line protocol")
struct QueueAlertTests {
    let windows = [5, 15, 60]

    @Test func parsesRulesWithOptions() throws {
        let rules = try AlertRule.parseList(
            "slow: p90_wait > 120 clear 90 for 60 hold 120 severity critical; "
                + "sl: service_level < 0.8 clear 0.85 window 15 queue q-7; backlog: waiting > 10",
            windows: windows
        )
        #expect(rules.count == 3)
        #expect(rules[0].name == "slow" && rules[0].metric == .p90Wait && rules[0].direction == .above)
        #expect(rules[0].trigger == 120 && rules[0].clear == 90 && rules[0].forSeconds == 60)
        #expect(rules[0].holdSeconds == 120 && rules[0].severity == "critical" && rules[0].windowMinutes == 5)
        #expect(rules[1].direction == .below && rules[1].windowMinutes == 15 && rules[1].queueID == "q-7")
        #expect(rules[2].metric == .waiting && rules[2].clear == 10)
    }

    @Test(arguments: [
        ("p90_wait > 120", "has no name"),
        ("x: p91_wait > 1", "unknown metric 'p91_wait'"),
        ("x: p90_wait >= 1", "expected '>' or '<'"),
        ("x: p90_wait > fast", "'fast' is not a number"),
        ("x: p90_wait > 120 clear 150", "clear 150.0 must not be above the trigger 120.0"),
        ("x: service_level < 0.8 clear 0.7", "must not be below the trigger"),
        ("x: p90_wait > 120 window 7", "window 7 is not one of the configured windows"),
        ("x: p90_wait > 120 severity loud", "severity must be"),
        ("x: p90_wait > 120 colour red", "unknown option 'colour'"),
        ("x: p90_wait > 120 for", "'for' needs a value"),
        ("x: waiting > 1; x: waiting > 2", "defined twice"),
    ])
    func rejectsBadRulesWithAReason(spec: String, reason: String) {
        #expect {
            _ = try AlertRule.parseList(spec, windows: windows)
        } throws: { error in
            (error as? ConfigurationError)?.message.contains(reason) == true
        }
    }

    @Test func triggersOnceAfterTheHoldAndResolvesWithHysteresis() throws {
        let rule = try #require(AlertRule.parseList("slow: p90_wait > 100 clear 80 for 10 hold 20", windows: [5]).first)
        var e = AlertEvaluator(rules: [rule])
        func feed(_ value: Double?, at seconds: Int64) -> AlertTransition.Action? {
            e.evaluate(rule, queueID: "q", mediaType: "voice", value: value, nowMilliseconds: seconds * 1000)?.action
        }
        #expect(feed(90, at: 0) == nil)
        #expect(feed(150, at: 1) == nil)  // pending
        #expect(feed(150, at: 5) == nil)
        #expect(feed(90, at: 6) == nil)  // dipped below: pending restarts
        #expect(feed(150, at: 7) == nil)
        #expect(feed(150, at: 17) == .trigger)
        #expect(feed(200, at: 18) == nil)  // firing: no second trigger
        #expect(feed(90, at: 19) == nil)  // between clear and trigger: still firing
        #expect(feed(70, at: 20) == nil)  // clearing starts
        #expect(feed(95, at: 30) == nil)  // back above clear: clearing cancelled
        #expect(feed(70, at: 31) == nil)
        #expect(feed(70, at: 50) == nil)
        #expect(feed(70, at: 51) == .resolve)
        #expect(feed(70, at: 52) == nil)
        #expect(e.firingCount == 0)
    }

    @Test func noDataNeverTriggersAndClearsAFiringAlert() throws {
        let rule = try #require(AlertRule.parseList("slow: p90_wait > 100 hold 0", windows: [5]).first)
        var e = AlertEvaluator(rules: [rule])
        #expect(e.evaluate(rule, queueID: "q", mediaType: "voice", value: nil, nowMilliseconds: 0) == nil)
        let t = e.evaluate(rule, queueID: "q", mediaType: "voice", value: 120, nowMilliseconds: 1000)
        #expect(t?.action == .trigger && t?.dedupKey == "genesys-ingest/slow/q/voice")
        #expect(
            e.evaluate(rule, queueID: "q", mediaType: "voice", value: nil, nowMilliseconds: 2000)?.action == .resolve
        )
    }

    @Test func queueScopedRuleIgnoresOtherQueues() throws {
        let rule = try #require(AlertRule.parseList("b: waiting > 1 queue q-1", windows: [5]).first)
        var e = AlertEvaluator(rules: [rule])
        #expect(e.evaluate(rule, queueID: "q-2", mediaType: "voice", value: 50, nowMilliseconds: 0) == nil)
        #expect(e.evaluate(rule, queueID: "q-1", mediaType: "voice", value: 50, nowMilliseconds: 0)?.action == .trigger)
    }

    @Test func lineProtocolEscapesAndSkipsNonFiniteFields() {
        let line = InfluxLineProtocol.line(
            measurement: "genesys queue",
            tags: [("queue", "a,b=c d"), ("media", "voice")],
            fields: [("p90", .double(12.5)), ("bad", .double(.nan)), ("offered", .integer(3))],
            timeMilliseconds: 1_700_000_000_000
        )
        #expect(line == #"genesys\ queue,queue=a\,b\=c\ d,media=voice p90=12.5,offered=3i 1700000000000"#)
        #expect(
            InfluxLineProtocol.line(
                measurement: "m",
                tags: [],
                fields: [("x", .double(.infinity))],
                timeMilliseconds: 1
            ) == nil
        )
    }

    @Test func observationsRoundTripThroughTheirSideEffectForm() {
        let o = WaitObservation(
            queueID: "q-1",
            mediaType: "voice",
            eventTimeMilliseconds: 1_700_000_000_123,
            waitMilliseconds: 4321.5,
            outcome: .abandoned
        )
        #expect(WaitObservation(encoded: o.encoded) == o)
        #expect(WaitObservation(encoded: "q\tvoice\tnot-a-time\t1\tANSWERED") == nil)
    }

    @Test func analyticsConfigurationReadsRulesAndRejectsBadValues() throws {
        func config(_ values: [String: String]) throws -> AnalyticsConfiguration {
            try AnalyticsConfiguration(environment: EnvironmentReader(values) { _ in [] })
        }
        let c = try config([
            "INGEST_ANALYTICS_WINDOWS": "1,5,15", "INGEST_ANALYTICS_ALERTS": "s: p90_wait > 60 window 1",
            "INGEST_PAGERDUTY_ROUTING_KEY": "rk",
        ])
        #expect(c.aggregator.windowMinutes == [1, 5, 15] && c.alertRules.first?.windowMinutes == 1)
        #expect(c.pagerDutyRoutingKey == "rk" && c.tsdbURL == nil)
        #expect(throws: ConfigurationError.self) { try config(["INGEST_ANALYTICS_WINDOWS": "7"]) }
        #expect(throws: ConfigurationError.self) { try config(["INGEST_ANALYTICS_INTERVAL_MINUTES": "7"]) }
        #expect(throws: ConfigurationError.self) { try config(["INGEST_ANALYTICS_SOURCE": "magic"]) }
        #expect(throws: ConfigurationError.self) { try config(["INGEST_TSDB_URL": "influx:8086"]) }
        #expect(throws: ConfigurationError.self) {
            try config(["INGEST_ANALYTICS_ALERTS": "s: p90_wait > 60 window 30"])
        }
    }
}
