/// ID payload (RFC 3830 6.7, type 6): ID Type (8) || ID len (16) || ID data.
/// MBMS: IDi = NAF-ID (FQDN of the BM-SC), IDr = B-TID, both ID type 0, UTF-8 (TS 33.246 6.4.1).
public struct IdentityPayload: Equatable, Sendable {
    public static let typeNAI: UInt8 = 0
    public var idType: UInt8
    public var data: [UInt8]

    public init(idType: UInt8 = IdentityPayload.typeNAI, data: [UInt8]) {
        self.idType = idType
        self.data = data
    }
    public init(_ string: String) { self.init(data: Array(string.utf8)) }

    func encode(into w: inout ByteWriter) {
        w.write(idType)
        w.write(UInt16(truncatingIfNeeded: data.count))
        w.write(data)
    }

    static func decode(_ r: inout ByteReader) throws(MIKEYError) -> IdentityPayload {
        let start = r.offset
        let type = try r.readUInt8(.identity)
        guard type <= 2 else {
            throw .invalidValue(payload: .identity, offset: start, field: "ID Type", value: Int(type), rule: "RFC 3830 6.7 / RFC 6043: ID type 0 NAI, 1 URI, 2 byte string")
        }
        let length = Int(try r.readUInt16(.identity))
        guard r.remaining >= length else {
            throw .lengthMismatch(payload: .identity, offset: start + 1, field: "ID len", declared: length, actual: r.remaining, rule: "RFC 3830 6.7")
        }
        return IdentityPayload(idType: type, data: try r.readBytes(length, .identity))
    }
}
