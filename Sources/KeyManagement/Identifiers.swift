/// Identifiers of TS 33.246 6.3 / 6.4.4, with the spec's names (`../shared/DESIGN.md` §2).

/// Key Domain ID: MCC ‖ MNC in 3 octets (TS 33.246 6.3.1), encoded as a TS 24.008 PLMN
/// identity (`mikey.md` M-9): octet 0 = MCC2<<4 | MCC1, octet 1 = MNC3<<4 | MCC3
/// (MNC3 = 0xF for two-digit MNCs), octet 2 = MNC2<<4 | MNC1. MCC 001 / MNC 01 → `00 f1 10`.
public struct KeyDomainID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public let mcc: String
    public let mnc: String

    public enum Error: Swift.Error, Equatable, Sendable {
        case invalidMCC(String)
        case invalidMNC(String)
    }

    /// `mcc`: exactly 3 decimal digits; `mnc`: 2 or 3 decimal digits.
    public init(mcc: String, mnc: String) throws(Error) {
        let m = Array(mcc.utf8), n = Array(mnc.utf8)
        func digits(_ s: [UInt8]) -> [UInt8]? {
            var out: [UInt8] = []
            for c in s { guard c >= 0x30 && c <= 0x39 else { return nil }; out.append(c - 0x30) }
            return out
        }
        guard m.count == 3, let md = digits(m) else { throw .invalidMCC(mcc) }
        guard n.count == 2 || n.count == 3, let nd = digits(n) else { throw .invalidMNC(mnc) }
        let mnc3: UInt8 = nd.count == 3 ? nd[2] : 0xF
        bytes = [md[1] << 4 | md[0], mnc3 << 4 | md[2], nd[1] << 4 | nd[0]]
        self.mcc = mcc
        self.mnc = mnc
    }

    /// Decodes the 3 stored octets back (store round trip). Returns nil for a non-BCD value.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 3 else { return nil }
        let mcc1 = bytes[0] & 0xF, mcc2 = bytes[0] >> 4, mcc3 = bytes[1] & 0xF
        let mnc3 = bytes[1] >> 4, mnc1 = bytes[2] & 0xF, mnc2 = bytes[2] >> 4
        for d in [mcc1, mcc2, mcc3, mnc1, mnc2] where d > 9 { return nil }
        guard mnc3 <= 9 || mnc3 == 0xF else { return nil }
        self.bytes = bytes
        self.mcc = "\(mcc1)\(mcc2)\(mcc3)"
        self.mnc = mnc3 == 0xF ? "\(mnc1)\(mnc2)" : "\(mnc1)\(mnc2)\(mnc3)"
    }

    public var hex: String { bytes.map { String($0, radix: 16).leftPadded(2) }.joined() }
    public var description: String { "MCC \(mcc) / MNC \(mnc) (\(hex))" }
}

/// Key Group: the first two octets of the MSK ID; 0 is forbidden (TS 33.246 6.3.1).
public struct KeyGroup: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public let rawValue: UInt16
    /// nil for 0, which TS 33.246 6.3.1 forbids.
    public init?(_ rawValue: UInt16) {
        guard rawValue != 0 else { return nil }
        self.rawValue = rawValue
    }
    public static func < (a: KeyGroup, b: KeyGroup) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }

    public init(from decoder: Decoder) throws {
        let v = try decoder.singleValueContainer().decode(UInt16.self)
        guard v != 0 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "key group 0 is forbidden"))
        }
        rawValue = v
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// Key Number: the last two octets of the MSK ID. 0 means "current MSK" in requests and
/// solicited pull (TS 33.246 6.3.2.2.4), so stored MSKs never use it.
public typealias KeyNumber = UInt16

/// MSK ID = Key Group (2 octets) ‖ Key Number (2 octets) (TS 33.246 6.3.1).
public struct MSKID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let keyGroup: KeyGroup
    public let keyNumber: KeyNumber

    public init(keyGroup: KeyGroup, keyNumber: KeyNumber) {
        self.keyGroup = keyGroup
        self.keyNumber = keyNumber
    }

    public var rawValue: UInt32 { UInt32(keyGroup.rawValue) << 16 | UInt32(keyNumber) }
    public var bytes: [UInt8] { bigEndianBytes(rawValue) }
    public static func < (a: MSKID, b: MSKID) -> Bool { a.rawValue < b.rawValue }
    /// 8 hex digits, e.g. `00010002`.
    public var description: String { String(rawValue, radix: 16).leftPadded(8) }
}

/// MTK ID: 16-bit, first value under an MSK > 0, strictly increasing, 0xFFFF never used
/// (TS 33.246 6.3.1, 6.3.3.2.2).
public typealias MTKID = UInt16

/// The largest MTK ID (and SEQu) allowed: 0xFFFF is never used (TS 33.246 6.3.1).
public let maximumMTKID: MTKID = 0xFFFE

/// Crypto Session Bundle ID of a MIKEY header (RFC 3830 6.1; TS 33.246 6.4.2).
public typealias CSBID = UInt32

/// Key validity of an MSK: the UE accepts an MTK ID SEQp only if SEQl < SEQp ≤ SEQu
/// (TS 33.246 6.5.4; KV Interval in the KEMAC, 6.4.5.1).
public struct KeyValidity: Hashable, Sendable, CustomStringConvertible {
    public let seqL: MTKID
    public let seqU: MTKID
    public init(seqL: MTKID, seqU: MTKID) {
        self.seqL = seqL
        self.seqU = seqU
    }
    public func contains(_ mtkID: MTKID) -> Bool { seqL < mtkID && mtkID <= seqU }
    /// Number of MTK IDs the window admits.
    public var count: Int { Int(seqU) - Int(seqL) }
    public var description: String { "(\(seqL), \(seqU)]" }
}

/// MKI = MSK ID ‖ MTK ID (TS 33.246 6.6.2).
public func mki(mskID: MSKID, mtkID: MTKID) -> [UInt8] {
    mskID.bytes + [UInt8(mtkID >> 8), UInt8(mtkID & 0xFF)]
}

func bigEndianBytes(_ v: UInt32) -> [UInt8] {
    [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
}

func bigEndianBytes(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }

func bigEndianBytes(_ v: Int64) -> [UInt8] {
    let u = UInt64(bitPattern: v)
    return (0..<8).map { UInt8(u >> (56 - 8 * UInt64($0)) & 0xFF) }
}

extension String {
    func leftPadded(_ width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
