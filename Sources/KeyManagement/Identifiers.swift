/// Identifiers of TS 33.246 6.3 / 6.4.4, with the spec's names (`../shared/DESIGN.md` §2).

// KeyDomainID, MSKID, MTKID and CSBID are the MIKEY module's types (one definition of each
// spec identifier in the package); KeyManagement adds what it needs in extensions.
import MIKEY

extension KeyDomainID {
    public enum ParseError: Swift.Error, Equatable, Sendable {
        case invalidMCC(String)
        case invalidMNC(String)
    }

    /// TS 24.008 PLMN encoding (`mikey.md` M-9): MCC exactly 3 decimal digits, MNC 2 or 3;
    /// MCC 001 / MNC 01 → `00 f1 10`. Says which part is wrong.
    public static func parse(mcc: String, mnc: String) throws(ParseError) -> KeyDomainID {
        let digits: (String) -> Bool = { $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        guard mcc.utf8.count == 3, digits(mcc) else { throw .invalidMCC(mcc) }
        guard mnc.utf8.count == 2 || mnc.utf8.count == 3, digits(mnc), let k = KeyDomainID(mcc: mcc, mnc: mnc) else {
            throw .invalidMNC(mnc)
        }
        return k
    }

    /// 6 hex digits, e.g. `00f110`.
    public var hex: String { bytes.map { String($0, radix: 16).leftPadded(2) }.joined() }
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

extension MSKID {
    public init(keyGroup: KeyGroup, keyNumber: KeyNumber) { self.init(keyGroup: keyGroup.rawValue, keyNumber: keyNumber) }
    /// The Key Group as a validated value (nil for the forbidden 0).
    public var group: KeyGroup? { KeyGroup(keyGroup) }
    public var bytes: [UInt8] { bigEndianBytes(rawValue) }
    /// 8 hex digits, e.g. `00010002`.
    public var hex: String { String(rawValue, radix: 16).leftPadded(8) }
}

/// The largest MTK ID (and SEQu) allowed: 0xFFFF is never used (TS 33.246 6.3.1).
public let maximumMTKID: UInt16 = 0xFFFE

/// Key validity of an MSK: the UE accepts an MTK ID SEQp only if SEQl < SEQp ≤ SEQu
/// (TS 33.246 6.5.4; KV Interval in the KEMAC, 6.4.5.1).
public struct KeyValidity: Hashable, Sendable, CustomStringConvertible {
    public let seqL: UInt16
    public let seqU: UInt16
    public init(seqL: UInt16, seqU: UInt16) {
        self.seqL = seqL
        self.seqU = seqU
    }
    public func contains(_ mtkID: MTKID) -> Bool { contains(mtkID.rawValue) }
    public func contains(_ mtkID: UInt16) -> Bool { seqL < mtkID && mtkID <= seqU }
    /// Number of MTK IDs the window admits.
    public var count: Int { Int(seqU) - Int(seqL) }
    public var description: String { "(\(seqL), \(seqU)]" }
}

/// MKI = MSK ID ‖ MTK ID (TS 33.246 6.6.2).
public func mki(mskID: MSKID, mtkID: MTKID) -> [UInt8] {
    mskID.bytes + bigEndianBytes(mtkID.rawValue)
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
