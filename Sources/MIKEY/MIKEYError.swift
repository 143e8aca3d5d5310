import CryptoCore

/// Names of the MIKEY structures an error can point at.
public enum MIKEYPayloadName: String, Sendable, Equatable {
    case header = "HDR"
    case csIDMap = "HDR CS ID map"
    case generalExtension = "EXT"
    case keyIDInformation = "EXT Key ID"
    case timestamp = "T"
    case rand = "RAND"
    case identity = "ID"
    case securityPolicy = "SP"
    case kemac = "KEMAC"
    case keyData = "Key data"
    case verification = "V"
    case message = "message"
}

/// Every way a MIKEY message can be malformed or a build request invalid.
///
/// Each case names the payload, the byte offset in the message (absolute; inside the
/// KEMAC's Encr data the offset still counts from the first HDR octet) and the rule broken,
/// citing the clause. Never carries key material.
public enum MIKEYError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer octets remain than the field needs.
    case truncated(payload: MIKEYPayloadName, offset: Int, needed: Int, available: Int)
    /// A field holds a value the rule forbids.
    case invalidValue(payload: MIKEYPayloadName, offset: Int, field: String, value: Int, rule: String)
    /// A length field disagrees with what the payload actually contains.
    case lengthMismatch(payload: MIKEYPayloadName, offset: Int, field: String, declared: Int, actual: Int, rule: String)
    /// The next-payload chain names a payload type this codec does not carry.
    case unsupportedPayloadType(offset: Int, type: UInt8)
    /// Octets left after the last payload (next payload = 0) or after the last Key data sub-payload.
    case trailingData(payload: MIKEYPayloadName, offset: Int, count: Int)
    /// A payload is where the rule does not allow it, is repeated, or is missing.
    case misplacedPayload(payload: MIKEYPayloadName, offset: Int, rule: String)
    /// Inputs given to a builder violate a rule (no byte offset: nothing was parsed).
    case invalidInput(field: String, rule: String)
    /// The crypto layer failed (never carries key bytes).
    case crypto(CryptoError)

    public var description: String {
        switch self {
        case let .truncated(p, o, n, a):
            return "\(p.rawValue) at offset \(o): truncated, \(n) octets needed, \(a) available (RFC 3830 6)"
        case let .invalidValue(p, o, f, v, r):
            return "\(p.rawValue) at offset \(o): \(f) = \(v) is not allowed (\(r))"
        case let .lengthMismatch(p, o, f, d, a, r):
            return "\(p.rawValue) at offset \(o): \(f) declares \(d) octets but \(a) are present (\(r))"
        case let .unsupportedPayloadType(o, t):
            return "payload at offset \(o): type \(t) is not supported in TS 33.246 MIKEY (RFC 3830 6.1)"
        case let .trailingData(p, o, c):
            return "\(p.rawValue) at offset \(o): \(c) octets after the last payload (RFC 3830 6.1)"
        case let .misplacedPayload(p, o, r):
            return "\(p.rawValue) at offset \(o): \(r)"
        case let .invalidInput(f, r):
            return "invalid \(f): \(r)"
        case let .crypto(e):
            return "crypto failure: \(e)"
        }
    }
}
