import CryptoCore

/// A parsed DCF together with the bytes its 'odfs' signature covers.
public struct ParsedDCF: Equatable, Sendable {
    public var file: DCFFile
    /// Every top-level box except 'mdri', concatenated in file order (`dcf.md` 6).
    public var signedBytes: [UInt8]

    /// The MTK this DCF names: 'obki' with KeyIDType 0x02 and a well-formed KeyID
    /// (TS 33.246 6.6.3.2). Nil for a DCF without MBMS key info.
    public var mbmsKeyID: MBMSKeyID? { file.container.headers.commonHeaders.keyInfo?.mbmsKeyID }
}

/// What the signature check found.
public enum DCFSignatureStatus: Equatable, Sendable {
    /// 'odfs' with HMAC-SHA1 matched.
    case verified
    /// No 'mdri'/'odfs', or SignatureMethod NULL: no integrity protection was applied.
    case unsigned
}

/// The outcome of opening a protected DCF.
public struct OpenedDCF: Equatable, Sendable {
    public var plaintext: [UInt8]
    public var contentType: String
    public var keyInfo: OMABCASTKeyInfoBox?
    public var signature: DCFSignatureStatus
}

/// Parses, verifies and decrypts DCFs (`dcf.md` 7, receiver order). Never traps on input.
public struct DCFReader: Sendable {
    /// Upper bound on the DCF size accepted by `parse`.
    public var maximumSize: Int

    public init(maximumSize: Int = 1 << 30) { self.maximumSize = maximumSize }

    /// Parses the top-level structure: exactly one 'ftyp' first, one 'odrm', optional 'mdri'.
    public func parse(_ bytes: [UInt8]) throws(DCFError) -> ParsedDCF {
        guard bytes.count <= maximumSize else { throw .tooLarge(size: bytes.count, limit: maximumSize) }
        var r = DCFByteReader(bytes, from: 0, to: bytes.count, box: "file")
        var fileType: FileTypeBox?
        var container: DRMContainerBox?
        var mdri: MutableDRMInformationBox?
        var signed: [UInt8] = []
        while !r.isAtEnd {
            let h = try BoxHeader.read(&r, allowToEnd: true)
            var sub = DCFByteReader(bytes, from: h.payloadStart, to: h.end, box: h.type.description)
            switch h.type {
            case .ftyp:
                guard fileType == nil, h.start == 0 else {
                    throw .unexpectedBox("ftyp", offset: h.start, in: "file", rule: "one FileTypeBox, first in the file, ISO/IEC 14496-12 4.3")
                }
                let ft = try FileTypeBox.parse(&sub)
                guard ft.majorBrand == .odcf || ft.compatibleBrands.contains(.odcf) else {
                    throw .invalidField(box: "ftyp", field: "major_brand", offset: h.payloadStart, rule: "a DCF carries the 'odcf' brand, OMA DCF v2.0")
                }
                fileType = ft
            case .odrm:
                guard fileType != nil else { throw .missingBox("ftyp", in: "file (before 'odrm')") }
                guard container == nil else {
                    throw .unexpectedBox("odrm", offset: h.start, in: "file", rule: "one content object per MBMS DCF (dcf.md 3, D14)")
                }
                container = try DRMContainerBox.parse(&sub)
            case .mdri:
                guard mdri == nil else {
                    throw .unexpectedBox("mdri", offset: h.start, in: "file", rule: "one Mutable DRM Information box (dcf.md 3)")
                }
                mdri = try MutableDRMInformationBox.parse(&sub)
            default:
                guard fileType != nil else { throw .missingBox("ftyp", in: "file (first box)") }
            }
            if h.type != .mdri { signed += bytes[h.start..<h.end] }
            r.skip(to: h.end)
        }
        guard let fileType else { throw .missingBox("ftyp", in: "file") }
        guard let container else { throw .missingBox("odrm", in: "file") }
        return ParsedDCF(file: DCFFile(fileType: fileType, container: container, mutableInformation: mdri), signedBytes: signed)
    }

    /// Checks the 'odfs' HMAC-SHA1 in constant time. Throws `.signatureMismatch` when it does
    /// not match (the file must then be rejected, TS 33.246 6.6.3.2).
    public func verifySignature(_ parsed: ParsedDCF, authenticationKey: SecretBytes) throws(DCFError) -> DCFSignatureStatus {
        guard let sig = parsed.file.mutableInformation?.signature, sig.signatureMethod != OMADRMSignatureBox.methodNull else {
            return .unsigned
        }
        // Parsing admits only NULL (handled above) and HMAC-SHA1; a hand-built box with
        // another method cannot be verified.
        guard sig.signatureMethod == OMADRMSignatureBox.methodHMACSHA1 else { throw .signatureMismatch }
        let expected: [UInt8]
        do { expected = try HMACSHA1(key: authenticationKey).authenticate(parsed.signedBytes) } catch { throw .crypto(error) }
        guard sig.signature.count == expected.count, constantTimeEquals(sig.signature, expected) else { throw .signatureMismatch }
        return .verified
    }

    /// Decrypts the content object and checks its length against PlaintextLength.
    public func decrypt(_ parsed: ParsedDCF, encryptionKey: SecretBytes?) throws(DCFError) -> [UInt8] {
        let common = parsed.file.container.headers.commonHeaders
        let data = parsed.file.container.contentObject.encryptedData
        let plaintext: [UInt8]
        switch common.encryptionMethod {
        case .null:
            plaintext = data
        case .aes128CBC:
            guard data.count >= 32, data.count % 16 == 0 else {
                throw .decryptionFailed(reason: "AES_128_CBC EncryptedData of \(data.count) bytes is not IV + at least one block (OMA DCF 5.1)")
            }
            var key = try aesKey(encryptionKey)
            defer { SecureZero.zero(&key) }
            do {
                plaintext = try AESCBC.decrypt(key: key, iv: Array(data[0..<16]), ciphertext: Array(data[16...]), padding: true)
            } catch {
                throw .decryptionFailed(reason: "AES_128_CBC with RFC 2630 padding: \(error)")
            }
        case .aes128CTR:
            guard data.count >= 16 else {
                throw .decryptionFailed(reason: "AES_128_CTR EncryptedData of \(data.count) bytes lacks the 16-byte counter block")
            }
            var key = try aesKey(encryptionKey)
            defer { SecureZero.zero(&key) }
            let counter = Array(data[0..<16])
            do { plaintext = try AESCounterMode(key: key).apply(iv: counter, to: Array(data[16...])) } catch { throw .crypto(error) }
        }
        guard UInt64(plaintext.count) == common.plaintextLength else {
            throw .decryptionFailed(reason: "decrypted \(plaintext.count) bytes, 'ohdr' PlaintextLength says \(common.plaintextLength)")
        }
        return plaintext
    }

    /// Receiver order of `dcf.md` 7: parse → verify → decrypt. With `requireSignature` an
    /// unsigned DCF is refused.
    public func open(_ bytes: [UInt8], keys: DCFKeys, requireSignature: Bool = true) throws(DCFError) -> OpenedDCF {
        let parsed = try parse(bytes)
        let status = try verifySignature(parsed, authenticationKey: keys.authenticationKey)
        if requireSignature && status != .verified { throw .signatureMissing }
        let plaintext = try decrypt(parsed, encryptionKey: keys.encryptionKey)
        let headers = parsed.file.container.headers
        return OpenedDCF(plaintext: plaintext, contentType: headers.contentType, keyInfo: headers.commonHeaders.keyInfo, signature: status)
    }

    private func aesKey(_ key: SecretBytes?) throws(DCFError) -> [UInt8] {
        guard let key, key.count == 16 else { throw .invalidKeyMaterial("AES-128 needs a 16-byte encryption key") }
        return key.revealedBytes()
    }
}
