import CryptoCore

/// Key data Type (RFC 3830 6.13). MBMS: TEK for the MSK, TEK+SALT for a streaming MTK,
/// TGK for a download MTK (TS 33.246 6.4.5.1, 6.4.5.3).
public enum KeyDataType: UInt8, Sendable, Equatable {
    case tgk = 0
    case tgkSalt = 1
    case tek = 2
    case tekSalt = 3

    var hasSalt: Bool { self == .tgkSalt || self == .tekSalt }
}

/// Key validity Interval: VF length (8) || Valid From || VT length (8) || Valid To
/// (RFC 3830 6.13). In MBMS Valid From = SEQl and Valid To = SEQu, MTK IDs
/// (TS 33.246 6.4.5.1); sent as 2 octets, accepted as 1–4 (mikey.md M-5).
public struct KeyValidityInterval: Equatable, Sendable {
    public var validFrom: [UInt8]
    public var validTo: [UInt8]

    public init(seqL: UInt16, seqU: UInt16) {
        validFrom = [UInt8(seqL >> 8), UInt8(seqL & 0xFF)]
        validTo = [UInt8(seqU >> 8), UInt8(seqU & 0xFF)]
    }
    public init(validFrom: [UInt8], validTo: [UInt8]) {
        self.validFrom = validFrom
        self.validTo = validTo
    }

    /// Lower MTK ID bound (exclusive).
    public var seqL: UInt32 { bigEndianValue(validFrom) }
    /// Upper MTK ID bound (inclusive).
    public var seqU: UInt32 { bigEndianValue(validTo) }
    /// SEQl > SEQu: the BM-SC invalidates the MSK (TS 33.246 6.3.2.1B).
    public var isInvalidation: Bool { seqL > seqU }
}

/// KV field of a Key data sub-payload (RFC 3830 6.13).
public enum KeyValidity: Equatable, Sendable {
    case null                           // KV 0: MTK messages
    case spi([UInt8])                   // KV 1
    case interval(KeyValidityInterval)  // KV 2: MSK messages

    var kv: UInt8 {
        switch self {
        case .null: return 0
        case .spi: return 1
        case .interval: return 2
        }
    }
}

/// Key data sub-payload (RFC 3830 6.13, type 20) carried inside the KEMAC Encr data.
/// The key and salt are secrets: held as `SecretBytes`, never printed.
public struct KeyDataPayload: Equatable, Sendable, CustomStringConvertible {
    public var type: KeyDataType
    public var key: SecretBytes
    public var salt: SecretBytes?
    public var validity: KeyValidity

    public init(type: KeyDataType, key: SecretBytes, salt: SecretBytes? = nil, validity: KeyValidity) {
        self.type = type
        self.key = key
        self.salt = salt
        self.validity = validity
    }

    public static func == (a: KeyDataPayload, b: KeyDataPayload) -> Bool {
        guard a.type == b.type, a.validity == b.validity, a.key.isEqual(to: b.key) else { return false }
        switch (a.salt, b.salt) {
        case (nil, nil): return true
        case let (x?, y?): return x.isEqual(to: y)
        default: return false
        }
    }

    public var description: String {
        "KeyDataPayload(\(type), key \(key.count) octets redacted, salt \(salt.map { "\($0.count) octets redacted" } ?? "none"), \(validity))"
    }

    /// Plaintext of a Key data list (the caller must zero it after encryption).
    static func encodeList(_ list: [KeyDataPayload]) -> [UInt8] {
        // Capacity for the whole list up front so the buffer holding key bytes is not reallocated.
        var w = ByteWriter(capacity: list.reduce(0) { $0 + 16 + $1.key.count + ($1.salt?.count ?? 0) })
        for (i, k) in list.enumerated() {
            w.write(UInt8(i + 1 < list.count ? MIKEYPayloadType.keyData : 0))
            w.write(k.type.rawValue << 4 | k.validity.kv)
            w.write(UInt16(truncatingIfNeeded: k.key.count))
            k.key.withUnsafeBytes { w.write($0) }
            if let salt = k.salt {
                w.write(UInt16(truncatingIfNeeded: salt.count))
                salt.withUnsafeBytes { w.write($0) }
            }
            switch k.validity {
            case .null: break
            case .spi(let spi): w.write(UInt8(truncatingIfNeeded: spi.count)); w.write(spi)
            case .interval(let i):
                w.write(UInt8(truncatingIfNeeded: i.validFrom.count)); w.write(i.validFrom)
                w.write(UInt8(truncatingIfNeeded: i.validTo.count)); w.write(i.validTo)
            }
        }
        return w.finish()
    }

    /// Decodes the decrypted Encr data: a chain of Key data sub-payloads (next 20 or 0)
    /// that fills it exactly. `base` is the absolute offset of the Encr data.
    static func decodeList(_ plaintext: [UInt8], base: Int) throws(MIKEYError) -> [KeyDataPayload] {
        var r = ByteReader(plaintext, base: base)
        var list: [KeyDataPayload] = []
        var next = UInt8(MIKEYPayloadType.keyData)
        while next == MIKEYPayloadType.keyData {
            let start = r.offset
            next = try r.readUInt8(.keyData)
            guard next == 0 || next == MIKEYPayloadType.keyData else {
                throw .invalidValue(payload: .keyData, offset: start, field: "next payload", value: Int(next),
                                    rule: "RFC 3830 6.13: Key data sub-payloads chain with 20, the last has 0")
            }
            let tkv = try r.readUInt8(.keyData)
            guard let type = KeyDataType(rawValue: tkv >> 4) else {
                throw .invalidValue(payload: .keyData, offset: start + 1, field: "Type", value: Int(tkv >> 4), rule: "RFC 3830 6.13: Type 0-3")
            }
            let keyLength = Int(try r.readUInt16(.keyData))
            guard keyLength > 0 else {
                throw .invalidValue(payload: .keyData, offset: start + 2, field: "Key data len", value: 0, rule: "RFC 3830 6.13: a Key data sub-payload carries a key")
            }
            guard r.remaining >= keyLength else {
                throw .lengthMismatch(payload: .keyData, offset: start + 2, field: "Key data len", declared: keyLength, actual: r.remaining, rule: "RFC 3830 6.13")
            }
            var keyBytes = try r.readBytes(keyLength, .keyData)
            let key = SecretBytes(keyBytes)
            SecureZero.zero(&keyBytes)
            var salt: SecretBytes? = nil
            if type.hasSalt {
                let saltOffset = r.offset
                let saltLength = Int(try r.readUInt16(.keyData))
                guard r.remaining >= saltLength else {
                    throw .lengthMismatch(payload: .keyData, offset: saltOffset, field: "Salt len", declared: saltLength, actual: r.remaining, rule: "RFC 3830 6.13")
                }
                var saltBytes = try r.readBytes(saltLength, .keyData)
                salt = SecretBytes(saltBytes)
                SecureZero.zero(&saltBytes)
            }
            let validity: KeyValidity
            switch tkv & 0x0F {
            case 0: validity = .null
            case 1:
                let o = r.offset
                let n = Int(try r.readUInt8(.keyData))
                guard r.remaining >= n else {
                    throw .lengthMismatch(payload: .keyData, offset: o, field: "SPI length", declared: n, actual: r.remaining, rule: "RFC 3830 6.13")
                }
                validity = .spi(try r.readBytes(n, .keyData))
            case 2:
                let from = try readSEQ(&r, field: "VF length")
                let to = try readSEQ(&r, field: "VT length")
                validity = .interval(KeyValidityInterval(validFrom: from, validTo: to))
            default:
                throw .invalidValue(payload: .keyData, offset: start + 1, field: "KV", value: Int(tkv & 0x0F), rule: "RFC 3830 6.13: KV 0 Null, 1 SPI, 2 Interval")
            }
            list.append(KeyDataPayload(type: type, key: key, salt: salt, validity: validity))
        }
        if !r.isAtEnd {
            throw .trailingData(payload: .keyData, offset: r.offset, count: r.remaining)
        }
        return list
    }

    private static func readSEQ(_ r: inout ByteReader, field: String) throws(MIKEYError) -> [UInt8] {
        let o = r.offset
        let n = Int(try r.readUInt8(.keyData))
        guard (1...4).contains(n) else {
            throw .invalidValue(payload: .keyData, offset: o, field: field, value: n,
                                rule: "TS 33.246 6.4.5.1 / mikey.md M-5: SEQl and SEQu are MTK IDs of 1-4 octets")
        }
        return try r.readBytes(n, .keyData)
    }
}
