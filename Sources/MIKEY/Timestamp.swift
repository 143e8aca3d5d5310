/// Timestamp payload (RFC 3830 6.6, type 5). TS 33.246 6.4.3 uses only TS type 2, COUNTER.
public enum Timestamp: Equatable, Sendable {
    case ntpUTC(UInt64)      // TS type 0
    case ntp(UInt64)         // TS type 1
    case counter(UInt32)     // TS type 2 (TS 33.246 6.4.3)

    var tsType: UInt8 {
        switch self {
        case .ntpUTC: return 0
        case .ntp: return 1
        case .counter: return 2
        }
    }

    /// The 64-bit T used in the KEMAC IV and the V MAC: a COUNTER is zero-extended on the
    /// left (RFC 3830 4.2.3; mikey.md 6.1, M-4).
    public var value64: UInt64 {
        switch self {
        case .ntpUTC(let v), .ntp(let v): return v
        case .counter(let c): return UInt64(c)
        }
    }

    func encode(into w: inout ByteWriter) {
        w.write(tsType)
        switch self {
        case .ntpUTC(let v), .ntp(let v): w.write(v)
        case .counter(let c): w.write(c)
        }
    }

    static func decode(_ r: inout ByteReader) throws(MIKEYError) -> Timestamp {
        let start = r.offset
        let type = try r.readUInt8(.timestamp)
        switch type {
        case 0: return .ntpUTC(try r.readUInt64(.timestamp))
        case 1: return .ntp(try r.readUInt64(.timestamp))
        case 2: return .counter(try r.readUInt32(.timestamp))
        default:
            throw .invalidValue(payload: .timestamp, offset: start, field: "TS type", value: Int(type),
                                rule: "RFC 3830 6.6 / TS 33.246 6.4.3: TS type 0, 1 or 2 (COUNTER)")
        }
    }
}
