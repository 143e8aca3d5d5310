/// Destination address → value, for the per-packet session lookup.
///
/// A gateway serves a handful of sessions (two addresses each), and hashing a
/// `TransportAddress` with the standard library's seeded SipHash costs more than comparing a
/// few of them: up to `linearLimit` entries are kept in an array and compared in order (the
/// IPv4 address and port in one 64-bit word first); more go to a dictionary.
public struct TransportAddressTable<Value> {
    public static var linearLimit: Int { 16 }

    private var keys: [TransportAddress] = []
    private var words: [UInt64] = []   // IPv4: address << 16 | port; IPv6: a marker never matched by IPv4
    private var values: [Value] = []
    private var hashed: [TransportAddress: Value]? = nil

    public init() {}

    public var count: Int { hashed?.count ?? keys.count }

    @inline(__always)
    static func word(_ a: TransportAddress) -> UInt64 {
        switch a.address {
        case .v4(let v): return UInt64(v) << 16 | UInt64(a.port)
        case .v6: return UInt64.max
        }
    }

    public subscript(_ key: TransportAddress) -> Value? {
        get {
            if let hashed { return hashed[key] }
            let w = Self.word(key)
            if w != UInt64.max {
                for i in words.indices where words[i] == w { return values[i] }
                return nil
            }
            for i in keys.indices where keys[i] == key { return values[i] }
            return nil
        }
        set {
            if hashed != nil {
                hashed?[key] = newValue
                return
            }
            if let i = keys.firstIndex(of: key) {
                if let v = newValue {
                    values[i] = v
                } else {
                    keys.remove(at: i)
                    words.remove(at: i)
                    values.remove(at: i)
                }
                return
            }
            guard let v = newValue else { return }
            keys.append(key)
            words.append(Self.word(key))
            values.append(v)
            if keys.count > Self.linearLimit {
                hashed = Dictionary(uniqueKeysWithValues: zip(keys, values))
                keys = []
                words = []
                values = []
            }
        }
    }
}

extension TransportAddressTable: Sendable where Value: Sendable {}
