import CryptoCore

/// How the content object is protected (`dcf.md` 5).
public enum DCFCipher: Sendable {
    /// EncryptionMethod NULL: integrity only (the DCF-wrapped FDT, `flute.md` 9.3).
    case null
    /// AES_128_CBC with RFC 2630 padding; EncryptedData = IV ‖ ciphertext. The IV (16 bytes)
    /// is a parameter: the caller draws it fresh per DCF (e.g. `SecureRandom.bytes(count: 16)`).
    case aes128CBC(iv: [UInt8])
    /// AES_128_CTR, no padding; EncryptedData = initial counter block ‖ ciphertext.
    case aes128CTR(initialCounter: [UInt8])
}

/// Builds DCFs (`dcf.md` 7): 'ftyp' odcf/2, 'odrm'('odhe'('ohdr'+'obki'), 'odda'), then
/// 'mdri'('odfs' HMAC-SHA1 over every top-level box before it).
public struct DCFWriter: Sendable {
    /// Box types written with a 64-bit largesize header (the Bento4 packager does this for
    /// 'odrm' and 'odda'); others get 32-bit sizes unless they exceed 2^32 − 1 bytes.
    public var largeSizeBoxTypes: Set<FourCC>

    public init(largeSizeBoxTypes: Set<FourCC> = []) { self.largeSizeBoxTypes = largeSizeBoxTypes }

    /// Serialises a DCF as it is (no signing).
    public func serialize(_ dcf: DCFFile) throws(DCFError) -> [UInt8] {
        let s = BoxSerializer(largeSizeTypes: largeSizeBoxTypes)
        var out = s.box(.ftyp, fullBox: false, payload: dcf.fileType.payload())
        out += try dcf.container.serialize(s)
        if let m = dcf.mutableInformation { out += m.serialize(s) }
        return out
    }

    /// Encrypts `plaintext` and assembles the DCF. When `authenticationKey` is given, appends
    /// 'mdri'/'odfs' with HMAC-SHA1(K_auth, ftyp ‖ odrm), the full 20 bytes (`dcf.md` 6).
    public func protect(plaintext: [UInt8], contentType: String, contentID: String,
                        keyInfo: OMABCASTKeyInfoBox?, cipher: DCFCipher,
                        encryptionKey: SecretBytes?, authenticationKey: SecretBytes?,
                        fileType: FileTypeBox = .mbms) throws(DCFError) -> [UInt8] {
        let method: EncryptionMethod
        let padding: PaddingScheme
        let encrypted: [UInt8]
        switch cipher {
        case .null:
            method = .null; padding = .none; encrypted = plaintext
        case .aes128CBC(let iv):
            guard iv.count == 16 else { throw .invalidKeyMaterial("AES-128-CBC IV must be 16 bytes, got \(iv.count)") }
            var key = try Self.aesKey(encryptionKey)
            defer { SecureZero.zero(&key) }
            method = .aes128CBC; padding = .rfc2630
            do { encrypted = iv + (try AESCBC.encrypt(key: key, iv: iv, plaintext: plaintext, padding: true)) } catch { throw .crypto(error) }
        case .aes128CTR(let counter):
            guard counter.count == 16 else { throw .invalidKeyMaterial("AES-128-CTR counter block must be 16 bytes, got \(counter.count)") }
            var key = try Self.aesKey(encryptionKey)
            defer { SecureZero.zero(&key) }
            method = .aes128CTR; padding = .none
            do { encrypted = counter + (try AESCounterMode(key: key).apply(iv: counter, to: plaintext)) } catch { throw .crypto(error) }
        }
        let common = CommonHeadersBox(encryptionMethod: method, paddingScheme: padding, plaintextLength: UInt64(plaintext.count),
                                      contentID: Array(contentID.utf8),
                                      extendedHeaders: keyInfo.map { [.keyInfo($0)] } ?? [])
        let dcf = DCFFile(fileType: fileType,
                          container: DRMContainerBox(headers: DRMHeadersBox(contentType: contentType, commonHeaders: common),
                                                     contentObject: ContentObjectBox(encryptedData: encrypted)))
        var bytes = try serialize(dcf)
        if let authenticationKey {
            let signature: [UInt8]
            do { signature = try HMACSHA1(key: authenticationKey).authenticate(bytes) } catch { throw .crypto(error) }
            let mdri = MutableDRMInformationBox(signature: OMADRMSignatureBox(signatureMethod: OMADRMSignatureBox.methodHMACSHA1, signature: signature))
            bytes += mdri.serialize(BoxSerializer(largeSizeTypes: largeSizeBoxTypes))
        }
        return bytes
    }

    /// The MBMS profile in one call: keys from the MTK (`DCFKeys`), 'obki' naming it,
    /// signature always on.
    public func protect(plaintext: [UInt8], contentType: String, contentID: String, keyID: MBMSKeyID,
                        keyIssuerURL: String? = nil, cipher: DCFCipher, keys: DCFKeys) throws(DCFError) -> [UInt8] {
        try protect(plaintext: plaintext, contentType: contentType, contentID: contentID,
                    keyInfo: OMABCASTKeyInfoBox(mbmsKeyID: keyID, keyIssuerURL: keyIssuerURL), cipher: cipher,
                    encryptionKey: keys.encryptionKey, authenticationKey: keys.authenticationKey)
    }

    private static func aesKey(_ key: SecretBytes?) throws(DCFError) -> [UInt8] {
        guard let key, key.count == 16 else { throw .invalidKeyMaterial("AES-128 needs a 16-byte encryption key") }
        return key.revealedBytes()
    }
}
