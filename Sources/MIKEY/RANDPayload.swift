/// RAND payload (RFC 3830 6.11, type 11): RAND len (8, octets) || RAND.
/// Only in MSK messages; one RAND per MSK, shared by all UEs (TS 33.246 6.4.5.1).
public struct RANDPayload: Equatable, Sendable {
    public var value: [UInt8]
    public init(_ value: [UInt8]) { self.value = value }

    func encode(into w: inout ByteWriter) {
        w.write(UInt8(truncatingIfNeeded: value.count))
        w.write(value)
    }

    static func decode(_ r: inout ByteReader) throws(MIKEYError) -> RANDPayload {
        let start = r.offset
        let length = Int(try r.readUInt8(.rand))
        guard length > 0 else {
            throw .invalidValue(payload: .rand, offset: start, field: "RAND len", value: 0, rule: "RFC 3830 6.11: RAND must not be empty")
        }
        guard r.remaining >= length else {
            throw .lengthMismatch(payload: .rand, offset: start, field: "RAND len", declared: length, actual: r.remaining, rule: "RFC 3830 6.11")
        }
        return RANDPayload(try r.readBytes(length, .rand))
    }
}
