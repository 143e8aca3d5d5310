import CryptoCore

/// The keys that protect a KEMAC, derived from the pre-shared key (RFC 3830 4.1.4):
/// 128-bit encryption key, 160-bit authentication key (TS 33.246 6.4.1), 112-bit salt.
public struct PSKDerivedKeys: Sendable, CustomStringConvertible {
    public let encryptionKey: SecretBytes
    public let authenticationKey: SecretBytes
    public let saltKey: SecretBytes

    public var description: String { "PSKDerivedKeys(redacted)" }
}

/// Keys of the download protection (DCF) derived from an MTK carried as TGK (TS 33.246 6.5.4,
/// RFC 3830 4.1.3 with cs_id 0).
public struct DownloadKeys: Sendable, CustomStringConvertible {
    public let encryptionKey: SecretBytes
    public let authenticationKey: SecretBytes

    public var description: String { "DownloadKeys(redacted)" }
}

/// MIKEY key derivations (RFC 3830 4.1) on top of `CryptoCore.MIKEYPRF`.
public enum MIKEYKeyDerivation {
    /// cs_id octet of the 4.1.4 label (RFC 3830 4.1.4).
    public static let pskCSID: UInt8 = 0xFF
    /// cs_id for the download keys: one zero octet (TS 33.246 6.5.4; mikey.md M-6).
    public static let downloadCSID: UInt8 = 0x00

    public static let encryptionKeyLength = 16
    public static let authenticationKeyLength = 20
    public static let saltKeyLength = 14

    /// RFC 3830 4.1.4: PSK = MUK for MSK messages, MSK for MTK messages; CSB ID of the
    /// protected message; RAND of the MSK message (TS 33.246 6.4.1, 6.5.4).
    public static func pskKeys(psk: SecretBytes, csbID: CSBID, rand: [UInt8]) throws(MIKEYError) -> PSKDerivedKeys {
        PSKDerivedKeys(
            encryptionKey: try derive(psk, .pskEncryption, pskCSID, csbID, rand, encryptionKeyLength),
            authenticationKey: try derive(psk, .pskAuthentication, pskCSID, csbID, rand, authenticationKeyLength),
            saltKey: try derive(psk, .pskSalting, pskCSID, csbID, rand, saltKeyLength))
    }

    /// Only the 4.1.4 authentication key (the MAC is checked before anything else is derived).
    public static func pskAuthenticationKey(psk: SecretBytes, csbID: CSBID, rand: [UInt8]) throws(MIKEYError) -> SecretBytes {
        try derive(psk, .pskAuthentication, pskCSID, csbID, rand, authenticationKeyLength)
    }

    /// TS 33.246 6.5.4: DCF encryption key (0x15798CEF) and authentication key (0x1B5C7973)
    /// from the MTK (TGK), the MTK message's CSB ID and the MSK message's RAND, cs_id 0.
    public static func downloadKeys(mtk: SecretBytes, csbID: CSBID, rand: [UInt8],
                                    encryptionKeyLength: Int = 16) throws(MIKEYError) -> DownloadKeys {
        DownloadKeys(
            encryptionKey: try derive(mtk, .tgkEncryption, downloadCSID, csbID, rand, encryptionKeyLength),
            authenticationKey: try derive(mtk, .tgkAuthentication, downloadCSID, csbID, rand, authenticationKeyLength))
    }

    /// PRF(inkey, constant || cs_id || CSB ID || RAND) truncated to `length` octets. `hash` is
    /// SHA-1 (MIKEY-1) in the product; SHA-256 only lets tests run the third-party vectors of
    /// `vectors/mikey-prf.json` through this same path.
    static func derive(_ inkey: SecretBytes, _ constant: MIKEYPRF.Constant, _ csID: UInt8, _ csbID: CSBID,
                       _ rand: [UInt8], _ length: Int, hash: MIKEYPRF.Hash = .sha1) throws(MIKEYError) -> SecretBytes {
        guard inkey.count > 0 else { throw .invalidInput(field: "pre-shared key", rule: "RFC 3830 4.1.2: inkey must not be empty") }
        var key = inkey.revealedBytes()
        defer { SecureZero.zero(&key) }
        let label = MIKEYPRF.label(constant, csID: csID, csbID: csbID.rawValue, rand: rand)
        do {
            var out = try MIKEYPRF.derive(inkey: key, label: label, outputLength: length, hash: hash)
            defer { SecureZero.zero(&out) }
            return SecretBytes(out)
        } catch {
            throw .crypto(error)
        }
    }
}

/// KEMAC protection (RFC 3830 4.2.3, 5.2; mikey.md 6).
public enum KEMACCrypto {
    /// IV = (S XOR (0x0000 || CSB ID || T)) || 0x0000, T the 64-bit timestamp (a COUNTER
    /// zero-extended, mikey.md M-4).
    public static func iv(saltKey: SecretBytes, csbID: CSBID, timestamp: Timestamp) -> [UInt8] {
        var iv = [UInt8](repeating: 0, count: 16)
        saltKey.withUnsafeBytes { s in
            for i in 0..<min(14, s.count) { iv[i] = s[i] }
        }
        let c = csbID.rawValue
        for i in 0..<4 { iv[2 + i] ^= UInt8((c >> UInt32(24 - 8 * i)) & 0xFF) }
        let t = timestamp.value64
        for i in 0..<8 { iv[6 + i] ^= UInt8((t >> UInt64(56 - 8 * i)) & 0xFF) }
        return iv
    }

    /// AES-CM-128 of the Key data list (encryption and decryption are the same XOR).
    public static func crypt(_ data: [UInt8], keys: PSKDerivedKeys, csbID: CSBID, timestamp: Timestamp) throws(MIKEYError) -> [UInt8] {
        if data.isEmpty { return [] }
        do {
            let aes = try AESCounterMode(key: keys.encryptionKey)
            return try aes.apply(iv: iv(saltKey: keys.saltKey, csbID: csbID, timestamp: timestamp), to: data)
        } catch {
            throw .crypto(error)
        }
    }

    /// HMAC-SHA-1-160 over `data` (the message up to and including the Mac alg octet, 5.2).
    public static func mac(authenticationKey: SecretBytes, _ parts: [UInt8]...) throws(MIKEYError) -> [UInt8] {
        do {
            let h = try HMACSHA1(key: authenticationKey)
            return h.authenticate(parts.count == 1 ? parts[0] : parts.flatMap { $0 })
        } catch {
            throw .crypto(error)
        }
    }
}
