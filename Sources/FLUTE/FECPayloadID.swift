/// The ALC FEC Payload ID for FEC Encoding ID 0, Compact No-Code (RFC 5445 §3.2;
/// `flute.md` 4): Source Block Number (16) ‖ Encoding Symbol ID (16).
public struct CompactNoCodePayloadID: Equatable, Hashable, Sendable {
    public static let encodedLength = 4
    public var sourceBlockNumber: UInt16
    public var encodingSymbolID: UInt16

    public init(sourceBlockNumber: UInt16, encodingSymbolID: UInt16) {
        self.sourceBlockNumber = sourceBlockNumber
        self.encodingSymbolID = encodingSymbolID
    }

    func encode(into w: inout PacketWriter) {
        w.appendUInt(UInt64(sourceBlockNumber), width: 2)
        w.appendUInt(UInt64(encodingSymbolID), width: 2)
    }

    static func decode(_ r: inout PacketReader) throws(FLUTEPacketError) -> CompactNoCodePayloadID {
        let sbn = UInt16(try r.readUInt(2, .fecPayloadID, "Source Block Number"))
        let esi = UInt16(try r.readUInt(2, .fecPayloadID, "Encoding Symbol ID"))
        return CompactNoCodePayloadID(sourceBlockNumber: sbn, encodingSymbolID: esi)
    }
}
