/// The wire structure a packet error is about.
public enum FLUTEStructure: String, Sendable {
    case lctHeader = "LCT header"
    case headerExtension = "LCT header extension"
    case extFDT = "EXT_FDT"
    case extFTI = "EXT_FTI"
    case extCENC = "EXT_CENC"
    case fecPayloadID = "FEC Payload ID"
    case encodingSymbol = "encoding symbol"
}

/// Why an ALC/LCT/FLUTE packet could not be decoded or encoded. Offsets are from the first
/// byte of the UDP payload; the rule cites RFC 5651/3451 (LCT), 5775/3450 (ALC),
/// 3926/6726 (FLUTE), 5052/5445 (FEC).
public enum FLUTEPacketError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(structure: FLUTEStructure, field: String, offset: Int, needed: Int, available: Int)
    /// A field holds a value the protocol forbids.
    case invalidField(structure: FLUTEStructure, field: String, offset: Int, rule: String)
    /// A valid but unsupported feature (e.g. an FEC Encoding ID other than 0).
    case unsupported(structure: FLUTEStructure, field: String, offset: Int, what: String)
    /// A value does not fit the field the encoder must put it in.
    case unrepresentable(structure: FLUTEStructure, field: String, value: UInt64)

    public var description: String {
        switch self {
        case let .truncated(s, field, offset, needed, available):
            return "\(s.rawValue): \(field) at offset \(offset) needs \(needed) bytes, \(available) present"
        case let .invalidField(s, field, offset, rule):
            return "\(s.rawValue): \(field) at offset \(offset) invalid (\(rule))"
        case let .unsupported(s, field, offset, what):
            return "\(s.rawValue): \(field) at offset \(offset) not supported (\(what))"
        case let .unrepresentable(s, field, value):
            return "\(s.rawValue): \(field) value \(value) does not fit its field"
        }
    }
}
