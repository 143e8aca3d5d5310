import CryptoCore
import Foundation

/// Why a GBA derivation could not be made. Never carries key material.
public enum GBAError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A KDF input parameter longer than its 2-octet length field allows (TS 33.220 B.2.0).
    case parameterTooLong(index: Int, length: Int)
    /// A Ua security protocol identifier that is not 5 octets (TS 33.220 H.2).
    case invalidUaSecurityProtocolID(length: Int)
    /// The Zn answer for a GBA_U subscriber lacks Ks_int_NAF although the UICC case needs it.
    case missingKsIntNAF
    /// OpenSSL failed in HMAC-SHA-256.
    case crypto(CryptoError)

    public var description: String {
        switch self {
        case let .parameterTooLong(index, length):
            return "GBA KDF: parameter P\(index) of \(length) octets exceeds 65535 (TS 33.220 B.2.0, 2-octet Li)"
        case let .invalidUaSecurityProtocolID(length):
            return "Ua security protocol identifier of \(length) octets; 5 required (TS 33.220 H.2)"
        case .missingKsIntNAF:
            return "GBA_U Zn answer without Ks_int_NAF (TS 33.246 6.1: the MUK of the UICC case)"
        case let .crypto(e):
            return "GBA KDF: \(e)"
        }
    }
}

/// The Ua security protocol identifier appended to the NAF FQDN in NAF_Id (TS 33.220 H.2/H.3,
/// `keyserver.md` §2.1). Five octets.
public struct UaSecurityProtocolID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(GBAError) {
        guard bytes.count == 5 else { throw .invalidUaSecurityProtocolID(length: bytes.count) }
        self.bytes = bytes
    }

    private init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// 01 00 00 00 01: TS 33.246 MBMS (TS 33.220 H.3) — the default of this key server.
    public static let mbms = UaSecurityProtocolID(unchecked: [0x01, 0x00, 0x00, 0x00, 0x01])
    /// 01 00 00 00 02: generic HTTP Digest per TS 24.109.
    public static let httpDigest = UaSecurityProtocolID(unchecked: [0x01, 0x00, 0x00, 0x00, 0x02])
    /// 01 00 00 00 03: HTTP-based security procedures for IMS-based MBMS (TS 26.237).
    public static let imsMBMSHTTP = UaSecurityProtocolID(unchecked: [0x01, 0x00, 0x00, 0x00, 0x03])

    public var description: String { Hex.encode(bytes) }
}

/// Which GBA run produced the keys (Zn answer, TS 33.220 4.5.3 / TS 29.109 GBA-Type).
public enum GBAType: String, Sendable, Hashable, CaseIterable {
    case gbaME = "GBA_ME"
    case gbaU = "GBA_U"
    case gba2G = "2G_GBA"
}

/// Where MBMS key management runs for a UE (TS 33.246 6.1, table in `keyserver.md` §2.3).
public enum KeyManagementLocation: String, Sendable, Hashable {
    /// The ME: MUK = Ks_(ext)_NAF, MRK = KDF(Ks_(ext)_NAF, "mbms-mrk").
    case me
    /// The UICC (GBA_U only): MUK = Ks_int_NAF, MRK = Ks_ext_NAF.
    case uicc
}

/// TS 33.220 Annex B key derivation function and the NAF-specific keys the BM-SC needs.
public enum GBAKeyDerivation {
    /// FC for the NAF-specific key derivations (TS 33.220 B.3) and the MRK (TS 33.246 Annex F).
    public static let fcNAF: UInt8 = 0x01
    /// "gba-me" (TS 33.220 B.3): Ks_NAF and Ks_ext_NAF.
    public static let gbaME = Array("gba-me".utf8)
    /// "gba-u" (TS 33.220 B.3): Ks_int_NAF.
    public static let gbaU = Array("gba-u".utf8)
    /// "mbms-mrk" (TS 33.246 Annex F).
    public static let mbmsMRK = Array("mbms-mrk".utf8)

    /// S = FC ‖ P0 ‖ L0 ‖ P1 ‖ L1 ‖ … with each Li two octets big-endian (TS 33.220 B.2.0).
    public static func encodeS(fc: UInt8, parameters: [[UInt8]]) throws(GBAError) -> [UInt8] {
        var s: [UInt8] = [fc]
        s.reserveCapacity(1 + parameters.reduce(0) { $0 + $1.count + 2 })
        for (index, p) in parameters.enumerated() {
            guard p.count <= 0xFFFF else { throw .parameterTooLong(index: index, length: p.count) }
            s.append(contentsOf: p)
            s.append(UInt8(p.count >> 8))
            s.append(UInt8(p.count & 0xFF))
        }
        return s
    }

    /// KDF(Key, S) = HMAC-SHA-256(Key, S) (TS 33.220 B.2.0); 32 octets.
    public static func kdf(key: SecretBytes, fc: UInt8, parameters: [[UInt8]]) throws(GBAError) -> SecretBytes {
        var s = try encodeS(fc: fc, parameters: parameters)
        var k = key.revealedBytes()
        defer { SecureZero.zero(&k); SecureZero.zero(&s) }
        do {
            var out = try HMACSHA256.authenticate(key: k, message: s)
            defer { SecureZero.zero(&out) }
            return SecretBytes(out)
        } catch {
            throw .crypto(error)
        }
    }

    /// NAF_Id = NAF FQDN (UTF-8) ‖ Ua security protocol identifier (TS 33.220 B.3 / H.3).
    public static func nafID(fqdn: String, ua: UaSecurityProtocolID = .mbms) -> [UInt8] {
        Array(fqdn.utf8) + ua.bytes
    }

    /// Ks_NAF (GBA_ME, 2G GBA) = Ks_ext_NAF (GBA_U) = KDF(Ks, "gba-me", RAND, IMPI, NAF_Id).
    public static func ksNAF(ks: SecretBytes, rand: [UInt8], impi: String, nafID: [UInt8]) throws(GBAError) -> SecretBytes {
        try kdf(key: ks, fc: fcNAF, parameters: [gbaME, rand, Array(impi.utf8), nafID])
    }

    /// Ks_int_NAF (GBA_U) = KDF(Ks, "gba-u", RAND, IMPI, NAF_Id); the UICC's MUK.
    public static func ksIntNAF(ks: SecretBytes, rand: [UInt8], impi: String, nafID: [UInt8]) throws(GBAError) -> SecretBytes {
        try kdf(key: ks, fc: fcNAF, parameters: [gbaU, rand, Array(impi.utf8), nafID])
    }

    /// MRK = KDF(Ks_(ext)_NAF, FC 0x01, "mbms-mrk") (TS 33.246 Annex F).
    public static func mrk(fromKsNAF ksNAF: SecretBytes) throws(GBAError) -> SecretBytes {
        try kdf(key: ksNAF, fc: fcNAF, parameters: [mbmsMRK])
    }

    /// The Digest password: base64(MRK), RFC 4648 standard alphabet with padding (`keyserver.md` K2).
    /// The caller owns the returned bytes and should zero them.
    public static func digestPassword(mrk: SecretBytes) -> [UInt8] {
        var raw = mrk.revealedBytes()
        defer { SecureZero.zero(&raw) }
        return Array(Data(raw).base64EncodedData())
    }

    /// The MUK/MRK candidates for a Zn answer (TS 33.246 6.1, `keyserver.md` §2.3): one for
    /// GBA_ME and 2G GBA; for GBA_U both the UICC and the ME case (ambiguity K1: the Digest
    /// response tells which one the UE uses). `only` restricts to a cached location.
    public static func userKeyCandidates(for answer: BootstrappingAnswer, only: KeyManagementLocation? = nil) throws(GBAError) -> [MBMSUserKeys] {
        var out: [MBMSUserKeys] = []
        switch answer.gbaType {
        case .gbaME, .gba2G:
            if only == nil || only == .me {
                out.append(MBMSUserKeys(location: .me, muk: answer.ksNAF, mrk: try mrk(fromKsNAF: answer.ksNAF)))
            }
        case .gbaU:
            if only == nil || only == .uicc {
                if let ksInt = answer.ksIntNAF {
                    out.append(MBMSUserKeys(location: .uicc, muk: ksInt, mrk: answer.ksNAF))
                } else if only == .uicc {
                    throw .missingKsIntNAF
                }
            }
            if only == nil || only == .me {
                out.append(MBMSUserKeys(location: .me, muk: answer.ksNAF, mrk: try mrk(fromKsNAF: answer.ksNAF)))
            }
        }
        return out
    }
}

/// One MUK/MRK pair of a UE (TS 33.246 6.1).
public struct MBMSUserKeys: Sendable {
    public var location: KeyManagementLocation
    /// Protects MSK delivery (MIKEY), identified by IDi = BM-SC FQDN, IDr = B-TID.
    public var muk: SecretBytes
    /// The Digest password key (password = base64(MRK)).
    public var mrk: SecretBytes
}

/// What the BSF answers over Zn for a B-TID and NAF_Id (TS 33.220 4.5.3, TS 29.109).
public struct BootstrappingAnswer: Sendable {
    public var btid: String
    public var impi: String
    public var gbaType: GBAType
    /// Ks_NAF (GBA_ME, 2G GBA) or Ks_ext_NAF (GBA_U).
    public var ksNAF: SecretBytes
    /// Ks_int_NAF (GBA_U only).
    public var ksIntNAF: SecretBytes?
    /// End of the key lifetime (TS 33.220 4.5.3: Bootstrapping-time + Key-lifetime).
    public var keyExpiry: Date

    public init(btid: String, impi: String, gbaType: GBAType, ksNAF: SecretBytes, ksIntNAF: SecretBytes? = nil, keyExpiry: Date) {
        self.btid = btid; self.impi = impi; self.gbaType = gbaType
        self.ksNAF = ksNAF; self.ksIntNAF = ksIntNAF; self.keyExpiry = keyExpiry
    }
}

/// Why the BSF gave no answer (as opposed to "unknown B-TID", which is `nil`).
public enum BootstrappingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No answer over Zn in time → the key server answers 504 (TS 33.246 Table G.2.4-1).
    case timeout
    /// The Zn peer or table failed → 503.
    case unavailable(String)

    public var description: String {
        switch self {
        case .timeout: return "no answer from the BSF over Zn"
        case let .unavailable(why): return "bootstrapping function unavailable: \(why)"
        }
    }
}

/// The Zn reference point as the BM-SC (NAF) sees it: B-TID + NAF_Id → NAF keys, IMPI, lifetime.
public protocol Bootstrapping: Sendable {
    /// nil when the BSF does not know the B-TID (the UE must bootstrap again → 401).
    func answer(btid: String, nafID: [UInt8]) throws(BootstrappingError) -> BootstrappingAnswer?
}

/// A BSF in memory: the bootstrapped sessions (B-TID → Ks, RAND, IMPI, type, expiry), deriving
/// the NAF keys on each query as the BSF does. For tests and the embedded default table.
public struct InMemoryBootstrapping: Bootstrapping {
    public struct Session: Sendable {
        public var ks: SecretBytes
        public var rand: [UInt8]
        public var impi: String
        public var gbaType: GBAType
        public var keyExpiry: Date
        public init(ks: SecretBytes, rand: [UInt8], impi: String, gbaType: GBAType, keyExpiry: Date) {
            self.ks = ks; self.rand = rand; self.impi = impi; self.gbaType = gbaType; self.keyExpiry = keyExpiry
        }
    }

    public var sessions: [String: Session]

    public init(sessions: [String: Session] = [:]) { self.sessions = sessions }

    public func answer(btid: String, nafID: [UInt8]) throws(BootstrappingError) -> BootstrappingAnswer? {
        guard let s = sessions[btid] else { return nil }
        do {
            let ext = try GBAKeyDerivation.ksNAF(ks: s.ks, rand: s.rand, impi: s.impi, nafID: nafID)
            let int = s.gbaType == .gbaU ? try GBAKeyDerivation.ksIntNAF(ks: s.ks, rand: s.rand, impi: s.impi, nafID: nafID) : nil
            return BootstrappingAnswer(btid: btid, impi: s.impi, gbaType: s.gbaType, ksNAF: ext, ksIntNAF: int, keyExpiry: s.keyExpiry)
        } catch {
            throw .unavailable(error.description)
        }
    }
}
