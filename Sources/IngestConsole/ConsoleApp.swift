import Foundation
import IngestCore
import IngestHTTP
import IngestKafka
import IngestWorker
import Logging

/// A request as the console sees it: path, query and form parameters, the cookie header.
public struct ConsoleRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [String: String]
    public var form: [String: String]
    public var cookie: String?

    public init(
        method: String,
        path: String,
        query: [String: String] = [:],
        form: [String: String] = [:],
        cookie: String? = nil
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.form = form
        self.cookie = cookie
    }

    public init(_ r: HTTPRequest) {
        method = r.method
        path = String(r.path)
        let target = r.target
        query = target.firstIndex(of: "?").map { RequestText.decodeForm(target[target.index(after: $0)...]) } ?? [:]
        let type = r.headers["content-type"]?.lowercased() ?? ""
        form =
            type.hasPrefix("application/x-www-form-urlencoded")
            ? RequestText.decodeForm(Substring(decoding: r.body, as: UTF8.self)) : [:]
        cookie = r.headers["cookie"]
    }
}

/// The console's settings.
public struct ConsoleConfiguration: Sendable {
    public var users: ConsoleUsers
    public var signer: SessionSigner
    public var naming = TopicNaming()
    /// Value fields shown as `***` to viewers.
    public var maskedFields: Set<String> = ["ani", "dnis", "addressFrom", "addressTo", "address", "callerId"]
    public var auditTopic = "ingest.dlq.audit"
    public var pageSize = 50
    /// Records one page request reads at most (memory stays one record; time is bounded).
    public var scanLimit = 200_000
    /// Redrive rate when the form gives none, and the most allowed (records per second).
    public var defaultRate: Double = 100
    public var maximumRate: Double = 5_000
    /// The product's output topics a trace reads besides the raw topics and their dead letters.
    public var outputTopics = ["genesys.conversations.enriched", "genesys.queue.waits"]
    /// The analytics workers' summaries (the queue pages read them).
    public var queueMetricsTopic = "genesys.queue.metrics"
    /// Handlers whose idempotency keys a trace looks up (with a store).
    public var handlers = ["record", "enrich", "analytics-waits", "analytics", "overflow"]

    public init(users: ConsoleUsers, signer: SessionSigner) {
        self.users = users
        self.signer = signer
    }
}

/// The console's pages and actions: request in, response out (blocking: it reads Kafka).
/// Every state-changing request needs a valid session, the role for it and the session's
/// CSRF token; all of it is checked here, whatever the page showed.
public final class ConsoleApp: Sendable {
    let configuration: ConsoleConfiguration
    let source: any DeadLetterSource
    public let jobs: RedriveJobs
    let throttle = LoginThrottle()
    /// The workers' idempotency store, when the console is given one: traces show how each
    /// record was handled.
    let store: (any IdempotencyStore)?
    let logger: Logger

    public init(
        configuration: ConsoleConfiguration,
        source: any DeadLetterSource,
        publisher: @escaping @Sendable () throws -> any RedrivePublisher,
        store: (any IdempotencyStore)? = nil,
        logger: Logger
    ) {
        self.configuration = configuration
        self.source = source
        self.store = store
        self.jobs = RedriveJobs(
            source: source,
            publisher: publisher,
            auditTopic: configuration.auditTopic,
            logger: logger
        )
        self.logger = logger
    }

    var signer: SessionSigner { configuration.signer }

    static func html(_ status: HTTPStatus, _ text: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(
            status: status,
            headers: [
                ("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store"),
                ("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"),
                (
                    "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'"
                ),
                ("Referrer-Policy", "same-origin"),
            ] + headers,
            body: Array(text.utf8)
        )
    }

    static func redirect(_ location: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(
            status: HTTPStatus(code: 303, reason: "See Other"),
            headers: [("Location", location), ("Cache-Control", "no-store")] + headers,
            body: []
        )
    }

    static let forbidden = HTTPStatus(code: 403, reason: "Forbidden")
    static let tooMany = HTTPStatus(code: 429, reason: "Too Many Requests")

    public func respond(_ req: ConsoleRequest) -> HTTPResponse {
        if req.path == "/healthz" { return HTTPResponse.json(.ok, "{\"status\":\"ok\"}") }
        if req.path == "/login" { return req.method == "POST" ? login(req) : loginPage(nil, status: .ok) }
        guard let session = signer.session(cookieHeader: req.cookie) else {
            return req.method == "GET" ? Self.redirect("/login") : error(.unauthorized, "sign in first", nil)
        }
        if req.method == "POST" {
            // Every state-changing request carries the session's token (a forged cross-site
            // form cannot know it).
            guard signer.checkCSRF(req.form["csrf"], session) else {
                logger.warning(
                    "console: a POST without a valid CSRF token was refused",
                    metadata: ["user": "\(session.user)"]
                )
                return error(Self.forbidden, "the form's CSRF token is missing or wrong: reload the page", session)
            }
        }
        let parts = req.path.split(separator: "/").map(String.init)
        let route = (
            req.method, parts.count > 1 && parts[0] == "redrive" ? ["redrive", "*"] + parts.dropFirst(2) : parts
        )
        let id = parts.count > 1 ? parts[1] : ""
        switch route {
        case ("GET", []): return Self.redirect("/dlq")
        case ("POST", ["logout"]): return Self.redirect("/login", headers: [("Set-Cookie", signer.clearCookie)])
        case ("GET", ["dlq"]): return list(req, session)
        case ("GET", ["dlq", "record"]): return record(req, session)
        case ("GET", ["redrive"]): return redrives(session)
        case ("POST", ["redrive", "*"]) where id == "plan":
            guard session.role >= .operator else { return refuse(session, "plan a redrive") }
            return plan(req, session)
        case ("GET", ["redrive", "*"]): return job(id, session, notice: nil)
        case ("POST", ["redrive", "*", "run"]):
            guard session.role >= .operator else { return refuse(session, "run a redrive") }
            let rate = Double(req.form["rate"] ?? "") ?? configuration.defaultRate
            guard rate >= 1, rate <= configuration.maximumRate else {
                return error(
                    .badRequest,
                    "rate must be between 1 and \(Int(configuration.maximumRate)) a second",
                    session
                )
            }
            do { try jobs.run(id, by: session.user, rate: rate) } catch {
                return self.error(.badRequest, "\(error)", session)
            }
            return Self.redirect("/redrive/\(HTML.percent(id))")
        case ("POST", ["redrive", "*", "cancel"]):
            guard session.role >= .operator else { return refuse(session, "cancel a redrive") }
            do { try jobs.cancel(id) } catch { return self.error(.badRequest, "\(error)", session) }
            return Self.redirect("/redrive/\(HTML.percent(id))")
        case ("GET", ["audit"]): return audit(session)
        case ("GET", ["trace"]): return trace(req, session)
        case ("GET", ["queues"]): return queues(session)
        case ("GET", let p) where p.count == 2 && p[0] == "queues": return queue(p[1], session)
        default: return error(.notFound, "no such page", session)
        }
    }

    /// A signed-in page: the layout with the user's name and the sign-out form.
    func signedInPage(
        _ title: String,
        _ session: ConsoleSession,
        _ body: String,
        headers: [(String, String)] = []
    )
        -> HTTPResponse
    {
        Self.html(
            .ok,
            HTML.page(title: title, session: session, csrf: signer.csrfToken(session), body: body),
            headers: headers
        )
    }

    func refuse(_ session: ConsoleSession, _ what: String) -> HTTPResponse {
        logger.warning("console: refused", metadata: ["user": "\(session.user)", "action": "\(what)"])
        return error(Self.forbidden, "a \(session.role.rawValue) may not \(what)", session)
    }

    func error(_ status: HTTPStatus, _ message: String, _ session: ConsoleSession?) -> HTTPResponse {
        Self.html(
            status,
            HTML.page(
                title: "\(status.code) \(status.reason)",
                session: session,
                csrf: session.map(signer.csrfToken),
                body: "<p class=\"error\">\(HTML.escape(message))</p>"
            )
        )
    }

    // MARK: Sign-in

    func loginPage(_ message: String?, status: HTTPStatus, headers: [(String, String)] = []) -> HTTPResponse {
        let note = message.map { "<p class=\"error\">\(HTML.escape($0))</p>" } ?? ""
        return Self.html(
            status,
            HTML.page(
                title: "Sign in",
                session: nil,
                csrf: nil,
                body: """
                    \(note)<form method="post" action="/login">
                    <p><label>User <input name="user" autocomplete="username" required></label></p>
                    <p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
                    <p><button>Sign in</button></p></form>
                    """
            ),
            headers: headers
        )
    }

    func login(_ req: ConsoleRequest) -> HTTPResponse {
        let name = req.form["user"] ?? ""
        if let wait = throttle.retryAfter(name) {
            return loginPage(
                "too many failed sign-ins for this user: try again in \(wait) s",
                status: Self.tooMany,
                headers: [("Retry-After", String(wait))]
            )
        }
        guard let user = configuration.users.authenticate(name: name, password: req.form["password"] ?? "") else {
            throttle.failed(name)
            logger.notice("console: failed sign-in", metadata: ["user": "\(name.prefix(64))"])
            return loginPage("wrong user or password", status: .unauthorized)
        }
        throttle.succeeded(name)
        let session = signer.newSession(user: user.name, role: user.role)
        logger.info("console: signed in", metadata: ["user": "\(user.name)", "role": "\(user.role.rawValue)"])
        return Self.redirect("/dlq", headers: [("Set-Cookie", signer.setCookie(session))])
    }

    // MARK: Dead letters

    func masked(_ session: ConsoleSession) -> Set<String> { session.role == .viewer ? configuration.maskedFields : [] }

    func list(_ req: ConsoleRequest, _ session: ConsoleSession) -> HTTPResponse {
        let query: DeadLetterQuery
        do { query = try DeadLetterQuery.parse(req.query) } catch {
            return self.error(.badRequest, "\(error)", session)
        }
        let page = max(0, min(10_000, Int(req.query["page"] ?? "") ?? 0))
        let topics = query.dlqTopics(naming: configuration.naming)
        var shown: [KafkaRecord] = []
        var matched = 0
        var byClass: [String: Int] = [:]
        var byMessage: [String: Int] = [:]
        var perHour: [Int64: Int] = [:]
        let skip = page * configuration.pageSize
        let scan: (read: Int, truncated: Bool)
        do {
            scan = try source.scan(topics: topics, limit: configuration.scanLimit) { r in
                guard query.matches(r) else { return true }
                matched += 1
                byClass[r.header(DeadLetterHeader.errorClass) ?? "-", default: 0] += 1
                let message = String((r.header(DeadLetterHeader.errorMessage) ?? "-").prefix(120))
                if byMessage[message] != nil || byMessage.count < 1000 { byMessage[message, default: 0] += 1 }
                let at = Int64(r.header(DeadLetterHeader.lastFailureAt) ?? "") ?? r.timestamp
                perHour[at / 3_600_000, default: 0] += 1
                if matched > skip && shown.count < configuration.pageSize { shown.append(r) }
                return true
            }
        } catch {
            return self.error(.serviceUnavailable, "reading the dead-letter topics failed: \(error)", session)
        }
        let params = query.parameters
        func field(_ name: String, _ label: String, _ value: String?, _ hint: String = "") -> String {
            "<label>\(label)<input name=\"\(name)\" value=\"\(HTML.escape(value ?? ""))\" placeholder=\"\(HTML.escape(hint))\"></label>"
        }
        var body = """
            <form class="filters" method="get" action="/dlq">
            \(field("topic", "Topic", query.topics.joined(separator: ","), "genesys.raw.conversation"))
            \(field("class", "Error class", query.errorClass, "poison"))\(field("handler", "Handler", query.handler, "enrich"))
            \(field("text", "Error text", query.errorText))\(field("conversation", "Conversation id", query.conversationID))
            \(field("queue", "Queue id", query.queueID))\(field("since", "Since", query.since.map { HTML.time($0) }, "2026-01-01T00:00:00Z"))
            \(field("until", "Until", query.until.map { HTML.time($0) }))\(field("header", "Header", query.header.map { "\($0.name)=\($0.value)" }, "name=value"))
            \(field("path", "JSON path", query.jsonPath.map { $0.path.joined(separator: ".") + "=" + $0.value }, "detail.eventBody.queueId=…"))
            <label>&nbsp;<button>Filter</button></label></form>
            """
        body += "<div class=\"cards\"><div class=\"card\"><strong>\(matched)</strong> dead letter(s) match"
        body += scan.truncated ? " in the first \(scan.read) read (narrow the filter)" : " (\(scan.read) read)"
        body += "</div><div class=\"card\">By class: "
        body += byClass.sorted { $0.key < $1.key }.map { "\(HTML.escape($0.key)) <strong>\($0.value)</strong>" }.joined(
            separator: " · "
        )
        body +=
            "</div><div class=\"card\">Per hour, last 24 h<br>\(HTML.hourlyChart(perHour, now: WallClock.nowMilliseconds()))</div></div>"
        if !byMessage.isEmpty {
            body += "<details><summary>Most frequent errors</summary><table><tr><th>Count</th><th>Error</th></tr>"
            for (m, c) in byMessage.sorted(by: { $0.value > $1.value }).prefix(10) {
                body += "<tr><td>\(c)</td><td>\(HTML.escape(m))</td></tr>"
            }
            body += "</table></details>"
        }
        if session.role >= .operator && matched > 0 {
            body +=
                "<form method=\"post\" action=\"/redrive/plan\"><input type=\"hidden\" name=\"csrf\" value=\"\(signer.csrfToken(session))\">"
            for (k, v) in params {
                body += "<input type=\"hidden\" name=\"\(HTML.escape(k))\" value=\"\(HTML.escape(v))\">"
            }
            body +=
                "<p><button id=\"plan\">Plan a redrive of these \(matched)…</button> <span class=\"muted\">(shows exactly what would be replayed first)</span></p></form>"
        }
        body +=
            "<table><tr><th>Dead letter</th><th>Origin</th><th>Class</th><th>Handler</th><th>Attempts</th><th>Last failure</th><th>Key</th><th>Error</th></tr>"
        for r in shown {
            let link =
                "/dlq/record?"
                + HTML.query([("topic", r.topic), ("partition", String(r.partition)), ("offset", String(r.offset))])
            let origin =
                "\(r.header(DeadLetterHeader.originTopic) ?? "?")/\(r.header(DeadLetterHeader.originPartition) ?? "?")@\(r.header(DeadLetterHeader.originOffset) ?? "?")"
            body += "<tr><td><a href=\"\(HTML.escape(link))\">\(HTML.escape(RecordPosition(r).description))</a></td>"
            body +=
                "<td>\(HTML.escape(origin))</td><td>\(HTML.escape(r.header(DeadLetterHeader.errorClass) ?? "-"))</td>"
            body +=
                "<td>\(HTML.escape(r.header(DeadLetterHeader.handler) ?? "-"))</td><td>\(HTML.escape(r.header(DeadLetterHeader.attempts) ?? "-"))</td>"
            body += "<td>\(HTML.time(Int64(r.header(DeadLetterHeader.lastFailureAt) ?? "")))</td>"
            let key = r.key.map { String(decoding: $0, as: UTF8.self) } ?? "-"
            if r.topic.hasPrefix(configuration.naming.topic(for: .conversation)), key != "-" {
                // Conversation records are keyed by conversation id: its trace is one click away.
                body +=
                    "<td><a href=\"/trace?\(HTML.escape(HTML.query([("conversation", key)])))\">\(HTML.escape(key))</a></td>"
            } else {
                body += "<td>\(HTML.escape(key))</td>"
            }
            body += "<td>\(HTML.escape(r.header(DeadLetterHeader.errorMessage) ?? ""))</td></tr>"
        }
        body += "</table>"
        var nav: [String] = []
        if page > 0 {
            nav.append(
                "<a href=\"/dlq?\(HTML.escape(HTML.query(params + [("page", String(page - 1))])))\">← previous</a>"
            )
        }
        if matched > skip + shown.count {
            nav.append("<a href=\"/dlq?\(HTML.escape(HTML.query(params + [("page", String(page + 1))])))\">next →</a>")
        }
        body += "<p>Page \(page + 1). \(nav.joined(separator: " · "))</p>"
        return signedInPage("Dead letters", session, body)
    }

    func record(_ req: ConsoleRequest, _ session: ConsoleSession) -> HTTPResponse {
        guard let topic = req.query["topic"], topic.hasSuffix(".dlq"),
            let partition = Int32(req.query["partition"] ?? ""),
            let offset = Int64(req.query["offset"] ?? ""), partition >= 0, offset >= 0
        else { return error(.badRequest, "topic (a .dlq topic), partition and offset are required", session) }
        var found: KafkaRecord?
        do {
            _ = try source.scan(topics: [topic], limit: configuration.scanLimit) { r in
                guard r.partition == partition && r.offset == offset else { return true }
                found = r
                return false
            }
        } catch {
            return self.error(.serviceUnavailable, "reading \(topic) failed: \(error)", session)
        }
        guard let r = found else {
            return error(.notFound, "no dead letter at \(topic)/\(partition)@\(offset)", session)
        }
        let masking = masked(session)
        var body =
            "<p>Key <code>\(HTML.escape(r.key.map { String(decoding: $0, as: UTF8.self) } ?? "-"))</code> · written \(HTML.time(r.timestamp))</p>"
        body += "<table><tr><th>Header</th><th>Value</th></tr>"
        for h in r.headers {
            let v = String(decoding: h.value, as: UTF8.self)
            let shown = h.name.hasSuffix("-at") ? "\(v) (\(HTML.time(Int64(v))))" : v
            body += "<tr><td><code>\(HTML.escape(h.name))</code></td><td><code>\(HTML.escape(shown))</code></td></tr>"
        }
        body += "</table><h2>Value</h2>"
        if !masking.isEmpty {
            body +=
                "<p class=\"muted\">Masked for viewers: \(HTML.escape(masking.sorted().joined(separator: ", ")))</p>"
        }
        body += "<pre>\(HTML.escape(Masking.render(r.value, fields: masking)))</pre>"
        if session.role >= .operator {
            body +=
                "<form method=\"post\" action=\"/redrive/plan\"><input type=\"hidden\" name=\"csrf\" value=\"\(signer.csrfToken(session))\">"
            body += "<input type=\"hidden\" name=\"topic\" value=\"\(HTML.escape(topic))\">"
            body +=
                "<input type=\"hidden\" name=\"only\" value=\"\(HTML.escape(RecordPosition(r).description))\"><button>Plan a redrive of this one…</button></form>"
        }
        return signedInPage(RecordPosition(r).description, session, body)
    }

    // MARK: Redrive

    func plan(_ req: ConsoleRequest, _ session: ConsoleSession) -> HTTPResponse {
        var query: DeadLetterQuery
        do { query = try DeadLetterQuery.parse(req.form) } catch { return self.error(.badRequest, "\(error)", session) }
        let topics = query.dlqTopics(naming: configuration.naming)
        do {
            var job = try jobs.plan(query, topics: topics, by: session.user)
            if let only = req.form["only"] {
                // A single dead letter: the plan is that position alone (if it matched).
                job.positions = job.positions.filter { $0.description == only }
                jobs.replacePositions(job.id, job.positions)
            }
            return Self.redirect("/redrive/\(job.id)")
        } catch {
            return self.error(.badRequest, "\(error)", session)
        }
    }

    func job(_ id: String, _ session: ConsoleSession, notice: String?) -> HTTPResponse {
        guard let job = jobs.job(id) else { return error(.notFound, "no such redrive", session) }
        let csrf = signer.csrfToken(session)
        var body = ""
        let filters = job.query.parameters.map { "\($0.0)=\($0.1)" }.joined(separator: ", ")
        body +=
            "<p>Planned by <strong>\(HTML.escape(job.planner))</strong> at \(HTML.time(job.createdAt)) · filter: <code>\(HTML.escape(filters.isEmpty ? "(none)" : filters))</code></p>"
        body +=
            "<div class=\"cards\"><div class=\"card\">State <strong id=\"state\">\(job.state.rawValue)</strong></div>"
        body += "<div class=\"card\">Planned <strong id=\"planned\">\(job.positions.count)</strong></div>"
        body += "<div class=\"card\">Replayed <strong id=\"replayed\">\(job.replayed)</strong></div></div>"
        if let e = job.error { body += "<p class=\"error\">\(HTML.escape(e))</p>" }
        switch job.state {
        case .planned where session.role >= .operator && !job.positions.isEmpty:
            body += """
                <form method="post" action="/redrive/\(HTML.escape(id))/run"><input type="hidden" name="csrf" value="\(csrf)">
                <p>Replay exactly these \(job.positions.count) dead letter(s) to their origin topics, at most
                <input name="rate" value="\(Int(configuration.defaultRate))" size="5"> a second.
                <button id="run">Confirm and run</button></p></form>
                """
        case .running:
            body += """
                <form method="post" action="/redrive/\(HTML.escape(id))/cancel"><input type="hidden" name="csrf" value="\(csrf)">
                <p><button id="cancel">Cancel</button> <span class="muted">(stops before the next record)</span></p></form>
                """
        default: break
        }
        body += "<h2>Positions (first 20)</h2><table><tr><th>Dead letter</th></tr>"
        for p in job.positions.prefix(20) { body += "<tr><td><code>\(HTML.escape(p.description))</code></td></tr>" }
        body += "</table>"
        var headers: [(String, String)] = []
        // Progress without JavaScript: a running job's page reloads itself.
        if job.state == .running || job.state == .cancelling { headers.append(("Refresh", "1")) }
        return signedInPage("Redrive \(id)", session, body, headers: headers)
    }

    func redrives(_ session: ConsoleSession) -> HTTPResponse {
        var body =
            "<table><tr><th>Redrive</th><th>Planned by</th><th>At</th><th>State</th><th>Planned</th><th>Replayed</th></tr>"
        for j in jobs.all {
            body +=
                "<tr><td><a href=\"/redrive/\(HTML.escape(j.id))\">\(HTML.escape(j.id))</a></td><td>\(HTML.escape(j.planner))</td>"
            body +=
                "<td>\(HTML.time(j.createdAt))</td><td>\(j.state.rawValue)</td><td>\(j.positions.count)</td><td>\(j.replayed)</td></tr>"
        }
        body += "</table>"
        return signedInPage("Redrives", session, body)
    }

    func trace(_ req: ConsoleRequest, _ session: ConsoleSession) -> HTTPResponse {
        let id = (req.query["conversation"] ?? "").trimmingCharacters(in: .whitespaces)
        var body = """
            <form class="filters" method="get" action="/trace"><label>Conversation id
            <input name="conversation" value="\(HTML.escape(id))" size="40"></label><label>&nbsp;<button>Trace</button></label></form>
            """
        guard !id.isEmpty else {
            return signedInPage("Conversation trace", session, body)
        }
        let raw = configuration.naming.allTopics
        let topics = raw + raw.map { $0 + ".dlq" } + configuration.outputTopics
        var collected: (entries: [ConversationTrace.Entry], truncated: Bool)
        do {
            collected = try ConversationTrace.collect(
                conversationID: id,
                topics: topics,
                source: source,
                limit: configuration.scanLimit
            )
            if let store {
                try ConversationTrace.handling(&collected.entries, handlers: configuration.handlers, store: store)
            }
        } catch {
            return self.error(.serviceUnavailable, "reading the trace failed: \(error)", session)
        }
        let masking = masked(session)
        body += "<p><strong>\(collected.entries.count)</strong> record(s) of this conversation"
        body += collected.truncated ? " in the first \(configuration.scanLimit) read" : ""
        body += store == nil ? " · <span class=\"muted\">no store given (--store): handling states unknown</span>" : ""
        body +=
            "</p><table><tr><th>Written</th><th>Topic</th><th>Event</th><th>Handled</th><th>Note</th><th>Value</th></tr>"
        for e in collected.entries {
            let r = e.record
            let isDead = r.topic.hasSuffix(".dlq")
            var handled = e.handled.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            if handled.isEmpty { handled = store == nil ? "?" : "not handled (yet), or released" }
            var note = ""
            if isDead {
                note =
                    "dead letter (\(r.header(DeadLetterHeader.errorClass) ?? "?"), \(r.header(DeadLetterHeader.handler) ?? "?")): \(r.header(DeadLetterHeader.errorMessage) ?? "")"
            } else if let from = r.header(DeadLetterHeader.replayedFrom) {
                note = "replayed from \(from)"
            } else if let gap = r.header(IngestHeader.reconciledGap) {
                note = "reconciled for gap \(gap)"
            }
            let link =
                isDead
                ? "<a href=\"/dlq/record?\(HTML.escape(HTML.query([("topic", r.topic), ("partition", String(r.partition)), ("offset", String(r.offset))])))\">\(HTML.escape(RecordPosition(r).description))</a>"
                : HTML.escape(RecordPosition(r).description)
            body +=
                "<tr><td>\(HTML.time(r.timestamp))</td><td>\(link)</td><td><code>\(HTML.escape(e.topicName ?? "-"))</code></td>"
            body += "<td>\(HTML.escape(handled))</td><td>\(HTML.escape(note))</td>"
            body +=
                "<td><details><summary>value</summary><pre>\(HTML.escape(Masking.render(r.value, fields: masking)))</pre></details></td></tr>"
        }
        body += "</table>"
        return signedInPage("Conversation \(id)", session, body)
    }

    func readQueueSummaries() throws -> QueueSummaries {
        var summaries = QueueSummaries()
        _ = try source.scan(topics: [configuration.queueMetricsTopic], limit: configuration.scanLimit) { r in
            summaries.add(r.value)
            return true
        }
        return summaries
    }

    /// The alert and overflow documents, when the console has the workers' store.
    func queueStates() throws -> QueueStates? {
        guard let documents = store as? any DocumentStore else { return nil }
        return try QueueStates.read(documents)
    }

    static func percent(_ r: Double?) -> String { r.map { String(format: "%.1f %%", $0 * 100) } ?? "-" }
    static func seconds(_ ms: Int?) -> String { ms.map { String(format: "%.1f s", Double($0) / 1000) } ?? "-" }

    func queues(_ session: ConsoleSession) -> HTTPResponse {
        let summaries: QueueSummaries
        do { summaries = try readQueueSummaries() } catch {
            return self.error(
                .serviceUnavailable,
                "reading \(configuration.queueMetricsTopic) failed: \(error)",
                session
            )
        }
        let states: QueueStates?
        do { states = try queueStates() } catch {
            return self.error(.serviceUnavailable, "reading the store failed: \(error)", session)
        }
        var body =
            "<p class=\"muted\">The current 30-minute interval of every queue, from the analytics workers' summaries on <code>\(HTML.escape(configuration.queueMetricsTopic))</code>"
        body +=
            states == nil
            ? "; alerts and overflow need <code>--store</code>.</p>"
            : ", with the alerts firing and the overflow controller's state from the store.</p>"
        body +=
            "<table><tr><th>Queue</th><th>Media</th><th>Interval</th><th>Offered</th><th>Answered</th><th>Abandoned</th><th>Abandon rate</th><th>Service level</th><th>p50</th><th>p90</th><th>p99</th><th>Alerts firing</th><th>Overflow</th></tr>"
        for q in summaries.latest {
            body +=
                "<tr><td><a href=\"/queues/\(HTML.escape(HTML.percent(q.queueID)))\">\(HTML.escape(q.queueID))</a></td><td>\(HTML.escape(q.mediaType))</td>"
            body +=
                "<td>\(HTML.time(q.start))\(q.final ? "" : " (running)")</td><td>\(q.offered)</td><td>\(q.answered)</td><td>\(q.abandoned)</td>"
            body += "<td>\(Self.percent(q.abandonRate))</td><td>\(Self.percent(q.serviceLevel))</td>"
            body +=
                "<td>\(Self.seconds(q.waits["p50"]))</td><td>\(Self.seconds(q.waits["p90"]))</td><td>\(Self.seconds(q.waits["p99"]))</td>"
            let firing =
                states?.firing.filter { $0.queueID == q.queueID && $0.mediaType == q.mediaType }.map(\.rule) ?? []
            body +=
                "<td>\(HTML.escape(states == nil ? "?" : firing.isEmpty ? "none" : firing.joined(separator: ", ")))</td>"
            body += "<td>\(HTML.escape(states.map { $0.overflow[q.queueID]?.state ?? "-" } ?? "?"))</td></tr>"
        }
        body += "</table>"
        if summaries.latest.isEmpty { body += "<p>No summaries yet: is an analytics worker running?</p>" }
        return signedInPage("Queues", session, body)
    }

    func queue(_ rawID: String, _ session: ConsoleSession) -> HTTPResponse {
        let id = rawID.removingPercentEncoding ?? rawID
        let summaries: QueueSummaries
        do { summaries = try readQueueSummaries() } catch {
            return self.error(
                .serviceUnavailable,
                "reading \(configuration.queueMetricsTopic) failed: \(error)",
                session
            )
        }
        let history = summaries.history(id)
        guard !history.isEmpty else { return error(.notFound, "no summaries of queue \(id)", session) }
        let states: QueueStates?
        do { states = try queueStates() } catch {
            return self.error(.serviceUnavailable, "reading the store failed: \(error)", session)
        }
        var body = ""
        if let states {
            let firing = states.firing.filter { $0.queueID == id }
            body += "<div class=\"cards\"><div class=\"card\">Alerts firing: <strong id=\"alerts\">"
            body +=
                firing.isEmpty
                ? "none" : HTML.escape(firing.map { "\($0.rule) (\($0.mediaType))" }.joined(separator: ", "))
            body += "</strong></div><div class=\"card\">Overflow: "
            if let o = states.overflow[id] {
                body += "<strong id=\"overflow\">\(HTML.escape(o.state))</strong> since \(HTML.time(o.since))"
                if let outcome = o.lastOutcome {
                    body +=
                        "<br>last activation: \(HTML.escape(outcome)) at \(HTML.time(o.lastEndedAt)), \(o.addedMembers) member(s) added"
                }
            } else {
                body += "<strong id=\"overflow\">not controlled</strong>"
            }
            body += "</div></div>"
        }
        for (media, intervals) in history.sorted(by: { $0.key < $1.key }) {
            body += "<h2>\(HTML.escape(media))</h2><div class=\"cards\">"
            body +=
                "<div class=\"card\">\(HTML.lineChart(intervals.map { $0.waits["p90"].map { Double($0) / 1000 } }, label: "p90 wait (s) per interval"))</div>"
            body +=
                "<div class=\"card\">\(HTML.lineChart(intervals.map { Double($0.offered) }, label: "offered per interval"))</div>"
            body +=
                "<div class=\"card\">\(HTML.lineChart(intervals.map { $0.serviceLevel.map { $0 * 100 } }, label: "service level (%)"))</div></div>"
            body +=
                "<table><tr><th>Interval</th><th>Offered</th><th>Answered</th><th>Abandoned</th><th>Abandon rate</th><th>Service level</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th></tr>"
            for q in intervals.reversed() {
                body +=
                    "<tr><td>\(HTML.time(q.start))\(q.final ? "" : " (running)")</td><td>\(q.offered)</td><td>\(q.answered)</td><td>\(q.abandoned)</td>"
                body += "<td>\(Self.percent(q.abandonRate))</td><td>\(Self.percent(q.serviceLevel))</td>"
                body +=
                    "<td>\(Self.seconds(q.waits["p50"]))</td><td>\(Self.seconds(q.waits["p90"]))</td><td>\(Self.seconds(q.waits["p95"]))</td><td>\(Self.seconds(q.waits["p99"]))</td></tr>"
            }
            body += "</table>"
        }
        return signedInPage("Queue \(id)", session, body)
    }

    func audit(_ session: ConsoleSession) -> HTTPResponse {
        var rows: [JSONValue] = []
        do {
            _ = try source.scan(topics: [configuration.auditTopic], limit: configuration.scanLimit) { r in
                if let v = try? JSONValue.parse(Data(r.value)) { rows.append(v) }
                if rows.count > 1000 { rows.removeFirst() }
                return true
            }
        } catch {
            return self.error(.serviceUnavailable, "reading \(configuration.auditTopic) failed: \(error)", session)
        }
        var body =
            "<p class=\"muted\">Every redrive (console and <code>ingestctl dlq replay</code>), newest first, from <code>\(HTML.escape(configuration.auditTopic))</code>.</p>"
        body +=
            "<table><tr><th>At</th><th>Actor</th><th>Job</th><th>Result</th><th>Planned</th><th>Replayed</th><th>Filters</th></tr>"
        for v in rows.reversed() {
            func s(_ k: String) -> String {
                switch v[k] {
                case .string(let x): return x
                case .number(let n): return String(Int64(n))
                default: return "-"
                }
            }
            body +=
                "<tr><td>\(HTML.escape(s("at")))</td><td>\(HTML.escape(s("actor")))</td><td>\(HTML.escape(s("job")))</td>"
            body +=
                "<td>\(HTML.escape(s("result")))</td><td>\(HTML.escape(s("planned")))</td><td>\(HTML.escape(s("count")))</td>"
            body += "<td><code>\(HTML.escape(v["filters"]?.description ?? "-"))</code></td></tr>"
        }
        body += "</table>"
        return signedInPage("Audit", session, body)
    }
}
