/// LCT header extensions used by ALC/FLUTE (RFC 5651 §5.2, RFC 3926 §3.4, `flute.md` 3).
///
/// HET 0–127 carry HEL (length in 32-bit words, including HET/HEL); HET 128–255 are exactly
/// one 32-bit word.
public enum LCTHeaderExtension: Equatable, Sendable {
    /// EXT_FDT (HET 192): FLUTE version and FDT Instance ID.
    case fdt(EXTFDT)
    /// EXT_FTI (HET 64) in the FEC Encoding ID 0 layout.
    case fti(EXTFTI)
    /// EXT_CENC (HET 193): content encoding of the FDT Instance.
    case cenc(EXTCENC)
    /// Any other extension (EXT_NOP, EXT_AUTH, EXT_TIME, ...), kept as its bytes after HET
    /// (for HET < 128: after HEL), so it re-encodes unchanged.
    case other(het: UInt8, content: [UInt8])

    public static let hetNOP: UInt8 = 0, hetAUTH: UInt8 = 1, hetTIME: UInt8 = 2
    public static let hetFTI: UInt8 = 64, hetFDT: UInt8 = 192, hetCENC: UInt8 = 193

    public var headerExtensionType: UInt8 {
        switch self {
        case .fdt: return Self.hetFDT
        case .fti: return Self.hetFTI
        case .cenc: return Self.hetCENC
        case .other(let het, _): return het
        }
    }

    /// Encoded length in bytes (a multiple of 4).
    var encodedLength: Int {
        switch self {
        case .fdt, .cenc: return 4
        case .fti: return 16
        case .other(let het, let content): return het >= 128 ? 4 : 2 + content.count
        }
    }

    func encode(into w: inout PacketWriter) throws(FLUTEPacketError) {
        switch self {
        case .fdt(let e):
            guard e.version <= 0xF else { throw .unrepresentable(structure: .extFDT, field: "V", value: UInt64(e.version)) }
            guard e.fdtInstanceID <= EXTFDT.maximumInstanceID else {
                throw .unrepresentable(structure: .extFDT, field: "FDT Instance ID", value: UInt64(e.fdtInstanceID))
            }
            w.append(Self.hetFDT)
            w.appendUInt(UInt64(e.version) << 20 | UInt64(e.fdtInstanceID), width: 3)
        case .fti(let e):
            guard e.transferLength < 1 << 48 else { throw .unrepresentable(structure: .extFTI, field: "Transfer Length", value: e.transferLength) }
            w.append(Self.hetFTI)
            w.append(4)
            w.appendUInt(e.transferLength, width: 6)
            w.appendUInt(UInt64(e.fecInstanceID), width: 2)
            w.appendUInt(UInt64(e.encodingSymbolLength), width: 2)
            w.appendUInt(UInt64(e.maximumSourceBlockLength), width: 4)
        case .cenc(let e):
            w.append(Self.hetCENC)
            w.append(e.contentEncoding.rawValue)
            w.appendUInt(0, width: 2)
        case .other(let het, let content):
            if het >= 128 {
                guard content.count == 3 else { throw .unrepresentable(structure: .headerExtension, field: "HET \(het) content length", value: UInt64(content.count)) }
                w.append(het)
                w.append(contentsOf: content)
            } else {
                let total = 2 + content.count
                guard total % 4 == 0, total / 4 <= 255 else {
                    throw .unrepresentable(structure: .headerExtension, field: "HET \(het) length", value: UInt64(total))
                }
                w.append(het)
                w.append(UInt8(total / 4))
                w.append(contentsOf: content)
            }
        }
    }

    /// Decodes all extensions between the reader's position and `end` (the end of the LCT
    /// header). `fecEncodingID` selects the EXT_FTI layout (only ID 0 is interpreted).
    static func decodeAll(_ r: inout PacketReader, end: Int, fecEncodingID: UInt8) throws(FLUTEPacketError) -> [LCTHeaderExtension] {
        var out: [LCTHeaderExtension] = []
        while r.position < end {
            let start = r.position
            let het = try r.readUInt8(.headerExtension, "HET")
            if het >= 128 {
                guard end - start >= 4 else {
                    throw .truncated(structure: .headerExtension, field: "HET \(het) content", offset: r.position, needed: 3, available: end - r.position)
                }
                let content = try r.readBytes(3, .headerExtension, "HET \(het) content")
                switch het {
                case hetFDT:
                    let v = UInt32(content[0]) << 16 | UInt32(content[1]) << 8 | UInt32(content[2])
                    let version = UInt8(v >> 20)
                    guard version == 1 || version == 2 else {
                        throw .invalidField(structure: .extFDT, field: "V = \(version)", offset: start + 1,
                                            rule: "FLUTE version must be 1 (RFC 3926 §3.4.1) or 2 (RFC 6726 §3.4.1)")
                    }
                    out.append(.fdt(EXTFDT(version: version, fdtInstanceID: v & 0xF_FFFF)))
                case hetCENC:
                    guard let cenc = EXTCENC.ContentEncoding(rawValue: content[0]) else {
                        throw .invalidField(structure: .extCENC, field: "CENC = \(content[0])", offset: start + 1,
                                            rule: "0 null, 1 ZLIB, 2 DEFLATE, 3 GZIP are defined, RFC 3926 §3.4.2")
                    }
                    out.append(.cenc(EXTCENC(contentEncoding: cenc)))
                default:
                    out.append(.other(het: het, content: content))
                }
            } else {
                let hel = Int(try r.readUInt8(.headerExtension, "HEL"))
                guard hel > 0 else {
                    throw .invalidField(structure: .headerExtension, field: "HEL of HET \(het)", offset: start + 1,
                                        rule: "HEL = 0 is invalid, RFC 5651 §5.2")
                }
                guard start + 4 * hel <= end else {
                    throw .invalidField(structure: .headerExtension, field: "HEL of HET \(het)", offset: start + 1,
                                        rule: "extension of \(4 * hel) bytes overruns HDR_LEN, RFC 5651 §5.2")
                }
                if het == hetFTI && fecEncodingID == 0 {
                    guard hel == 4 else {
                        throw .invalidField(structure: .extFTI, field: "HEL = \(hel)", offset: start + 1,
                                            rule: "EXT_FTI for FEC Encoding ID 0 is 4 words, RFC 3926 §5.1 / RFC 5445 §3.3")
                    }
                    let tl = try r.readUInt(6, .extFTI, "Transfer Length")
                    let reserved = UInt16(try r.readUInt(2, .extFTI, "Reserved"))
                    let e = UInt16(try r.readUInt(2, .extFTI, "Encoding Symbol Length"))
                    let b = UInt32(try r.readUInt(4, .extFTI, "Maximum Source Block Length"))
                    out.append(.fti(EXTFTI(transferLength: tl, fecInstanceID: reserved, encodingSymbolLength: e, maximumSourceBlockLength: b)))
                } else {
                    out.append(.other(het: het, content: try r.readBytes(4 * hel - 2, .headerExtension, "HET \(het) content")))
                }
            }
        }
        return out
    }
}

/// EXT_FDT content (`flute.md` 3.1).
public struct EXTFDT: Equatable, Sendable {
    public static let maximumInstanceID: UInt32 = 0xF_FFFF
    /// FLUTE version: 1 for RFC 3926 / 3GPP MBMS, 2 for RFC 6726.
    public var version: UInt8
    /// 20 bits.
    public var fdtInstanceID: UInt32
    public init(version: UInt8, fdtInstanceID: UInt32) { self.version = version; self.fdtInstanceID = fdtInstanceID }
}

/// EXT_FTI content for FEC Encoding ID 0 (`flute.md` 3.2).
public struct EXTFTI: Equatable, Sendable {
    /// L, 48 bits: length of the transport object.
    public var transferLength: UInt64
    /// Reserved (0) for FEC Encoding ID 0.
    public var fecInstanceID: UInt16
    /// E.
    public var encodingSymbolLength: UInt16
    /// B.
    public var maximumSourceBlockLength: UInt32
    public init(transferLength: UInt64, fecInstanceID: UInt16 = 0, encodingSymbolLength: UInt16, maximumSourceBlockLength: UInt32) {
        self.transferLength = transferLength; self.fecInstanceID = fecInstanceID
        self.encodingSymbolLength = encodingSymbolLength; self.maximumSourceBlockLength = maximumSourceBlockLength
    }
}

/// EXT_CENC content (`flute.md` 3.3).
public struct EXTCENC: Equatable, Sendable {
    public enum ContentEncoding: UInt8, Sendable { case null = 0, zlib = 1, deflate = 2, gzip = 3 }
    public var contentEncoding: ContentEncoding
    public init(contentEncoding: ContentEncoding) { self.contentEncoding = contentEncoding }
}
