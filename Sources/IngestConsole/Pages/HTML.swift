import Foundation
import IngestCore

/// Server-rendered HTML: every value from a record, a header or a request goes through
/// ``escape(_:)``; no page needs JavaScript.
enum HTML {
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// `a=b&c=d`, percent-encoded.
    static func query(_ pairs: [(String, String)]) -> String {
        pairs.map { "\(percent($0.0))=\(percent($0.1))" }.joined(separator: "&")
    }

    static func percent(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }

    static let style = """
        body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
        header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center}
        header a{color:#cfe0ff;text-decoration:none}header .who{margin-left:auto;opacity:.8}
        main{padding:1em 1.2em;max-width:1300px}table{border-collapse:collapse;width:100%;background:#fff}
        th,td{border-bottom:1px solid #e3e6eb;padding:.35em .5em;text-align:left;vertical-align:top}
        th{background:#eef1f5;font-weight:600}code,pre{font:12px/1.4 ui-monospace,monospace}
        pre{background:#fff;border:1px solid #e3e6eb;padding:.8em;overflow:auto;max-height:40em}
        form.filters{display:flex;flex-wrap:wrap;gap:.5em;margin-bottom:1em}
        form.filters label{display:flex;flex-direction:column;font-size:12px}
        input,select,button{font:inherit;padding:.25em .4em}button{cursor:pointer}
        .error{background:#fde8e8;border:1px solid #f5b5b5;padding:.6em}
        .ok{background:#e7f6ea;border:1px solid #a8dcb2;padding:.6em}.muted{color:#6b7280}
        .cards{display:flex;gap:1em;flex-wrap:wrap;margin:1em 0}.card{background:#fff;border:1px solid #e3e6eb;padding:.6em 1em}
        """

    static func page(title: String, session: ConsoleSession?, csrf: String?, body: String) -> String {
        var nav = ""
        if let session {
            nav = """
                <a href="/dlq">Dead letters</a><a href="/trace">Trace</a><a href="/queues">Queues</a><a href="/redrive">Redrives</a><a href="/audit">Audit</a>
                <span class="who">\(escape(session.user)) (\(session.role.rawValue))</span>
                <form method="post" action="/logout" style="margin:0"><input type="hidden" name="csrf" value="\(escape(csrf ?? ""))"><button>Sign out</button></form>
                """
        }
        return """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><title>\(escape(title)) · GenesysIngest</title>
            <meta name="viewport" content="width=device-width,initial-scale=1"><style>\(style)</style></head>
            <body><header><strong>GenesysIngest console</strong>\(nav)</header><main><h1>\(escape(title))</h1>
            \(body)</main></body></html>
            """
    }

    static func time(_ ms: Int64?) -> String {
        guard let ms else { return "-" }
        return EventFields.isoString(milliseconds: ms)
    }

    /// Dead letters per hour over the last `hours` hours as a small bar chart (server-side SVG).
    static func hourlyChart(_ counts: [Int64: Int], now: Int64, hours: Int = 24) -> String {
        let hour: Int64 = 3_600_000
        let end = now / hour
        let values = (0..<hours).map { counts[end - Int64(hours - 1 - $0)] ?? 0 }
        let top = max(1, values.max() ?? 1)
        let w = 12
        let h = 60
        var bars = ""
        for (i, v) in values.enumerated() {
            let bh = v * h / top
            bars +=
                "<rect x=\"\(i * w)\" y=\"\(h - bh)\" width=\"\(w - 2)\" height=\"\(bh)\" fill=\"#4f7bd9\"><title>\(v)</title></rect>"
        }
        return
            "<svg role=\"img\" aria-label=\"dead letters per hour, last \(hours) hours\" width=\"\(hours * w)\" height=\"\(h + 2)\" viewBox=\"0 0 \(hours * w) \(h + 2)\">\(bars)</svg>"
    }
}

/// Replaces the values of `fields` (object keys, anywhere in the JSON) with `***` — what a
/// viewer sees of personal data such as `ani` and `dnis`.
enum Masking {
    static func mask(_ value: JSONValue, fields: Set<String>) -> JSONValue {
        switch value {
        case .object(let o):
            return .object(
                Dictionary(
                    uniqueKeysWithValues: o.map { k, v in
                        (k, fields.contains(k) ? .string("***") : mask(v, fields: fields))
                    }
                )
            )
        case .array(let a): return .array(a.map { mask($0, fields: fields) })
        default: return value
        }
    }

    /// The value pretty-printed, masked when `fields` is not empty; the bytes as text when
    /// they are not JSON (then masked entirely if masking applies: nothing to pick apart).
    static func render(_ bytes: [UInt8], fields: Set<String>) -> String {
        guard let json = try? JSONValue.parse(Data(bytes)) else {
            return fields.isEmpty ? String(decoding: bytes, as: UTF8.self) : "(not JSON; hidden from viewers)"
        }
        let shown = fields.isEmpty ? json : mask(json, fields: fields)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(shown)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }
}
