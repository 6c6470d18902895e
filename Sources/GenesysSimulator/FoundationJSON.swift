import Foundation
import IngestCore

// The simulator builds its answers as Foundation objects for `JSONSerialization`; what it
// stores and what its public API takes and returns are `JSONValue`s (no `[String: Any]` leaves
// the module). This is the one bridge between the two.
extension JSONValue {
    /// The Foundation object `JSONSerialization` writes as this value (whole numbers as `Int`,
    /// so they are written without a fraction).
    var foundationObject: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let b): return b
        case .number(let n):
            if n.rounded() == n, let whole = Int(exactly: n) { return whole }
            return n
        case .string(let s): return s
        case .array(let a): return a.map(\.foundationObject)
        case .object(let o): return o.mapValues(\.foundationObject)
        }
    }

    /// The value of a Foundation object `JSONSerialization` can write (`.null` if it cannot).
    init(foundation object: Any) {
        guard JSONSerialization.isValidJSONObject(object),
            let data = try? JSONSerialization.data(withJSONObject: object),
            let value = try? JSONValue.parse(data)
        else {
            self = .null
            return
        }
        self = value
    }

    /// A request body that must be a JSON object.
    static func object(from body: [UInt8]) -> [String: JSONValue]? {
        (try? JSONValue.parse(Data(body)))?.objectValue
    }
}
