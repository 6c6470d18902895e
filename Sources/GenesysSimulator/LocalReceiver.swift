import Foundation
import IngestCore
import IngestHTTP
import Synchronization

/// Stands in for PagerDuty and a time-series database in tests and local runs, and records
/// what it got. Served by the simulator under:
///
/// - `POST /pagerduty/v2/enqueue` — the Events API v2 (validated like PagerDuty: 202 with
///   `{"status":"success","dedup_key":…}`, 400 `invalid event` otherwise);
/// - `POST /tsdb/write` (and `/tsdb/api/v2/write`) — InfluxDB line protocol, 204;
/// - `GET /receiver/pagerduty` — the accepted events, oldest first;
/// - `GET /receiver/tsdb` — the accepted lines;
/// - `POST /webhook`, `GET /receiver/webhook` — any JSON webhook (e.g. the overflow audit);
/// - `POST /receiver/faults?target=pagerduty|tsdb&count=N&status=429&retryAfter=1` — fail the
///   next N requests with that status (and `Retry-After`).
public final class LocalReceiver: Sendable {
    struct Fault {
        var remaining: Int
        var status: Int
        var retryAfter: String?
    }

    struct State {
        var pagerDuty: [JSONValue] = []
        var webhooks: [JSONValue] = []
        var lines: [String] = []
        var faults: [String: Fault] = [:]
        var refused: [String: Int] = [:]
    }

    final class Box: @unchecked Sendable {
        var value = State()
    }

    private let state = LockedValue(Box())
    private let maxLines = 1_000_000

    public init() {}

    /// Accepted PagerDuty events (JSON objects), oldest first.
    public var pagerDutyEvents: [JSONValue] { state.withLock { $0.value.pagerDuty } }
    public var tsdbLines: [String] { state.withLock { $0.value.lines } }
    /// JSON bodies POSTed to `/webhook`, oldest first (e.g. overflow audit records).
    public var webhookBodies: [JSONValue] { state.withLock { $0.value.webhooks } }

    /// Fails the next `count` requests to `target` ("pagerduty" or "tsdb") with `status`.
    public func injectFaults(target: String, count: Int, status: Int, retryAfter: String? = nil) {
        state.withLock { $0.value.faults[target] = Fault(remaining: count, status: status, retryAfter: retryAfter) }
    }

    /// Requests refused by injected faults, per target.
    public func refusedCount(_ target: String) -> Int { state.withLock { $0.value.refused[target] ?? 0 } }

    /// Answers `request` when its path belongs to the receiver; `nil` otherwise.
    func response(_ request: HTTPRequest) -> HTTPResponse? {
        let target = String(request.target)
        let path = String(request.path)
        switch (request.method, path) {
        case ("POST", "/pagerduty/v2/enqueue"):
            if let fault = takeFault("pagerduty") { return fault }
            return enqueue(request.body)
        case ("POST", "/tsdb/write"), ("POST", "/tsdb/api/v2/write"):
            if let fault = takeFault("tsdb") { return fault }
            let text = String(decoding: request.body, as: UTF8.self)
            let lines = text.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            for line in lines where line.split(separator: " ").count < 3 {
                return Self.json(400, ["code": "invalid", "message": "unable to parse '\(line)'"])
            }
            state.withLock { box in
                box.value.lines += lines
                if box.value.lines.count > maxLines { box.value.lines.removeFirst(box.value.lines.count - maxLines) }
            }
            return HTTPResponse(status: HTTPStatus(code: 204, reason: "No Content"), headers: [], body: [])
        case ("POST", "/webhook"):
            guard let object = JSONValue.object(from: request.body) else {
                return Self.json(400, ["message": "expected a JSON object"])
            }
            state.withLock { $0.value.webhooks.append(.object(object)) }
            return Self.json(200, ["status": "ok"])
        case ("GET", "/receiver/webhook"):
            return Self.json(200, ["bodies": webhookBodies.map(\.foundationObject)])
        case ("GET", "/receiver/pagerduty"):
            return Self.json(200, ["events": pagerDutyEvents.map(\.foundationObject)])
        case ("GET", "/receiver/tsdb"):
            return Self.json(200, ["lines": tsdbLines])
        case ("POST", "/receiver/faults"):
            let q = GenesysSimulator.query(target)
            guard let name = q["target"], ["pagerduty", "tsdb"].contains(name),
                let count = q["count"].flatMap(Int.init),
                let status = q["status"].flatMap(Int.init)
            else {
                return Self.json(400, ["message": "use ?target=pagerduty|tsdb&count=N&status=S[&retryAfter=s]"])
            }
            injectFaults(target: name, count: count, status: status, retryAfter: q["retryAfter"])
            return Self.json(200, ["status": "ok"])
        default:
            return path.hasPrefix("/pagerduty/") || path.hasPrefix("/tsdb/") || path.hasPrefix("/receiver/")
                ? Self.json(404, ["message": "not found"]) : nil
        }
    }

    private func takeFault(_ target: String) -> HTTPResponse? {
        let fault: Fault? = state.withLock { box in
            guard var f = box.value.faults[target], f.remaining > 0 else { return nil }
            f.remaining -= 1
            box.value.faults[target] = f
            box.value.refused[target, default: 0] += 1
            return f
        }
        guard let fault else { return nil }
        var headers: [(String, String)] = [("Content-Type", "application/json")]
        if let r = fault.retryAfter { headers.append(("Retry-After", r)) }
        return HTTPResponse(
            status: HTTPStatus(code: fault.status, reason: fault.status == 429 ? "Too Many Requests" : "Error"),
            headers: headers,
            body: Array(#"{"status":"throttled","message":"injected fault"}"#.utf8)
        )
    }

    /// PagerDuty's own validation of an Events API v2 request.
    private func enqueue(_ body: [UInt8]) -> HTTPResponse {
        guard let event = JSONValue.object(from: body) else {
            return Self.json(
                400,
                ["status": "invalid event", "message": "Event object is invalid", "errors": ["bad JSON"]]
            )
        }
        func text(_ value: JSONValue?) -> String { value?.stringValue ?? "" }
        var errors: [String] = []
        if text(event["routing_key"]).isEmpty { errors.append("'routing_key' is missing or blank") }
        let action = text(event["event_action"])
        if !["trigger", "acknowledge", "resolve"].contains(action) { errors.append("'event_action' is invalid") }
        if action != "trigger" && text(event["dedup_key"]).isEmpty {
            errors.append("'dedup_key' is required for \(action)")
        }
        if action == "trigger" {
            let payload = event["payload"]
            if text(payload?["summary"]).isEmpty { errors.append("'payload.summary' is missing") }
            if text(payload?["source"]).isEmpty { errors.append("'payload.source' is missing") }
            if !["critical", "error", "warning", "info"].contains(text(payload?["severity"])) {
                errors.append("'payload.severity' is invalid")
            }
        }
        guard errors.isEmpty else {
            return Self.json(400, ["status": "invalid event", "message": "Event object is invalid", "errors": errors])
        }
        let key = event["dedup_key"]?.stringValue ?? UUID().uuidString
        state.withLock { $0.value.pagerDuty.append(.object(event)) }
        return Self.json(202, ["status": "success", "message": "Event processed", "dedup_key": key])
    }

    private static func json(_ code: Int, _ object: Any) -> HTTPResponse {
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return HTTPResponse(
            status: HTTPStatus(code: code, reason: code < 300 ? "OK" : "Error"),
            headers: [("Content-Type", "application/json")],
            body: Array(body)
        )
    }
}
