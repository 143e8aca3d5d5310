/// 32-bit crypto session bundle ID of the HDR (RFC 3830 6.1). Meaningless in MBMS but it
/// enters the key derivation (RFC 3830 4.1.4), so the BM-SC picks it at random (TS 33.246 6.4.5).
public struct CSBID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ value: UInt32) { self.rawValue = value }
    public var description: String { "CSB ID 0x" + String(rawValue, radix: 16) }
}

/// Key Domain ID = MCC || MNC, 3 octets (TS 33.246 6.3.1), compared as an opaque value.
/// Encoding built here: TS 24.008 PLMN identity (mikey.md M-9).
public struct KeyDomainID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Exactly 3 octets, else nil.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 3 else { return nil }
        self.bytes = bytes
    }

    /// TS 24.008 10.5.1.3 PLMN encoding: MCC digit 2|digit 1, MNC digit 3|MCC digit 3,
    /// MNC digit 2|MNC digit 1; a two-digit MNC has 0xF as digit 3. nil unless the MCC has
    /// 3 decimal digits and the MNC 2 or 3.
    public init?(mcc: String, mnc: String) {
        let m = mcc.utf8.map { Int($0) - 0x30 }, n = mnc.utf8.map { Int($0) - 0x30 }
        guard m.count == 3, n.count == 2 || n.count == 3,
              (m + n).allSatisfy({ (0...9).contains($0) }) else { return nil }
        let mnc3 = n.count == 3 ? n[2] : 0xF
        bytes = [UInt8(m[1] << 4 | m[0]), UInt8(mnc3 << 4 | m[2]), UInt8(n[1] << 4 | n[0])]
    }

    public var description: String { "Key Domain ID " + bytes.map { String($0, radix: 16) }.joined() }
}

/// MSK ID = Key Group (2 octets) || Key Number (2 octets) (TS 33.246 6.3.1).
/// Key Group 0 is not allowed; Key Number 0 means "current MSK" (solicited pull, 6.3.2.2.4).
public struct MSKID: Hashable, Sendable, CustomStringConvertible {
    public var keyGroup: UInt16
    public var keyNumber: UInt16
    public init(keyGroup: UInt16, keyNumber: UInt16) {
        self.keyGroup = keyGroup
        self.keyNumber = keyNumber
    }
    public init(rawValue: UInt32) {
        keyGroup = UInt16(rawValue >> 16)
        keyNumber = UInt16(rawValue & 0xFFFF)
    }
    public var rawValue: UInt32 { UInt32(keyGroup) << 16 | UInt32(keyNumber) }
    public var description: String { "MSK ID 0x" + String(rawValue, radix: 16) }
}

/// MTK ID: 16-bit sequence number under one MSK (TS 33.246 6.3.1); strictly increasing,
/// bounded by the MSK's key validity SEQl < MTK ID <= SEQu (6.5.4).
public struct MTKID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ value: UInt16) { self.rawValue = value }
    public static func < (a: MTKID, b: MTKID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "MTK ID \(rawValue)" }
}
