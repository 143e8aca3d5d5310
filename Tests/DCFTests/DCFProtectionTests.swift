import Foundation
import XCTest
import CryptoCore
@testable import DCF

/// Round trips of the other modes, the integrity check, and hostile input.
final class DCFProtectionTests: XCTestCase {
    let keys = DCFKeys(encryptionKey: SecretBytes((0..<16).map { UInt8($0) }),
                       authenticationKey: SecretBytes((0..<20).map { UInt8(0x40 + $0) }))
    let keyID = MBMSKeyID(keyDomainID: [0x00, 0xF1, 0x10], mskID: 0x0001_0002, mtkID: 7)

    func mbmsDCF(_ plaintext: [UInt8], cipher: DCFCipher) throws -> [UInt8] {
        try DCFWriter().protect(plaintext: plaintext, contentType: "application/octet-stream", contentID: "cid:x@bmsc.example.com",
                                keyID: try XCTUnwrap(keyID), keyIssuerURL: "http://bmsc.example.com/keymanagement",
                                cipher: cipher, keys: keys)
    }

    func testCBCPaddingIsRFC2630ForEveryLengthModulo16() throws {
        for n in [0, 1, 15, 16, 17, 31, 32, 100] {
            let plaintext = (0..<n).map { UInt8(truncatingIfNeeded: $0 * 7) }
            let dcf = try mbmsDCF(plaintext, cipher: .aes128CBC(iv: [UInt8](repeating: 0xA5, count: 16)))
            let parsed = try DCFReader().parse(dcf)
            let data = parsed.file.container.contentObject.encryptedData
            XCTAssertEqual(data.count, 16 + (n / 16 + 1) * 16, "IV + padded length for \(n) bytes (1 ≤ p ≤ 16)")
            XCTAssertEqual(Array(data.prefix(16)), [UInt8](repeating: 0xA5, count: 16), "IV first")
            XCTAssertEqual(try DCFReader().open(dcf, keys: keys).plaintext, plaintext)
        }
    }

    func testCTROptionRoundTripsAndMatchesIndependentKeystream() throws {
        let plaintext = Array("counter mode content object, 45 bytes long...".utf8)
        let counter: [UInt8] = [UInt8](repeating: 0, count: 15) + [0xFE]
        let dcf = try mbmsDCF(plaintext, cipher: .aes128CTR(initialCounter: counter))
        let parsed = try DCFReader().parse(dcf)
        let common = parsed.file.container.headers.commonHeaders
        XCTAssertEqual(common.encryptionMethod, .aes128CTR)
        XCTAssertEqual(common.paddingScheme, .none)
        let data = parsed.file.container.contentObject.encryptedData
        XCTAssertEqual(data.count, 16 + plaintext.count)
        // Independent check: AES-ECB of counter blocks 0xFE, 0xFF, 0x100 (128-bit increment with carry).
        var expected: [UInt8] = []
        for c in [UInt16(0xFE), 0xFF, 0x100] {
            let block = [UInt8](repeating: 0, count: 14) + [UInt8(c >> 8), UInt8(c & 0xFF)]
            let ks = try AESCBC.encrypt(key: keys.encryptionKey.revealedBytes(), iv: [UInt8](repeating: 0, count: 16), plaintext: block, padding: false)
            expected += ks
        }
        let ciphertext = zip(plaintext, expected).map { $0 ^ $1 }
        XCTAssertEqual(Array(data.suffix(plaintext.count)), ciphertext)
        XCTAssertEqual(try DCFReader().open(dcf, keys: keys).plaintext, plaintext)
    }

    /// The DCF-wrapped FDT: NULL encryption, readable without the key, integrity by 'odfs'.
    func testNullEncryptionWrapsTheFDTReadableWithoutKey() throws {
        let fdt = Array("<?xml version=\"1.0\"?><FDT-Instance Expires=\"1\"/>".utf8)
        let dcf = try DCFWriter().protect(plaintext: fdt, contentType: "text/xml", contentID: "cid:fdt1@bmsc.example.com",
                                          keyInfo: OMABCASTKeyInfoBox(mbmsKeyID: try XCTUnwrap(keyID)), cipher: .null,
                                          encryptionKey: nil, authenticationKey: keys.authenticationKey)
        let reader = DCFReader()
        let parsed = try reader.parse(dcf)
        XCTAssertEqual(parsed.file.container.headers.commonHeaders.encryptionMethod, .null)
        XCTAssertEqual(try reader.decrypt(parsed, encryptionKey: nil), fdt, "readable before the MTK arrives")
        XCTAssertEqual(try reader.verifySignature(parsed, authenticationKey: keys.authenticationKey), .verified)
    }

    func testEveryFlippedByteIsRejectedOrFailsTheSignature() throws {
        let dcf = try mbmsDCF(Array("integrity protected".utf8), cipher: .aes128CBC(iv: [UInt8](repeating: 1, count: 16)))
        let reader = DCFReader()
        var rejected = 0
        // The 'odfs' version/flags bytes are outside the HMAC range and ignored on read
        // (dcf.md 3); every other byte is either structure or signed content.
        let odfsVersionFlags = (dcf.count - 41 + 16)..<(dcf.count - 41 + 20)
        for i in 0..<dcf.count where !odfsVersionFlags.contains(i) {
            var bad = dcf
            bad[i] ^= 0x01
            do {
                _ = try reader.open(bad, keys: keys)
                XCTFail("byte \(i) flipped but the DCF opened")
            } catch {
                rejected += 1
            }
        }
        XCTAssertEqual(rejected, dcf.count - 4)
        var badSignature = dcf
        badSignature[dcf.count - 1] ^= 0x80
        XCTAssertThrowsError(try reader.open(badSignature, keys: keys)) { XCTAssertEqual($0 as? DCFError, .signatureMismatch) }
    }

    func testUnsignedDCFRefusedWhenSignatureRequired() throws {
        let dcf = try DCFWriter().protect(plaintext: [1, 2, 3], contentType: "text/plain", contentID: "cid:a@b",
                                          keyInfo: nil, cipher: .aes128CBC(iv: [UInt8](repeating: 0, count: 16)),
                                          encryptionKey: keys.encryptionKey, authenticationKey: nil)
        XCTAssertThrowsError(try DCFReader().open(dcf, keys: keys)) { XCTAssertEqual($0 as? DCFError, .signatureMissing) }
        XCTAssertEqual(try DCFReader().open(dcf, keys: keys, requireSignature: false).plaintext, [1, 2, 3])
    }

    func testTruncationsAndMutationsNeverTrap() throws {
        let v = try DCFVectors.vector("vector_2_mbms_dcf")
        let bytes = try v.hex("dcf_hex")
        let reader = DCFReader()
        for n in 0..<bytes.count {
            XCTAssertThrowsError(try reader.open(Array(bytes.prefix(n)), keys: keys), "prefix \(n)")
        }
        // Deterministic mutation fuzz (xorshift): must only ever throw or return.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
        for _ in 0..<3000 {
            var m = bytes
            for _ in 0..<(1 + Int(next() % 4)) {
                m[Int(next() % UInt64(m.count))] = UInt8(truncatingIfNeeded: next())
            }
            _ = try? reader.parse(m)
        }
    }

    func testHostileBoxSizesAreTypedErrors() throws {
        let reader = DCFReader()
        // Top-level size larger than the file.
        XCTAssertThrowsError(try reader.parse([0, 0, 0, 0x40] + Array("ftyp".utf8) + Array("odcf".utf8) + [0, 0, 0, 2])) {
            guard case .invalidBoxSize(box: "ftyp", offset: 0, size: 0x40, rule: _)? = $0 as? DCFError else { return XCTFail("\($0)") }
        }
        // largesize below its header.
        XCTAssertThrowsError(try reader.parse([0, 0, 0, 1] + Array("ftyp".utf8) + [0, 0, 0, 0, 0, 0, 0, 8])) {
            guard case .invalidBoxSize(box: "ftyp", offset: 0, size: 8, rule: _)? = $0 as? DCFError else { return XCTFail("\($0)") }
        }
        // size 0 inside a container is not allowed.
        var file = try DCFVectors.vector("vector_2_mbms_dcf").hex("dcf_hex")
        file.replaceSubrange(0x20..<0x24, with: [0, 0, 0, 0]) // 'odhe' size → 0
        XCTAssertThrowsError(try reader.parse(file)) {
            guard case .invalidBoxSize(box: "odhe", offset: 0x20, size: 0, rule: _)? = $0 as? DCFError else { return XCTFail("\($0)") }
        }
        // EncryptedDataLength lies.
        var lying = try DCFVectors.vector("vector_2_mbms_dcf").hex("dcf_hex")
        lying[0x99] = 0x41
        XCTAssertThrowsError(try reader.parse(lying)) {
            guard case .lengthMismatch(box: "odda", field: "EncryptedDataLength", offset: 0x92, declared: 0x41, actual: 0x40)? = $0 as? DCFError else { return XCTFail("\($0)") }
        }
        // An undefined SignatureMethod.
        var method = try DCFVectors.vector("vector_2_mbms_dcf").hex("dcf_hex")
        method[0xEE] = 0x07
        XCTAssertThrowsError(try reader.parse(method)) {
            guard case .invalidField(box: "odfs", field: "SignatureMethod 7", offset: 0xEE, rule: _)? = $0 as? DCFError else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try DCFReader(maximumSize: 100).parse(file)) {
            XCTAssertEqual($0 as? DCFError, .tooLarge(size: 259, limit: 100))
        }
    }

    func testKeyIDBase64AgainstFoundation() throws {
        var state: UInt32 = 12345
        for _ in 0..<200 {
            state = state &* 1_103_515_245 &+ 12345
            let id = try XCTUnwrap(MBMSKeyID(keyDomainID: [UInt8(state >> 24), UInt8(state >> 16 & 0xFF), UInt8(state >> 8 & 0xFF)],
                                             mskID: state, mtkID: UInt16(state & 0xFFFF)))
            XCTAssertEqual(id.base64, Data(id.rawBytes).base64EncodedString())
            XCTAssertEqual(MBMSKeyID(base64: id.base64), id)
        }
        XCTAssertNil(MBMSKeyID(base64: "APEQAAEAAgA"), "not a multiple of 4")
        XCTAssertNil(MBMSKeyID(base64: "APEQAAEAAgA*"), "not base64")
        XCTAssertNil(MBMSKeyID(base64: "APEQAAEAAg=="), "8 bytes, not 9")
        XCTAssertNil(MBMSKeyID(keyDomainID: [1, 2], mskID: 1, mtkID: 1))
        XCTAssertNil(OMABCASTKeyInfoBox(keyIDType: 0x01, keyID: Array("APEQAAEAAgAD".utf8)).mbmsKeyID, "KeyIDType must be 0x02")
        // Base64 of lengths 1 and 2 (padding paths) against Foundation.
        for bytes: [UInt8] in [[0xFF], [0xFF, 0x01], [], [1, 2, 3, 4]] {
            XCTAssertEqual(Base64.encode(bytes), Data(bytes).base64EncodedString())
            XCTAssertEqual(Base64.decode(Data(bytes).base64EncodedString()), bytes)
        }
    }

    func testKeyInfoWithAllOptionalFieldsRoundTrips() throws {
        let info = OMABCASTKeyInfoBox(keyID: Array("APEQAAEAAgAD".utf8), keyIssuerURL: "http://bmsc.example.com/km",
                                      shortTermKeyMessage: [9, 8, 7], terminalBindingKeyID: 0xDEAD_BEEF,
                                      terminalBindingKeyIssuerURL: "http://tbk.example.com")
        let dcf = try DCFWriter().protect(plaintext: [0], contentType: "a/b", contentID: "c", keyInfo: info, cipher: .null,
                                          encryptionKey: nil, authenticationKey: keys.authenticationKey)
        let parsed = try DCFReader().parse(dcf)
        XCTAssertEqual(parsed.file.container.headers.commonHeaders.keyInfo, info)
    }
}
