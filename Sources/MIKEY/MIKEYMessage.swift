/// One payload of a MIKEY message (RFC 3830 6), in the set TS 33.246 uses.
public enum MIKEYPayload: Equatable, Sendable {
    case generalExtension(GeneralExtension)
    case timestamp(Timestamp)
    case rand(RANDPayload)
    case identity(IdentityPayload)
    case securityPolicy(SecurityPolicyPayload)
    case kemac(KEMACPayload)
    case verification(VerificationPayload)

    public var payloadType: UInt8 {
        switch self {
        case .generalExtension: return MIKEYPayloadType.generalExtension
        case .timestamp: return MIKEYPayloadType.timestamp
        case .rand: return MIKEYPayloadType.rand
        case .identity: return MIKEYPayloadType.identity
        case .securityPolicy: return MIKEYPayloadType.securityPolicy
        case .kemac: return MIKEYPayloadType.kemac
        case .verification: return MIKEYPayloadType.verification
        }
    }
}

/// A MIKEY message: header and the payloads in wire order. Next-payload octets are implied
/// by the order (each is the type of the following payload, 0 after the last).
public struct MIKEYMessage: Equatable, Sendable {
    public var header: MIKEYHeader
    public var payloads: [MIKEYPayload]
    /// Absolute offset of the KEMAC Encr data in the decoded bytes (nil when built or absent).
    public internal(set) var kemacEncryptedDataOffset: Int? = nil
    /// Offset of each payload's first octet in the decoded bytes (empty when built).
    public internal(set) var payloadOffsets: [Int] = []

    public init(header: MIKEYHeader, payloads: [MIKEYPayload]) {
        self.header = header
        self.payloads = payloads
    }

    public static func == (a: MIKEYMessage, b: MIKEYMessage) -> Bool {
        a.header == b.header && a.payloads == b.payloads
    }

    // MARK: accessors (first payload of each kind)

    public var keyIDInformation: KeyIDInformation? {
        for case .generalExtension(.keyID(let k)) in payloads { return k }
        return nil
    }
    public var timestamp: Timestamp? {
        for case .timestamp(let t) in payloads { return t }
        return nil
    }
    public var rand: [UInt8]? {
        for case .rand(let r) in payloads { return r.value }
        return nil
    }
    /// ID payloads in order (IDi precedes IDr, mikey.md 4.5).
    public var identities: [IdentityPayload] { payloads.compactMap { if case .identity(let i) = $0 { return i } else { return nil } } }
    public var securityPolicies: [SecurityPolicyPayload] {
        payloads.compactMap { if case .securityPolicy(let s) = $0 { return s } else { return nil } }
    }
    public var kemac: KEMACPayload? {
        if case .kemac(let k)? = payloads.last { return k }
        return nil
    }
    public var verification: VerificationPayload? {
        if case .verification(let v)? = payloads.last { return v }
        return nil
    }

    // MARK: encoding

    /// Wire bytes. Field sizes must fit their length fields (the builders check this; a
    /// hand-made message with, say, a 70 000-octet ID would not round-trip).
    public func encode() -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        header.encode(nextPayload: payloads.first?.payloadType ?? MIKEYPayloadType.last, into: &w)
        for (i, p) in payloads.enumerated() {
            w.write(i + 1 < payloads.count ? payloads[i + 1].payloadType : MIKEYPayloadType.last)
            switch p {
            case .generalExtension(let e): e.encode(into: &w)
            case .timestamp(let t): t.encode(into: &w)
            case .rand(let r): r.encode(into: &w)
            case .identity(let id): id.encode(into: &w)
            case .securityPolicy(let sp): sp.encode(into: &w)
            case .kemac(let k): k.encode(into: &w)
            case .verification(let v): v.encode(into: &w)
            }
        }
        return w.finish()
    }
}

/// Decoder: follows the next-payload chain from the HDR (RFC 3830 6) and rejects anything
/// malformed. Structural rules enforced here: KEMAC and V are last (their MAC covers the rest,
/// mikey.md 2/M-2), at most one T, RAND and KEMAC, no octets after the last payload.
public enum MIKEYDecoder {
    /// Upper bound on payloads in one message (guards against pathological chains).
    public static let maximumPayloadCount = 64

    public static func decode(_ bytes: [UInt8]) throws(MIKEYError) -> MIKEYMessage {
        var r = ByteReader(bytes)
        let (header, first) = try MIKEYHeader.decode(&r)
        var payloads: [MIKEYPayload] = []
        var next = first
        var kemacDataOffset: Int? = nil
        var offsets: [Int] = []
        var seenSingletons: Set<UInt8> = []
        while next != MIKEYPayloadType.last {
            let start = r.offset
            guard payloads.count < maximumPayloadCount else {
                throw .misplacedPayload(payload: .message, offset: start, rule: "more than \(maximumPayloadCount) payloads")
            }
            let type = next
            switch type {
            case MIKEYPayloadType.timestamp, MIKEYPayloadType.rand, MIKEYPayloadType.kemac, MIKEYPayloadType.verification:
                guard seenSingletons.insert(type).inserted else {
                    throw .misplacedPayload(payload: name(of: type), offset: start, rule: "RFC 3830 6 / TS 33.246 6.4.5: payload may occur once")
                }
            default: break
            }
            offsets.append(start)
            next = try r.readUInt8(name(of: type))
            switch type {
            case MIKEYPayloadType.generalExtension: payloads.append(.generalExtension(try GeneralExtension.decode(&r)))
            case MIKEYPayloadType.timestamp: payloads.append(.timestamp(try Timestamp.decode(&r)))
            case MIKEYPayloadType.rand: payloads.append(.rand(try RANDPayload.decode(&r)))
            case MIKEYPayloadType.identity: payloads.append(.identity(try IdentityPayload.decode(&r)))
            case MIKEYPayloadType.securityPolicy: payloads.append(.securityPolicy(try SecurityPolicyPayload.decode(&r)))
            case MIKEYPayloadType.kemac:
                let (k, off) = try KEMACPayload.decode(&r)
                payloads.append(.kemac(k))
                kemacDataOffset = off
            case MIKEYPayloadType.verification: payloads.append(.verification(try VerificationPayload.decode(&r)))
            default:
                throw .unsupportedPayloadType(offset: start, type: type)
            }
            if (type == MIKEYPayloadType.kemac || type == MIKEYPayloadType.verification) && next != MIKEYPayloadType.last {
                throw .misplacedPayload(payload: name(of: type), offset: start,
                                        rule: "TS 33.246 6.4.5 / RFC 3830 5.2: \(name(of: type).rawValue) must be the last payload (its MAC covers the rest)")
            }
        }
        if !r.isAtEnd {
            throw .trailingData(payload: .message, offset: r.offset, count: r.remaining)
        }
        var m = MIKEYMessage(header: header, payloads: payloads)
        m.kemacEncryptedDataOffset = kemacDataOffset
        m.payloadOffsets = offsets
        return m
    }

    static func name(of type: UInt8) -> MIKEYPayloadName {
        switch type {
        case MIKEYPayloadType.generalExtension: return .generalExtension
        case MIKEYPayloadType.timestamp: return .timestamp
        case MIKEYPayloadType.rand: return .rand
        case MIKEYPayloadType.identity: return .identity
        case MIKEYPayloadType.securityPolicy: return .securityPolicy
        case MIKEYPayloadType.kemac: return .kemac
        case MIKEYPayloadType.verification: return .verification
        default: return .message
        }
    }
}
