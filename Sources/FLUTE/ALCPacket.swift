/// One ALC/FLUTE packet (one UDP payload): LCT header, FEC Payload ID, encoding symbol(s)
/// (`flute.md` 4: `[LCT header 4·HDR_LEN][SBN][ESI][symbol bytes]`).
///
/// Only FEC Encoding ID 0 (Compact No-Code) payloads are interpreted.
public struct ALCPacket: Equatable, Sendable {
    public var header: LCTHeader
    /// Nil for a packet that ends with the LCT header (e.g. a bare close-session packet).
    public var payloadID: CompactNoCodePayloadID?
    /// One or more consecutive encoding symbols of the block (RFC 5445 §3.2).
    public var encodingSymbols: [UInt8]

    public init(header: LCTHeader, payloadID: CompactNoCodePayloadID?, encodingSymbols: [UInt8]) {
        self.header = header; self.payloadID = payloadID; self.encodingSymbols = encodingSymbols
    }

    /// FEC Encoding ID 0 only.
    public static let compactNoCode: UInt8 = 0

    /// Decodes a UDP payload. Accepts FLUTE v1 and v2, 16/32/48-bit TSI, TOI up to 64 bits.
    /// TOI 0 must carry EXT_FDT and other TOIs must not (RFC 3926 §3.4.1).
    public init(decoding datagram: [UInt8]) throws(FLUTEPacketError) {
        var r = PacketReader(datagram)
        let header = try LCTHeader.decode(&r)
        guard header.codepoint == Self.compactNoCode else {
            throw .unsupported(structure: .lctHeader, field: "Codepoint (FEC Encoding ID) = \(header.codepoint)", offset: 3,
                               what: "only FEC Encoding ID 0, Compact No-Code (RFC 5445), is implemented")
        }
        let hasFDT = header.fdt != nil
        if header.toi == 0 && !hasFDT {
            throw .invalidField(structure: .extFDT, field: "EXT_FDT", offset: 0, rule: "every TOI 0 packet carries EXT_FDT, RFC 3926 §3.4.1")
        }
        if header.toi != 0 && hasFDT {
            throw .invalidField(structure: .extFDT, field: "EXT_FDT", offset: 0, rule: "EXT_FDT only on TOI 0 (FDT Instances), RFC 3926 §3.4.1")
        }
        self.header = header
        if r.remaining == 0 {
            payloadID = nil
            encodingSymbols = []
        } else {
            payloadID = try CompactNoCodePayloadID.decode(&r)
            encodingSymbols = try r.readBytes(r.remaining, .encodingSymbol, "symbol bytes")
        }
    }

    /// The UDP payload.
    public func encoded() throws(FLUTEPacketError) -> [UInt8] {
        var w = PacketWriter(capacity: header.encodedLength + 4 + encodingSymbols.count)
        try header.encode(into: &w)
        if let payloadID {
            payloadID.encode(into: &w)
            w.append(contentsOf: encodingSymbols)
        } else if !encodingSymbols.isEmpty {
            throw .unrepresentable(structure: .encodingSymbol, field: "symbol bytes without FEC Payload ID", value: UInt64(encodingSymbols.count))
        }
        return w.bytes
    }
}
