/// SRTP encryption algorithm code points (RFC 3830 6.10.1, SP type 0).
public enum SRTPEncryptionAlgorithm: UInt8, Sendable, Equatable {
    case null = 0
    case aesCM = 1
    case aesF8 = 2
}

/// SRTP authentication algorithm code points (RFC 3830 6.10.1 type 2; RFC 4771 adds RCCm1-3).
public enum SRTPAuthenticationAlgorithm: UInt8, Sendable, Equatable {
    case null = 0
    case hmacSHA1 = 1
    case rccm1 = 2
    case rccm2 = 3
    case rccm3 = 4
}

/// The SRTP security policy an SP payload signals (RFC 3830 6.10.1, RFC 4771 section 6 types
/// 13-19). `nil` means "parameter not sent" (the receiver applies the default). The SRTP
/// module has its own policy type; an adapter maps between them.
public struct SRTPPolicyParameters: Equatable, Sendable {
    public var encryptionAlgorithm: SRTPEncryptionAlgorithm?        // type 0
    public var sessionEncryptionKeyLength: UInt8?                   // type 1, octets
    public var authenticationAlgorithm: SRTPAuthenticationAlgorithm?  // type 2
    public var sessionAuthenticationKeyLength: UInt8?               // type 3, octets
    public var sessionSaltKeyLength: UInt8?                         // type 4, octets
    public var pseudoRandomFunction: UInt8?                         // type 5, 0 = AES-CM
    public var keyDerivationRate: UInt64?                           // type 6 (MBMS: 0)
    public var srtpEncryption: Bool?                                // type 7
    public var srtcpEncryption: Bool?                               // type 8
    public var fecOrder: UInt8?                                     // type 9
    public var srtpAuthentication: Bool?                            // type 10
    public var authenticationTagLength: UInt8?                      // type 11, octets
    public var srtpPrefixLength: UInt8?                             // type 12, octets
    public var rocTransmissionRate: UInt16?                         // type 13, R (RFC 4771; 2 octets, R-3)
    public var srtpAuthenticationAlgorithm: SRTPAuthenticationAlgorithm?   // type 14
    public var srtcpAuthenticationAlgorithm: SRTPAuthenticationAlgorithm?  // type 15
    public var srtpSessionAuthenticationKeyLength: UInt8?           // type 16
    public var srtcpSessionAuthenticationKeyLength: UInt8?          // type 17
    public var srtpAuthenticationTagLength: UInt8?                  // type 18, incl. ROC
    public var srtcpAuthenticationTagLength: UInt8?                 // type 19

    public init() {}

    /// The MBMS set recommended in rfc4771.md section 6 (AES-128, RCCm2 by default, R given).
    public static func mbmsRecommended(rocTransmissionRate: UInt16, authentication: SRTPAuthenticationAlgorithm = .rccm2,
                                       srtcpEncryption: Bool = false) -> SRTPPolicyParameters {
        var p = SRTPPolicyParameters()
        p.encryptionAlgorithm = .aesCM
        p.sessionEncryptionKeyLength = 16
        p.authenticationAlgorithm = authentication
        p.sessionAuthenticationKeyLength = 20
        p.sessionSaltKeyLength = 14
        p.pseudoRandomFunction = 0
        p.keyDerivationRate = 0
        p.srtpEncryption = true
        p.srtcpEncryption = srtcpEncryption
        p.fecOrder = 0
        p.srtpAuthentication = true
        let tag: UInt8 = authentication == .rccm3 ? 4 : (authentication == .hmacSHA1 ? 10 : 14)
        p.authenticationTagLength = tag
        p.rocTransmissionRate = rocTransmissionRate
        p.srtpAuthenticationAlgorithm = authentication
        p.srtcpAuthenticationAlgorithm = .hmacSHA1
        p.srtpAuthenticationTagLength = tag
        p.srtcpAuthenticationTagLength = 10
        return p
    }

    // Effective values (RFC 4771 R-2: types 14/16/18 override 2/3/11 for SRTP, 15/17/19 for
    // SRTCP; R defaults to 1 when absent, R-6).
    public var effectiveSRTPAuthenticationAlgorithm: SRTPAuthenticationAlgorithm {
        srtpAuthenticationAlgorithm ?? authenticationAlgorithm ?? .hmacSHA1
    }
    public var effectiveSRTCPAuthenticationAlgorithm: SRTPAuthenticationAlgorithm {
        srtcpAuthenticationAlgorithm ?? authenticationAlgorithm ?? .hmacSHA1
    }
    public var effectiveROCTransmissionRate: UInt16 { rocTransmissionRate ?? 1 }

    /// Type-ordered parameter list; one octet per value except kdr (minimal octets, at least
    /// one) and R (2 octets, rfc4771.md R-3).
    public func encodedParameters() -> [PolicyParameter] {
        var out: [PolicyParameter] = []
        func add(_ t: UInt8, _ v: UInt8?) { if let v { out.append(PolicyParameter(type: t, value: [v])) } }
        func add(_ t: UInt8, _ v: Bool?) { if let v { out.append(PolicyParameter(type: t, value: [v ? 1 : 0])) } }
        add(0, encryptionAlgorithm?.rawValue)
        add(1, sessionEncryptionKeyLength)
        add(2, authenticationAlgorithm?.rawValue)
        add(3, sessionAuthenticationKeyLength)
        add(4, sessionSaltKeyLength)
        add(5, pseudoRandomFunction)
        if let kdr = keyDerivationRate {
            var bytes: [UInt8] = []
            var v = kdr
            repeat { bytes.insert(UInt8(v & 0xFF), at: 0); v >>= 8 } while v > 0
            out.append(PolicyParameter(type: 6, value: bytes))
        }
        add(7, srtpEncryption)
        add(8, srtcpEncryption)
        add(9, fecOrder)
        add(10, srtpAuthentication)
        add(11, authenticationTagLength)
        add(12, srtpPrefixLength)
        if let r = rocTransmissionRate { out.append(PolicyParameter(type: 13, value: [UInt8(r >> 8), UInt8(r & 0xFF)])) }
        add(14, srtpAuthenticationAlgorithm?.rawValue)
        add(15, srtcpAuthenticationAlgorithm?.rawValue)
        add(16, srtpSessionAuthenticationKeyLength)
        add(17, srtcpSessionAuthenticationKeyLength)
        add(18, srtpAuthenticationTagLength)
        add(19, srtcpAuthenticationTagLength)
        return out
    }

    /// Interprets SRTP SP parameters strictly: known types with valid lengths and code points,
    /// each at most once. `firstParameterOffset` is the message offset of the first parameter's
    /// Type octet, so errors point at the offending parameter.
    public init(parameters: [PolicyParameter], firstParameterOffset: Int = 0) throws(MIKEYError) {
        self.init()
        var seen: Set<UInt8> = []
        var offset = firstParameterOffset
        for p in parameters {
            let here = offset
            offset += 2 + p.value.count
            func fail(_ rule: String) -> MIKEYError {
                .invalidValue(payload: .securityPolicy, offset: here, field: "SRTP policy param \(p.type) (\(p.value.count) octets)",
                              value: Int(bigEndianValue(p.value)), rule: rule)
            }
            guard seen.insert(p.type).inserted else { throw fail("RFC 3830 6.10: parameter type repeated") }
            func one() throws(MIKEYError) -> UInt8 {
                guard p.value.count == 1, let v = p.value.first else { throw fail("RFC 3830 6.10.1: one-octet value expected") }
                return v
            }
            func flag() throws(MIKEYError) -> Bool {
                let v = try one()
                guard v <= 1 else { throw fail("RFC 3830 6.10.1: on/off value must be 0 or 1") }
                return v == 1
            }
            func auth() throws(MIKEYError) -> SRTPAuthenticationAlgorithm {
                guard let a = SRTPAuthenticationAlgorithm(rawValue: try one()) else {
                    throw fail("RFC 3830 6.10.1 / RFC 4771: auth algorithm 0-4")
                }
                return a
            }
            switch p.type {
            case 0:
                guard let e = SRTPEncryptionAlgorithm(rawValue: try one()) else { throw fail("RFC 3830 6.10.1: encryption algorithm 0-2") }
                encryptionAlgorithm = e
            case 1: sessionEncryptionKeyLength = try one()
            case 2: authenticationAlgorithm = try auth()
            case 3: sessionAuthenticationKeyLength = try one()
            case 4: sessionSaltKeyLength = try one()
            case 5: pseudoRandomFunction = try one()
            case 6:
                guard (1...8).contains(p.value.count) else { throw fail("RFC 3830 6.10.1: key derivation rate of 1-8 octets") }
                keyDerivationRate = p.value.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            case 7: srtpEncryption = try flag()
            case 8: srtcpEncryption = try flag()
            case 9: fecOrder = try one()
            case 10: srtpAuthentication = try flag()
            case 11: authenticationTagLength = try one()
            case 12: srtpPrefixLength = try one()
            case 13:
                guard (1...4).contains(p.value.count) else { throw fail("RFC 4771 / rfc4771.md R-3: R of 1-4 octets") }
                let r = bigEndianValue(p.value)
                guard r != 0, r <= UInt32(UInt16.max) else { throw fail("RFC 4771 / rfc4771.md R-3: R in 1...65535") }
                rocTransmissionRate = UInt16(r)
            case 14: srtpAuthenticationAlgorithm = try auth()
            case 15: srtcpAuthenticationAlgorithm = try auth()
            case 16: srtpSessionAuthenticationKeyLength = try one()
            case 17: srtcpSessionAuthenticationKeyLength = try one()
            case 18: srtpAuthenticationTagLength = try one()
            case 19: srtcpAuthenticationTagLength = try one()
            default: throw fail("RFC 3830 6.10.1 / RFC 4771: SRTP parameter types 0-19")
            }
        }
    }
}
