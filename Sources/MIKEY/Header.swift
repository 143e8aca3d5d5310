/// HDR data type (RFC 3830 6.1). TS 33.246 uses only the pre-shared-key kinds.
public enum MIKEYDataType: UInt8, Sendable, Equatable {
    /// Pre-shared key initiator message: MSK and MTK delivery (TS 33.246 6.4.5.1, 6.4.5.3).
    case preShared = 0
    /// Pre-shared key verification message (TS 33.246 6.4.5.2).
    case preSharedVerification = 1
}

/// One SRTP-ID map entry (RFC 3830 6.1.1): Policy_no (8) || SSRC (32) || ROC (32).
public struct SRTPCryptoSession: Equatable, Sendable {
    public var policyNumber: UInt8
    public var ssrc: UInt32
    public var roc: UInt32
    public init(policyNumber: UInt8, ssrc: UInt32, roc: UInt32) {
        self.policyNumber = policyNumber
        self.ssrc = ssrc
        self.roc = roc
    }
}

/// CS ID map of the HDR. MSK streaming: SRTP-ID with one entry; everything else in MBMS:
/// the Empty map of RFC 4563 with #CS = 0 (TS 33.246 6.4.5.1, 6.4.5.3).
public enum CSIDMap: Equatable, Sendable {
    case srtpID([SRTPCryptoSession])
    case empty

    var mapType: UInt8 {
        switch self {
        case .srtpID: return 0
        case .empty: return 1
        }
    }
    var sessionCount: Int {
        switch self {
        case .srtpID(let s): return s.count
        case .empty: return 0
        }
    }
}

/// The MIKEY common header (RFC 3830 6.1; mikey.md 3). The next-payload octet is not stored:
/// it is the type of the first entry of `MIKEYMessage.payloads`.
public struct MIKEYHeader: Equatable, Sendable {
    public static let version: UInt8 = 1
    /// PRF func 0 = MIKEY-1 (RFC 3830 4.1.2), the only one TS 33.246 uses.
    public static let prfMIKEY1: UInt8 = 0

    public var dataType: MIKEYDataType
    /// V bit: the initiator asks for a verification message (TS 33.246 6.4.5.1).
    public var verificationRequested: Bool
    public var csbID: CSBID
    public var csIDMap: CSIDMap

    public init(dataType: MIKEYDataType, verificationRequested: Bool, csbID: CSBID, csIDMap: CSIDMap) {
        self.dataType = dataType
        self.verificationRequested = verificationRequested
        self.csbID = csbID
        self.csIDMap = csIDMap
    }

    func encode(nextPayload: UInt8, into w: inout ByteWriter) {
        w.write(Self.version)
        w.write(dataType.rawValue)
        w.write(nextPayload)
        w.write((verificationRequested ? 0x80 : 0) | Self.prfMIKEY1)
        w.write(csbID.rawValue)
        w.write(UInt8(truncatingIfNeeded: csIDMap.sessionCount))
        w.write(csIDMap.mapType)
        if case .srtpID(let sessions) = csIDMap {
            for s in sessions {
                w.write(s.policyNumber)
                w.write(s.ssrc)
                w.write(s.roc)
            }
        }
    }

    /// Decodes the header; returns it with the type of the first payload.
    static func decode(_ r: inout ByteReader) throws(MIKEYError) -> (MIKEYHeader, UInt8) {
        let start = r.offset
        try r.require(10, .header)
        let version = try r.readUInt8(.header)
        guard version == Self.version else {
            throw .invalidValue(payload: .header, offset: start, field: "version", value: Int(version), rule: "RFC 3830 6.1: version must be 1")
        }
        let rawType = try r.readUInt8(.header)
        guard let dataType = MIKEYDataType(rawValue: rawType) else {
            throw .invalidValue(payload: .header, offset: start + 1, field: "data type", value: Int(rawType),
                                rule: "TS 33.246 6.4.5: only data types 0 (PSK) and 1 (PSK verification) are used")
        }
        let next = try r.readUInt8(.header)
        let vprf = try r.readUInt8(.header)
        guard vprf & 0x7F == Self.prfMIKEY1 else {
            throw .invalidValue(payload: .header, offset: start + 3, field: "PRF func", value: Int(vprf & 0x7F),
                                rule: "TS 33.246 6.4.1 / RFC 3830 6.1: PRF func must be 0 (MIKEY-1)")
        }
        let csb = try r.readUInt32(.header)
        let count = Int(try r.readUInt8(.header))
        let mapType = try r.readUInt8(.header)
        let map: CSIDMap
        switch mapType {
        case 0:
            let mapStart = r.offset
            try r.require(count * 9, .csIDMap, at: mapStart)
            var sessions: [SRTPCryptoSession] = []
            for _ in 0..<count {
                sessions.append(SRTPCryptoSession(policyNumber: try r.readUInt8(.csIDMap),
                                                  ssrc: try r.readUInt32(.csIDMap), roc: try r.readUInt32(.csIDMap)))
            }
            map = .srtpID(sessions)
        case 1:
            guard count == 0 else {
                throw .invalidValue(payload: .header, offset: start + 8, field: "#CS", value: count,
                                    rule: "RFC 4563 / TS 33.246 6.4.5: the Empty map has #CS = 0")
            }
            map = .empty
        default:
            throw .invalidValue(payload: .header, offset: start + 9, field: "CS ID map type", value: Int(mapType),
                                rule: "TS 33.246 6.4.5: map type 0 (SRTP-ID) or 1 (Empty map)")
        }
        return (MIKEYHeader(dataType: dataType, verificationRequested: vprf & 0x80 != 0, csbID: CSBID(csb), csIDMap: map), next)
    }
}
