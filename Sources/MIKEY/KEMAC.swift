/// KEMAC Encr alg (RFC 3830 6.2; RFC 6043 for AES-CM-256). MBMS uses AES-CM-128.
public enum KEMACEncryptionAlgorithm: UInt8, Sendable, Equatable {
    case null = 0
    case aesCM128 = 1
    case aesKW128 = 2
    case aesCM256 = 3
}

/// KEMAC Mac alg / V Auth alg (RFC 3830 6.2). MBMS uses HMAC-SHA-1-160 (TS 33.246 6.4.1).
public enum MACAlgorithm: UInt8, Sendable, Equatable {
    case null = 0
    case hmacSHA1_160 = 1

    public var macLength: Int { self == .null ? 0 : 20 }
}

/// KEMAC payload (RFC 3830 6.2, type 1). `encryptedData` is the Encr data as it is on the
/// wire; `KEMACCrypto` turns it into Key data sub-payloads. KEMAC is the last payload.
public struct KEMACPayload: Equatable, Sendable {
    public var encryptionAlgorithm: KEMACEncryptionAlgorithm
    public var encryptedData: [UInt8]
    public var macAlgorithm: MACAlgorithm
    public var mac: [UInt8]

    public init(encryptionAlgorithm: KEMACEncryptionAlgorithm, encryptedData: [UInt8], macAlgorithm: MACAlgorithm, mac: [UInt8]) {
        self.encryptionAlgorithm = encryptionAlgorithm
        self.encryptedData = encryptedData
        self.macAlgorithm = macAlgorithm
        self.mac = mac
    }

    func encode(into w: inout ByteWriter) {
        w.write(encryptionAlgorithm.rawValue)
        w.write(UInt16(truncatingIfNeeded: encryptedData.count))
        w.write(encryptedData)
        w.write(macAlgorithm.rawValue)
        w.write(mac)
    }

    /// Returns the payload and the absolute offset of the Encr data.
    static func decode(_ r: inout ByteReader) throws(MIKEYError) -> (KEMACPayload, Int) {
        let start = r.offset
        let rawEnc = try r.readUInt8(.kemac)
        guard let enc = KEMACEncryptionAlgorithm(rawValue: rawEnc) else {
            throw .invalidValue(payload: .kemac, offset: start, field: "Encr alg", value: Int(rawEnc), rule: "RFC 3830 6.2: Encr alg 0, 1, 2 or 3")
        }
        let length = Int(try r.readUInt16(.kemac))
        // Encr data plus at least the Mac alg octet must follow.
        guard r.remaining >= length + 1 else {
            throw .lengthMismatch(payload: .kemac, offset: start + 1, field: "Encr data len", declared: length,
                                  actual: max(r.remaining - 1, 0), rule: "RFC 3830 6.2")
        }
        let dataOffset = r.offset
        let data = try r.readBytes(length, .kemac)
        let macOffset = r.offset
        let rawMac = try r.readUInt8(.kemac)
        guard let macAlg = MACAlgorithm(rawValue: rawMac) else {
            throw .invalidValue(payload: .kemac, offset: macOffset, field: "Mac alg", value: Int(rawMac), rule: "RFC 3830 6.2: Mac alg 0 or 1 (HMAC-SHA-1-160)")
        }
        let mac = try r.readBytes(macAlg.macLength, .kemac)
        return (KEMACPayload(encryptionAlgorithm: enc, encryptedData: data, macAlgorithm: macAlg, mac: mac), dataOffset)
    }
}
