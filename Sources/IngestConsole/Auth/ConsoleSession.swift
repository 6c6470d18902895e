import Foundation
import IngestCore
import IngestCrypto

/// A signed-in user, carried in a signed cookie: `base64url(user|role|expires|nonce).hex(mac)`,
/// the MAC an HMAC-SHA256 under the console's secret. Nothing is kept server-side; a cookie
/// whose MAC does not verify, or that has expired, is no session.
public struct ConsoleSession: Sendable, Equatable {
    public var user: String
    public var role: ConsoleRole
    /// Epoch milliseconds.
    public var expiresAt: Int64
    /// Random per sign-in; the CSRF token is derived from it.
    public var nonce: String
}

/// Signs and checks session cookies and the CSRF tokens tied to them.
public struct SessionSigner: Sendable {
    public static let cookieName = "ingest_console"
    let key: [UInt8]
    public var lifetimeMilliseconds: Int64 = 8 * 3_600_000
    /// Adds `Secure` (set it when the console is reached over TLS, e.g. behind a proxy).
    public var secureCookies = false

    public init(key: [UInt8]) { self.key = key }

    func mac(_ text: String) -> String {
        ByteEncoding.encodeHex(OpenSSLHMACSHA256.mac(key: key, message: Array(text.utf8)))
    }

    public func newSession(user: String, role: ConsoleRole, now: Int64 = WallClock.nowMilliseconds()) -> ConsoleSession
    {
        ConsoleSession(
            user: user,
            role: role,
            expiresAt: now + lifetimeMilliseconds,
            nonce: ByteEncoding.encodeHex(SecureRandom.bytes(16))
        )
    }

    public func cookieValue(_ s: ConsoleSession) -> String {
        let payload = "\(s.user)|\(s.role.rawValue)|\(s.expiresAt)|\(s.nonce)"
        return RequestText.base64url(Array(payload.utf8)) + "." + mac(payload)
    }

    /// The `Set-Cookie` header value that signs `s` in.
    public func setCookie(_ s: ConsoleSession) -> String {
        "\(Self.cookieName)=\(cookieValue(s)); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(lifetimeMilliseconds / 1000)"
            + (secureCookies ? "; Secure" : "")
    }

    /// The `Set-Cookie` header value that signs out.
    public var clearCookie: String {
        "\(Self.cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0" + (secureCookies ? "; Secure" : "")
    }

    /// The session of a `Cookie` header, if it carries a valid, unexpired one.
    public func session(cookieHeader: String?, now: Int64 = WallClock.nowMilliseconds()) -> ConsoleSession? {
        guard let cookieHeader, let signed = RequestText.signedCookie(cookieHeader, name: Self.cookieName) else {
            return nil
        }
        let payload = String(decoding: signed.payload, as: UTF8.self)
        guard ByteEncoding.constantTimeEquals(Array(mac(payload).utf8), Array(signed.mac.utf8)),
            let f = RequestText.sessionFields(payload), let role = ConsoleRole(rawValue: f.role), f.expires > now
        else { return nil }
        return ConsoleSession(user: f.user, role: role, expiresAt: f.expires, nonce: f.nonce)
    }

    /// The CSRF token every state-changing form of this session carries.
    public func csrfToken(_ s: ConsoleSession) -> String { mac("csrf|\(s.user)|\(s.nonce)") }

    public func checkCSRF(_ token: String?, _ s: ConsoleSession) -> Bool {
        guard let token else { return false }
        return ByteEncoding.constantTimeEquals(Array(csrfToken(s).utf8), Array(token.utf8))
    }
}

/// Sign-in attempts per user name: after `limit` failures within `window` the name is locked
/// until the oldest of them leaves the window (a password guesser gets `limit` tries a minute).
public final class LoginThrottle: Sendable {
    let limit: Int
    let window: Duration
    private let failures = LockedValue<[String: [ContinuousClock.Instant]]>([:])

    public init(limit: Int = 5, window: Duration = .seconds(60)) {
        self.limit = limit
        self.window = window
    }

    /// Seconds to wait before `name` may try again; nil when it may now.
    public func retryAfter(_ name: String, now: ContinuousClock.Instant = .now) -> Int? {
        failures.withLock { all in
            let recent = (all[name] ?? []).filter { now - $0 < window }
            all[name] = recent.isEmpty ? nil : recent
            guard recent.count >= limit, let oldest = recent.first else { return nil }
            let left = window - (now - oldest)
            return max(1, Int(left.components.seconds) + 1)
        }
    }

    public func failed(_ name: String, now: ContinuousClock.Instant = .now) {
        failures.withLock { all in
            // Bounded: at most 10,000 names tracked (the oldest entries go first).
            if all.count >= 10_000, all[name] == nil,
                let drop = all.min(by: { ($0.value.last ?? now) < ($1.value.last ?? now) })?.key
            {
                all[drop] = nil
            }
            all[name, default: []].append(now)
        }
    }

    public func succeeded(_ name: String) { failures.withLock { $0[name] = nil } }
}
