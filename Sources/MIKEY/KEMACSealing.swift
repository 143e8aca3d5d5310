import CryptoCore

/// Shared last step of the MSK and MTK builders: encrypt the Key data list with AES-CM-128,
/// append the KEMAC and its HMAC-SHA-1-160 over everything before the MAC (RFC 3830 5.2,
/// 4.2.3; TS 33.246 6.4.5).
enum KEMACSealing {
    static func seal(header: MIKEYHeader, payloads: [MIKEYPayload], keyData: [KeyDataPayload],
                     keys: PSKDerivedKeys, timestamp: Timestamp) throws(MIKEYError) -> [UInt8] {
        var plaintext = KeyDataPayload.encodeList(keyData)
        defer { SecureZero.zero(&plaintext) }
        let encrypted = try KEMACCrypto.crypt(plaintext, keys: keys, csbID: header.csbID, timestamp: timestamp)
        let kemac = KEMACPayload(encryptionAlgorithm: .aesCM128, encryptedData: encrypted, macAlgorithm: .hmacSHA1_160,
                                 mac: [UInt8](repeating: 0, count: 20))
        var bytes = MIKEYMessage(header: header, payloads: payloads + [.kemac(kemac)]).encode()
        let covered = Array(bytes[0..<(bytes.count - 20)])
        let mac = try KEMACCrypto.mac(authenticationKey: keys.authenticationKey, covered)
        bytes.replaceSubrange((bytes.count - 20)..., with: mac)
        return bytes
    }
}
