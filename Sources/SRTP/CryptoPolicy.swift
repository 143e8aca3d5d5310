/// SRTP encryption transform (RFC 3711 4.1, RFC 6188).
public enum SRTPCipher: String, Sendable, CaseIterable {
    case aesCM128 = "aes-128-cm"
    case aesCM192 = "aes-192-cm"
    case aesCM256 = "aes-256-cm"
    /// NULL cipher: payload in the clear, authentication unchanged (RFC 3711 4.1.3).
    case null

    /// Session encryption key length n_e in octets (0 for NULL).
    public var sessionKeyLength: Int {
        switch self {
        case .aesCM128: return 16
        case .aesCM192: return 24
        case .aesCM256: return 32
        case .null: return 0
        }
    }
}

/// SRTP integrity transform: RFC 3711 HMAC-SHA1 or the RFC 4771 ROC-carrying modes that
/// TS 33.246 6.6.2.1 requires for MBMS.
public enum SRTPAuthentication: String, Sendable, CaseIterable {
    case hmacSHA1_80 = "hmac-sha1-80"
    case hmacSHA1_32 = "hmac-sha1-32"
    /// RFC 4771 mode 1: ROC ‖ MAC on packets with SEQ mod R == 0, no tag on the others.
    case rccm1
    /// RFC 4771 mode 2: ROC ‖ MAC on carrying packets, the default-transform MAC on the others.
    case rccm2
    /// RFC 4771 mode 3: ROC only (no MAC) on carrying packets, no tag on the others.
    case rccm3

    public var carriesROC: Bool { self == .rccm1 || self == .rccm2 || self == .rccm3 }
}

/// Everything that fixes the SRTP/SRTCP wire format of one crypto context.
/// Defaults are the MBMS recommendations of `spec/README.md`.
public struct SRTPPolicy: Sendable, Equatable {
    public var cipher: SRTPCipher
    public var authentication: SRTPAuthentication
    /// RFC 4771 R: the ROC is carried when SEQ mod R == 0. Must be >= 1.
    public var rocTransmissionRate: UInt16
    /// RFC 4771 n_tag in octets for ROC-carrying packets, ROC included (14 for RCCm1/2, 4 for RCCm3).
    public var rccTagLength: Int
    /// RFC 4771 RCCm2 tag length of non-carrying packets: 10 (n_tag − 4, `rfc4771.md` R-1 default) or 14.
    public var rccm2NonCarryingTagLength: Int
    /// SRTCP E bit (TS 33.246 6.6.2.1A: encryption optional, integrity mandatory).
    public var srtcpEncryption: Bool
    /// SRTCP tag length in octets (HMAC-SHA1-80; RFC 4771 type 19).
    public var srtcpTagLength: Int
    /// MKI length in octets: 6 in MBMS (MSK ID ‖ MTK ID).
    public var mkiLength: Int
    /// ROC assumed by a fresh sender stream (and by a receiver whose ROC is signalled).
    public var initialROC: UInt32
    /// First SRTCP index sent (`srtp.md` S-1: 0; libsrtp sends 1).
    public var firstSRTCPIndex: UInt32

    public init(cipher: SRTPCipher = .aesCM128,
                authentication: SRTPAuthentication = .rccm2,
                rocTransmissionRate: UInt16 = 1,
                rccTagLength: Int? = nil,
                rccm2NonCarryingTagLength: Int = 10,
                srtcpEncryption: Bool = true,
                srtcpTagLength: Int = 10,
                mkiLength: Int = MasterKeyIdentifier.mbmsLength,
                initialROC: UInt32 = 0,
                firstSRTCPIndex: UInt32 = 0) {
        self.cipher = cipher
        self.authentication = authentication
        self.rocTransmissionRate = rocTransmissionRate
        self.rccTagLength = rccTagLength ?? (authentication == .rccm3 ? 4 : 14)
        self.rccm2NonCarryingTagLength = rccm2NonCarryingTagLength
        self.srtcpEncryption = srtcpEncryption
        self.srtcpTagLength = srtcpTagLength
        self.mkiLength = mkiLength
        self.initialROC = initialROC
        self.firstSRTCPIndex = firstSRTCPIndex
    }

    /// RFC 3711 AES_CM_128_HMAC_SHA1_80 without MKI (for RFC/libsrtp reference vectors).
    public static func rfc3711Default(mkiLength: Int = 0) -> SRTPPolicy {
        SRTPPolicy(cipher: .aesCM128, authentication: .hmacSHA1_80, mkiLength: mkiLength)
    }

    public enum ValidationError: Error, Equatable, Sendable, CustomStringConvertible {
        case rocTransmissionRateZero
        case invalidTagLength(String, Int)
        case invalidMKILength(Int)

        public var description: String {
            switch self {
            case .rocTransmissionRateZero: return "ROC transmission rate R must be at least 1 (RFC 4771 R-3)"
            case let .invalidTagLength(what, n): return "\(what) of \(n) octets is out of range"
            case let .invalidMKILength(n): return "MKI length \(n) is out of range 0...8"
            }
        }
    }

    public func validate() throws(ValidationError) {
        if rocTransmissionRate == 0 { throw .rocTransmissionRateZero }
        if !(0...8).contains(mkiLength) { throw .invalidMKILength(mkiLength) }
        if authentication == .rccm3 {
            if rccTagLength != 4 { throw .invalidTagLength("RCCm3 tag length", rccTagLength) }
        } else if authentication.carriesROC {
            if !(8...24).contains(rccTagLength) { throw .invalidTagLength("RCC tag length (ROC included)", rccTagLength) }
        }
        if !(4...20).contains(rccm2NonCarryingTagLength) { throw .invalidTagLength("RCCm2 non-carrying tag length", rccm2NonCarryingTagLength) }
        if !(4...20).contains(srtcpTagLength) { throw .invalidTagLength("SRTCP tag length", srtcpTagLength) }
    }

    /// The largest number of octets protection appends to an SRTP packet.
    public var maximumSRTPOverhead: Int { mkiLength + max(rccTagLength, rccm2NonCarryingTagLength, 10) }
    /// The number of octets protection appends to an SRTCP packet.
    public var srtcpOverhead: Int { 4 + mkiLength + srtcpTagLength }

    /// RFC 4771 3: whether the SRTP packet with this SEQ carries the ROC (SEQ mod R == 0).
    public func carriesROC(sequenceNumber seq: UInt16) -> Bool {
        authentication.carriesROC && seq % rocTransmissionRate == 0
    }

    /// Octets after the MKI of the SRTP packet with this SEQ (ROC and/or MAC).
    public func tagLength(sequenceNumber seq: UInt16) -> Int { tagLayout(sequenceNumber: seq).length }

    /// SRTP tag layout of a packet with sequence number `seq` (RFC 4771 3, `rfc4771.md` 3).
    @inline(__always)
    func tagLayout(sequenceNumber seq: UInt16) -> TagLayout {
        switch authentication {
        case .hmacSHA1_80: return TagLayout(carriesROC: false, macLength: 10)
        case .hmacSHA1_32: return TagLayout(carriesROC: false, macLength: 4)
        case .rccm1, .rccm2, .rccm3:
            let carry = seq % rocTransmissionRate == 0
            if carry { return TagLayout(carriesROC: true, macLength: authentication == .rccm3 ? 0 : rccTagLength - 4) }
            return TagLayout(carriesROC: false, macLength: authentication == .rccm2 ? rccm2NonCarryingTagLength : 0)
        }
    }
}

/// What follows the MKI in one SRTP packet.
struct TagLayout {
    var carriesROC: Bool
    var macLength: Int
    var length: Int { (carriesROC ? 4 : 0) + macLength }
}
