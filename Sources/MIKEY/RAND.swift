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

/// Verification payload (RFC 3830 6.9, type 9): Auth alg (8) || Ver data.
public struct VerificationPayload: Equatable, Sendable {
    public var authAlgorithm: MACAlgorithm
    public var verificationData: [UInt8]
    public init(authAlgorithm: MACAlgorithm, verificationData: [UInt8]) {
        self.authAlgorithm = authAlgorithm
        self.verificationData = verificationData
    }

    func encode(into w: inout ByteWriter) {
        w.write(authAlgorithm.rawValue)
        w.write(verificationData)
    }

    static func decode(_ r: inout ByteReader) throws(MIKEYError) -> VerificationPayload {
        let start = r.offset
        let raw = try r.readUInt8(.verification)
        guard let alg = MACAlgorithm(rawValue: raw) else {
            throw .invalidValue(payload: .verification, offset: start, field: "Auth alg", value: Int(raw), rule: "RFC 3830 6.9: Auth alg 0 NULL, 1 HMAC-SHA-1-160")
        }
        return VerificationPayload(authAlgorithm: alg, verificationData: try r.readBytes(alg.macLength, .verification))
    }
}
