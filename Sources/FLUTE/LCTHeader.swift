/// Widths of the TSI and TOI fields, from the S, O and H flags (RFC 5651 §5.1; `flute.md` 2).
/// TSI = 32·S + 16·H bits, TOI = 32·O + 16·H bits; H applies to both.
public struct IdentifierWidths: Equatable, Hashable, Sendable {
    public var s: UInt8
    public var o: UInt8
    public var h: Bool

    public init?(s: UInt8, o: UInt8, h: Bool) {
        guard s <= 1, o <= 3 else { return nil }
        self.s = s; self.o = o; self.h = h
    }

    public var tsiBits: Int { 32 * Int(s) + (h ? 16 : 0) }
    public var toiBits: Int { 32 * Int(o) + (h ? 16 : 0) }

    public static let tsi16toi16 = IdentifierWidths(uncheckedS: 0, o: 0, h: true)
    public static let tsi32toi32 = IdentifierWidths(uncheckedS: 1, o: 1, h: false)
    public static let tsi48toi48 = IdentifierWidths(uncheckedS: 1, o: 1, h: true)
    public static let tsi32toi64 = IdentifierWidths(uncheckedS: 1, o: 2, h: false)

    private init(uncheckedS s: UInt8, o: UInt8, h: Bool) { self.s = s; self.o = o; self.h = h }

    /// The sender's choice of `flute.md` 2: 16/16 while both fit, then 32/32, 48/48, 32/64.
    public static func smallest(tsi: UInt64, toi: UInt64) -> IdentifierWidths? {
        for w in [tsi16toi16, tsi32toi32, tsi48toi48, tsi32toi64] where fits(tsi, w.tsiBits) && fits(toi, w.toiBits) {
            return w
        }
        return nil
    }

    func fitsTSI(_ v: UInt64) -> Bool { Self.fits(v, tsiBits) }
    func fitsTOI(_ v: UInt64) -> Bool { Self.fits(v, toiBits) }
    private static func fits(_ v: UInt64, _ bits: Int) -> Bool { bits >= 64 || v < (UInt64(1) << UInt64(bits)) }
}

/// The LCT header of an ALC/FLUTE packet (RFC 5651 §5.1 / RFC 3451 §5.1; `flute.md` 2).
public struct LCTHeader: Equatable, Sendable {
    /// V: always 1.
    public var version: UInt8 = 1
    /// CCI, 4·(C+1) bytes. MBMS sends C = 0 and CCI = 0.
    public var congestionControlInformation: [UInt8] = [0, 0, 0, 0]
    /// Bits 6–7: PSI (RFC 5651) / reserved (RFC 3451). Sent 0, ignored on receive.
    public var protocolSpecificIndication: UInt8 = 0
    public var identifierWidths: IdentifierWidths
    /// Transport Session Identifier.
    public var tsi: UInt64
    /// Transport Object Identifier (values beyond 64 bits are refused on decode).
    public var toi: UInt64
    /// A: Close Session. The MBMS server always sends 0; receivers honour it.
    public var closeSession: Bool = false
    /// B: Close Object.
    public var closeObject: Bool = false
    /// RFC 3451 T flag: SCT present (never sent by this codec's sender, skipped on receive).
    public var senderCurrentTime: UInt32?
    /// RFC 3451 R flag: ERT present.
    public var expectedResidualTime: UInt32?
    /// Codepoint: the FEC Encoding ID in ALC/FLUTE (0 = Compact No-Code).
    public var codepoint: UInt8 = 0
    public var headerExtensions: [LCTHeaderExtension] = []

    public init(identifierWidths: IdentifierWidths, tsi: UInt64, toi: UInt64, closeObject: Bool = false,
                codepoint: UInt8 = 0, headerExtensions: [LCTHeaderExtension] = []) {
        self.identifierWidths = identifierWidths; self.tsi = tsi; self.toi = toi
        self.closeObject = closeObject; self.codepoint = codepoint; self.headerExtensions = headerExtensions
    }

    public var fdt: EXTFDT? { for case .fdt(let e) in headerExtensions { return e }; return nil }
    public var fti: EXTFTI? { for case .fti(let e) in headerExtensions { return e }; return nil }
    public var cenc: EXTCENC? { for case .cenc(let e) in headerExtensions { return e }; return nil }

    /// HDR_LEN · 4: the encoded header length in bytes.
    public var encodedLength: Int {
        4 + congestionControlInformation.count + 4 * (Int(identifierWidths.s) + Int(identifierWidths.o) + (identifierWidths.h ? 1 : 0))
            + (senderCurrentTime == nil ? 0 : 4) + (expectedResidualTime == nil ? 0 : 4)
            + headerExtensions.reduce(0) { $0 + $1.encodedLength }
    }

    func encode(into w: inout PacketWriter) throws(FLUTEPacketError) {
        let cciWords = congestionControlInformation.count / 4
        guard congestionControlInformation.count % 4 == 0, (1...4).contains(cciWords) else {
            throw .unrepresentable(structure: .lctHeader, field: "CCI length in bytes", value: UInt64(congestionControlInformation.count))
        }
        guard version <= 0xF else { throw .unrepresentable(structure: .lctHeader, field: "V", value: UInt64(version)) }
        guard protocolSpecificIndication <= 3 else { throw .unrepresentable(structure: .lctHeader, field: "PSI", value: UInt64(protocolSpecificIndication)) }
        guard identifierWidths.tsiBits > 0, identifierWidths.fitsTSI(tsi) else {
            throw .unrepresentable(structure: .lctHeader, field: "TSI (\(identifierWidths.tsiBits) bits)", value: tsi)
        }
        guard identifierWidths.toiBits > 0, identifierWidths.fitsTOI(toi) else {
            throw .unrepresentable(structure: .lctHeader, field: "TOI (\(identifierWidths.toiBits) bits)", value: toi)
        }
        let length = encodedLength
        guard length % 4 == 0, length / 4 <= 255 else { throw .unrepresentable(structure: .lctHeader, field: "HDR_LEN (bytes)", value: UInt64(length)) }
        w.append(version << 4 | UInt8(cciWords - 1) << 2 | protocolSpecificIndication)
        var b1: UInt8 = identifierWidths.s << 7 | identifierWidths.o << 5
        if identifierWidths.h { b1 |= 0x10 }
        if senderCurrentTime != nil { b1 |= 0x08 }
        if expectedResidualTime != nil { b1 |= 0x04 }
        if closeSession { b1 |= 0x02 }
        if closeObject { b1 |= 0x01 }
        w.append(b1)
        w.append(UInt8(length / 4))
        w.append(codepoint)
        w.append(contentsOf: congestionControlInformation)
        w.appendUInt(tsi, width: identifierWidths.tsiBits / 8)
        let toiBytes = identifierWidths.toiBits / 8
        if toiBytes > 8 { w.append(contentsOf: [UInt8](repeating: 0, count: toiBytes - 8)) }
        w.appendUInt(toi, width: min(toiBytes, 8))
        if let sct = senderCurrentTime { w.appendUInt(UInt64(sct), width: 4) }
        if let ert = expectedResidualTime { w.appendUInt(UInt64(ert), width: 4) }
        for e in headerExtensions { try e.encode(into: &w) }
    }

    /// Decodes the header; the reader ends at byte 4·HDR_LEN (the FEC Payload ID).
    static func decode(_ r: inout PacketReader) throws(FLUTEPacketError) -> LCTHeader {
        let b0 = try r.readUInt8(.lctHeader, "V/C/PSI")
        let b1 = try r.readUInt8(.lctHeader, "S/O/H/T/R/A/B")
        let hdrLen = Int(try r.readUInt8(.lctHeader, "HDR_LEN"))
        let codepoint = try r.readUInt8(.lctHeader, "Codepoint")
        let version = b0 >> 4
        guard version == 1 else {
            throw .invalidField(structure: .lctHeader, field: "V = \(version)", offset: 0, rule: "LCT version must be 1, RFC 5651 §5.1 / RFC 3451 §5.1")
        }
        let cciLength = 4 * (Int(b0 >> 2 & 0x3) + 1)
        guard let widths = IdentifierWidths(s: b1 >> 7, o: b1 >> 5 & 0x3, h: b1 & 0x10 != 0) else {
            throw .invalidField(structure: .lctHeader, field: "S/O/H", offset: 1, rule: "S ≤ 1, O ≤ 3, RFC 5651 §5.1")
        }
        guard widths.tsiBits > 0 else {
            throw .invalidField(structure: .lctHeader, field: "S/H", offset: 1, rule: "FLUTE requires a TSI (S = H = 0 gives none), RFC 3926 §5.1")
        }
        guard widths.toiBits > 0 else {
            throw .invalidField(structure: .lctHeader, field: "O/H", offset: 1, rule: "FLUTE requires a TOI (O = H = 0 gives none), RFC 3926 §5.1")
        }
        let hasSCT = b1 & 0x08 != 0, hasERT = b1 & 0x04 != 0
        let headerEnd = 4 * hdrLen
        let fixed = 4 + cciLength + widths.tsiBits / 8 + widths.toiBits / 8 + (hasSCT ? 4 : 0) + (hasERT ? 4 : 0)
        guard headerEnd >= fixed else {
            throw .invalidField(structure: .lctHeader, field: "HDR_LEN = \(hdrLen)", offset: 2,
                                rule: "shorter than the \(fixed) bytes the flags require, RFC 5651 §5.1")
        }
        guard headerEnd <= r.end else {
            throw .truncated(structure: .lctHeader, field: "header of HDR_LEN \(hdrLen)", offset: 0, needed: headerEnd, available: r.end)
        }
        let cci = try r.readBytes(cciLength, .lctHeader, "CCI")
        let tsi = try r.readUInt(widths.tsiBits / 8, .lctHeader, "TSI")
        let toiBytes = widths.toiBits / 8
        if toiBytes > 8 {
            let highOffset = r.position
            let high = try r.readBytes(toiBytes - 8, .lctHeader, "TOI")
            guard high.allSatisfy({ $0 == 0 }) else {
                throw .unsupported(structure: .lctHeader, field: "TOI", offset: highOffset, what: "TOI values above 2^64 − 1")
            }
        }
        let toi = try r.readUInt(min(toiBytes, 8), .lctHeader, "TOI")
        var header = LCTHeader(identifierWidths: widths, tsi: tsi, toi: toi, closeObject: b1 & 0x01 != 0, codepoint: codepoint)
        header.congestionControlInformation = cci
        header.protocolSpecificIndication = b0 & 0x3
        header.closeSession = b1 & 0x02 != 0
        if hasSCT { header.senderCurrentTime = UInt32(try r.readUInt(4, .lctHeader, "SCT")) }
        if hasERT { header.expectedResidualTime = UInt32(try r.readUInt(4, .lctHeader, "ERT")) }
        header.headerExtensions = try LCTHeaderExtension.decodeAll(&r, end: headerEnd, fecEncodingID: codepoint)
        return header
    }
}
