import IngestCore

/// An alert rule over a queue's figures, e.g. "p90 wait above 120 s on the 5-minute window".
///
/// Text form (one rule; several are separated by `;`):
///
///     <name>: <metric> <'>'|'<'> <trigger> [clear <value>] [for <seconds>] [hold <seconds>]
///             [window <minutes>] [severity critical|error|warning|info] [queue <queueId>]
///             [min-offered <count>]
///
/// Wait metrics are in seconds, rates are fractions (0.2 = 20 %):
/// `p50_wait`, `p90_wait`, `p95_wait`, `p99_wait`, `abandon_rate`, `service_level`, and the
/// live observations `waiting` (oWaiting) and `longest_waiting` (oLongestWaiting, seconds).
public struct AlertRule: Sendable, Equatable {
    public enum Metric: String, Sendable, CaseIterable {
        case p50Wait = "p50_wait"
        case p90Wait = "p90_wait"
        case p95Wait = "p95_wait"
        case p99Wait = "p99_wait"
        case abandonRate = "abandon_rate"
        case serviceLevel = "service_level"
        case waiting
        case longestWaiting = "longest_waiting"

        /// Whether the metric comes from live observations rather than the wait windows.
        public var isObservation: Bool { self == .waiting || self == .longestWaiting }
    }

    public enum Direction: String, Sendable {
        case above = ">"
        case below = "<"
    }

    public var name: String
    public var metric: Metric
    public var direction: Direction
    /// The rule fires when the value is beyond this (above or below, per `direction`)...
    public var trigger: Double
    /// ...and resolves only once it is back on the other side of this (hysteresis).
    public var clear: Double
    /// The condition must hold this long before the alert triggers.
    public var forSeconds: Double = 0
    /// The value must stay clear this long before the alert resolves.
    public var holdSeconds: Double = 30
    public var windowMinutes = 5
    public var severity = "warning"
    /// Only this queue; `nil` applies the rule to every queue.
    public var queueID: String?
    /// Window rules ignore windows with fewer offered interactions (no alert on one caller).
    public var minimumOffered = 1

    public init(name: String, metric: Metric, direction: Direction, trigger: Double, clear: Double) {
        self.name = name
        self.metric = metric
        self.direction = direction
        self.trigger = trigger
        self.clear = clear
    }

    /// Parses rules in the text form; the error names the rule and what is wrong with it.
    public static func parseList(_ text: String, windows: [Int]) throws(ConfigurationError) -> [AlertRule] {
        var rules: [AlertRule] = []
        // Rules may be spread over lines (e.g. a folded YAML value).
        let flat = String(text.map { $0 == "\n" || $0 == "\r" || $0 == "\t" ? " " : $0 })
        for part in flat.split(separator: ";") {
            let spec = part.trimmingASCIIWhitespace()
            if spec.isEmpty { continue }
            let rule = try parse(spec, windows: windows)
            if rules.contains(where: { $0.name == rule.name }) {
                throw ConfigurationError("alert rule '\(rule.name)' is defined twice")
            }
            rules.append(rule)
        }
        return rules
    }

    static func parse(_ spec: String, windows: [Int]) throws(ConfigurationError) -> AlertRule {
        guard let colon = spec.firstIndex(of: ":") else {
            throw ConfigurationError("alert rule '\(spec)' has no name: write '<name>: <metric> > <value> ...'")
        }
        let name = spec[..<colon].trimmingASCIIWhitespace()
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw ConfigurationError("alert rule name '\(name)' must be letters, digits, '-' or '_'")
        }
        let words = spec[spec.index(after: colon)...].split(separator: " ").map(String.init)
        func fail(_ why: String) -> ConfigurationError { ConfigurationError("alert rule '\(name)': \(why)") }
        guard words.count >= 3 else { throw fail("expected '<metric> > <value>' after the name") }
        guard let metric = Metric(rawValue: words[0]) else {
            throw fail(
                "unknown metric '\(words[0])'; known: \(Metric.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        guard let direction = Direction(rawValue: words[1]) else { throw fail("expected '>' or '<' after the metric") }
        guard let trigger = Double(words[2]) else { throw fail("'\(words[2])' is not a number") }
        var rule = AlertRule(name: name, metric: metric, direction: direction, trigger: trigger, clear: trigger)
        var i = 3
        while i < words.count {
            guard i + 1 < words.count else { throw fail("'\(words[i])' needs a value") }
            let value = words[i + 1]
            func number() throws(ConfigurationError) -> Double {
                guard let n = Double(value), n >= 0 else { throw fail("'\(words[i]) \(value)': not a number ≥ 0") }
                return n
            }
            switch words[i] {
            case "clear": rule.clear = try number()
            case "for": rule.forSeconds = try number()
            case "hold": rule.holdSeconds = try number()
            case "window":
                guard let m = Int(value), windows.contains(m) else {
                    throw fail("window \(value) is not one of the configured windows \(windows) (minutes)")
                }
                rule.windowMinutes = m
            case "severity":
                guard ["critical", "error", "warning", "info"].contains(value) else {
                    throw fail("severity must be critical, error, warning or info")
                }
                rule.severity = value
            case "queue": rule.queueID = value
            case "min-offered": rule.minimumOffered = Int(try number())
            default:
                throw fail("unknown option '\(words[i])' (clear, for, hold, window, severity, queue, min-offered)")
            }
            i += 2
        }
        if !windows.contains(rule.windowMinutes) && !metric.isObservation {
            throw fail("window \(rule.windowMinutes) is not one of the configured windows \(windows) (minutes)")
        }
        switch direction {
        case .above where rule.clear > rule.trigger:
            throw fail("clear \(rule.clear) must not be above the trigger \(rule.trigger)")
        case .below where rule.clear < rule.trigger:
            throw fail("clear \(rule.clear) must not be below the trigger \(rule.trigger)")
        default: break
        }
        return rule
    }

    /// Whether `value` breaches the trigger.
    public func breaches(_ value: Double) -> Bool {
        direction == .above ? value > trigger : value < trigger
    }

    /// Whether `value` is clear of the alert (past the clear threshold).
    public func isClear(_ value: Double) -> Bool {
        direction == .above ? value <= clear : value >= clear
    }
}

/// What the evaluator decided for one queue and rule.
public struct AlertTransition: Sendable, Equatable {
    public enum Action: String, Sendable {
        case trigger
        case resolve
    }

    public var action: Action
    public var rule: String
    public var queueID: String
    public var mediaType: String
    public var value: Double
    public init(action: Action, rule: String, queueID: String, mediaType: String, value: Double) {
        self.action = action
        self.rule = rule
        self.queueID = queueID
        self.mediaType = mediaType
        self.value = value
    }

    /// Stable per queue, media type and rule: PagerDuty groups triggers and resolves by it.
    public var dedupKey: String { "genesys-ingest/\(rule)/\(queueID)/\(mediaType)" }
}

/// Alert state per rule and queue with hysteresis: a rule triggers once its condition has
/// held for `forSeconds`, stays firing while the value is between the clear and trigger
/// thresholds, and resolves after the value has been clear for `holdSeconds`. A pure value type.
public struct AlertEvaluator: Sendable {
    enum State: Sendable, Equatable {
        case ok
        case pending(sinceMilliseconds: Int64)
        case firing
        case clearing(sinceMilliseconds: Int64)
    }

    struct Key: Hashable, Sendable {
        var rule: String
        var queueID: String
        var mediaType: String
    }

    public let rules: [AlertRule]
    private var states: [Key: State] = [:]

    public init(rules: [AlertRule]) {
        self.rules = rules
    }

    /// Alerts currently firing (for the gauge and status).
    public var firingCount: Int {
        states.values.count { if case .firing = $0 { true } else if case .clearing = $0 { true } else { false } }
    }

    /// Marks an alert as firing without a transition (it fired on another instance, which
    /// owned the queue before): it resolves here once its value stays clear.
    public mutating func restoreFiring(rule: String, queueID: String, mediaType: String) {
        states[Key(rule: rule, queueID: queueID, mediaType: mediaType)] = .firing
    }

    /// Forgets the states of the queues `leaving` selects (no longer evaluated here).
    public mutating func forget(where leaving: (_ queue: (queueID: String, mediaType: String)) -> Bool) {
        states = states.filter { !leaving(($0.key.queueID, $0.key.mediaType)) }
    }

    /// Feeds the current value of `rule` for one queue and returns the transition it causes,
    /// if any. `nil` means no data (e.g. nobody queued in the window): it never triggers, and
    /// counts as clear for a firing alert.
    public mutating func evaluate(
        _ rule: AlertRule,
        queueID: String,
        mediaType: String,
        value: Double?,
        nowMilliseconds now: Int64
    ) -> AlertTransition? {
        if let only = rule.queueID, only != queueID { return nil }
        let key = Key(rule: rule.name, queueID: queueID, mediaType: mediaType)
        let state = states[key] ?? .ok
        func transition(_ action: AlertTransition.Action) -> AlertTransition {
            AlertTransition(
                action: action,
                rule: rule.name,
                queueID: queueID,
                mediaType: mediaType,
                value: value ?? .nan
            )
        }
        switch state {
        case .ok, .pending:
            guard let value, rule.breaches(value) else {
                states[key] = nil
                return nil
            }
            let since: Int64
            if case .pending(let s) = state { since = s } else { since = now }
            if Double(now - since) >= rule.forSeconds * 1000 {
                states[key] = .firing
                return transition(.trigger)
            }
            states[key] = .pending(sinceMilliseconds: since)
            return nil
        case .firing, .clearing:
            guard value.map(rule.isClear) ?? true else {
                states[key] = .firing
                return nil
            }
            let since: Int64
            if case .clearing(let s) = state { since = s } else { since = now }
            if Double(now - since) >= rule.holdSeconds * 1000 {
                states[key] = nil
                return transition(.resolve)
            }
            states[key] = .clearing(sinceMilliseconds: since)
            return nil
        }
    }
}

/// An alert's state as every instance sees it (a shared document keyed by the dedup key):
/// whoever records a transition first sends it to PagerDuty.
struct AlertState: Sendable, Equatable {
    var firing: Bool
    var rule: String
    var queueID: String
    var mediaType: String

    init(firing: Bool, rule: String, queueID: String, mediaType: String) {
        self.firing = firing
        self.rule = rule
        self.queueID = queueID
        self.mediaType = mediaType
    }

    /// `firing|resolved <TAB> rule <TAB> queue <TAB> media` (names hold no tabs: rules are
    /// identifiers, queue ids UUIDs).
    init?(_ body: String) {
        let f = body.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
        guard f.count == 4, f[0] == "firing" || f[0] == "resolved" else { return nil }
        self.init(firing: f[0] == "firing", rule: f[1], queueID: f[2], mediaType: f[3])
    }

    var body: String { "\(firing ? "firing" : "resolved")\t\(rule)\t\(queueID)\t\(mediaType)" }
}
