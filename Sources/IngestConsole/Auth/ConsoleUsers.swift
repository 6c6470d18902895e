import Foundation
import IngestCore
import IngestCrypto

/// What a console user may do, enforced by the server on every request (not only by what the
/// pages show).
public enum ConsoleRole: String, Sendable, Comparable, CaseIterable {
    /// Reads dead letters (masked fields hidden), traces, the audit.
    case viewer
    /// A viewer who may also plan, run and cancel redrives.
    case `operator`
    /// Everything, unmasked values included.
    case admin

    var rank: Int {
        switch self {
        case .viewer: 0
        case .operator: 1
        case .admin: 2
        }
    }

    public static func < (a: ConsoleRole, b: ConsoleRole) -> Bool { a.rank < b.rank }
}

/// The console's users: a local file of `name:role:hash` lines (`#` comments, blank lines
/// allowed), the hash a ``PasswordHash`` (`ingestctl console hash-password` writes one).
public struct ConsoleUsers: Sendable {
    public struct User: Sendable, Equatable {
        public var name: String
        public var role: ConsoleRole
        var passwordHash: String
    }

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    let users: [String: User]

    public init(users: [User]) { self.users = Dictionary(users.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }) }

    /// Names: letters, digits and `._@-`, 1–64 characters (they go into cookies and logs).
    static func validName(_ name: Substring) -> Bool {
        (1...64).contains(name.count)
            && name.utf8.allSatisfy { c in
                (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 46 || c == 95 || c == 64
                    || c == 45
            }
    }

    /// Parses a users file; every problem names its line.
    public static func parse(_ text: String) throws(ParseError) -> ConsoleUsers {
        var out: [User] = []
        var seen: Set<String> = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { throw ParseError(description: "line \(i + 1): expected name:role:hash") }
            guard validName(parts[0]) else {
                throw ParseError(description: "line \(i + 1): user name must be 1-64 of A-Z a-z 0-9 . _ @ -")
            }
            guard let role = ConsoleRole(rawValue: String(parts[1])) else {
                throw ParseError(description: "line \(i + 1): role must be viewer, operator or admin")
            }
            guard parts[2].hasPrefix("pbkdf2-sha256$") else {
                throw ParseError(
                    description: "line \(i + 1): the hash must be pbkdf2-sha256 (ingestctl console hash-password)"
                )
            }
            guard seen.insert(String(parts[0])).inserted else {
                throw ParseError(description: "line \(i + 1): user \(parts[0]) is listed twice")
            }
            out.append(User(name: String(parts[0]), role: role, passwordHash: String(parts[2])))
        }
        guard !out.isEmpty else { throw ParseError(description: "the users file lists no user") }
        return ConsoleUsers(users: out)
    }

    /// The user, when `password` is theirs. An unknown name costs a hash too (no timing hint
    /// of which names exist).
    public func authenticate(name: String, password: String) -> User? {
        guard let user = users[name] else {
            _ = PasswordHash.verify(password: password, encoded: Self.decoy)
            return nil
        }
        return PasswordHash.verify(password: password, encoded: user.passwordHash) ? user : nil
    }

    public func user(named name: String) -> User? { users[name] }

    /// Verified against when the name is unknown (same work as a real entry of default cost).
    static let decoy = PasswordHash.make(password: "decoy", iterations: 100_000)
}
