import Foundation
import XCTest
import CryptoCore
@testable import DCF

/// Shared helpers: `../shared/spec/vectors/dcf.json`, relative to the repository root.
enum DCFVectors {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/spec/vectors")

    static func load() throws -> [String: Any] {
        let url = directory.appendingPathComponent("dcf.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("\(url.path) not present (tests expect ../shared beside the checkout)")
        }
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
        return try XCTUnwrap(object as? [String: Any])
    }

    static func vector(_ name: String) throws -> [String: Any] {
        try XCTUnwrap(try load()[name] as? [String: Any], "vector \(name)")
    }
}

extension Dictionary where Key == String, Value == Any {
    func string(_ key: String) throws -> String { try XCTUnwrap(self[key] as? String, "field \(key)") }
    func hex(_ key: String) throws -> [UInt8] { try Hex.decode(try string(key)) }
    func int(_ key: String) throws -> Int { try XCTUnwrap(self[key] as? Int, "field \(key)") }
}

/// Both vectors of `dcf.json`, byte for byte (the first "Done when" line for DCF).
final class DCFVectorTests: XCTestCase {
    /// Vector 1: plain CBC DCF byte-identical to Bento4's mp4dcfpackager (largesize on odrm/odda).
    func testVector1PlainDCFIsReproducedByteForByte() throws {
        let v = try DCFVectors.vector("vector_1_plain_dcf_cbc")
        let writer = DCFWriter(largeSizeBoxTypes: [.odrm, .odda])
        let dcf = try writer.protect(plaintext: try v.hex("plaintext_hex"), contentType: try v.string("content_type"),
                                     contentID: try v.string("content_id"), keyInfo: nil,
                                     cipher: .aes128CBC(iv: try v.hex("iv")),
                                     encryptionKey: SecretBytes(try v.hex("aes128_key")), authenticationKey: nil)
        XCTAssertEqual(Hex.encode(dcf), try v.string("dcf_hex"))
        XCTAssertEqual(dcf.count, try v.int("dcf_length"))
    }

    func testVector1ParsesDecryptsAndReserializesIdentically() throws {
        let v = try DCFVectors.vector("vector_1_plain_dcf_cbc")
        let bytes = try v.hex("dcf_hex")
        let reader = DCFReader()
        let parsed = try reader.parse(bytes)
        let common = parsed.file.container.headers.commonHeaders
        XCTAssertEqual(parsed.file.fileType, FileTypeBox(majorBrand: .odcf, minorVersion: 2, compatibleBrands: [.odcf]))
        XCTAssertEqual(parsed.file.container.headers.contentType, try v.string("content_type"))
        XCTAssertEqual(common.encryptionMethod.rawValue, UInt8(try v.int("encryption_method")))
        XCTAssertEqual(common.paddingScheme.rawValue, UInt8(try v.int("padding_scheme")))
        XCTAssertEqual(common.plaintextLength, UInt64(try v.int("plaintext_length")))
        XCTAssertEqual(String(decoding: common.contentID, as: UTF8.self), try v.string("content_id"))
        XCTAssertEqual(parsed.file.container.contentObject.encryptedData.count, try v.int("odda_encrypted_data_length"))
        XCTAssertNil(parsed.file.mutableInformation)
        XCTAssertNil(common.keyInfo)
        XCTAssertEqual(parsed.signedBytes, bytes, "without 'mdri' every byte is in the HMAC range")
        let plaintext = try reader.decrypt(parsed, encryptionKey: SecretBytes(try v.hex("aes128_key")))
        XCTAssertEqual(plaintext, try v.hex("plaintext_hex"))
        XCTAssertEqual(try DCFWriter(largeSizeBoxTypes: [.odrm, .odda]).serialize(parsed.file), bytes)
        // The same DCF with 32-bit sizes is 16 bytes shorter and parses to the same structure.
        let compact = try DCFWriter().serialize(parsed.file)
        XCTAssertEqual(compact.count, bytes.count - 16)
        XCTAssertEqual(try reader.parse(compact).file, parsed.file)
    }

    /// Vector 2: MBMS DCF with obki/mdri/odfs, keys from the MTK (TS 33.246 6.5.4).
    func testVector2MBMSDCFIsReproducedByteForByte() throws {
        let v = try DCFVectors.vector("vector_2_mbms_dcf")
        let keys = try DCFKeys.derive(mtk: SecretBytes(try v.hex("MTK")),
                                      csbID: UInt32(try v.string("CSB_ID"), radix: 16) ?? 0,
                                      rand: try v.hex("MIKEY_RAND"))
        XCTAssertEqual(keys.encryptionKey.revealedBytes(), try v.hex("encryption_key_128"))
        XCTAssertEqual(keys.authenticationKey.revealedBytes(), try v.hex("authentication_key_160"))
        let keyID = try XCTUnwrap(MBMSKeyID(keyDomainID: try v.hex("key_domain_id"),
                                            mskID: UInt32(try v.string("msk_id"), radix: 16) ?? 0,
                                            mtkID: UInt16(try v.string("mtk_id"), radix: 16) ?? 0))
        XCTAssertEqual(Hex.encode(keyID.rawBytes), try v.string("key_id_raw"))
        XCTAssertEqual(keyID.base64, try v.string("key_id_base64_ascii"))
        XCTAssertEqual(keyID.base64.utf8.count, try v.int("key_id_length"))

        let dcf = try DCFWriter().protect(plaintext: try v.hex("plaintext_hex"), contentType: try v.string("content_type"),
                                          contentID: try v.string("content_id"), keyID: keyID,
                                          cipher: .aes128CBC(iv: try v.hex("iv")), keys: keys)
        XCTAssertEqual(Hex.encode(dcf), try v.string("dcf_hex"))
        XCTAssertEqual(dcf.count, try v.int("dcf_length"))
        XCTAssertEqual(Hex.encode(dcf.suffix(33)), try v.string("odfs_box_hex"))
    }

    func testVector2OpensWithVerifiedSignature() throws {
        let v = try DCFVectors.vector("vector_2_mbms_dcf")
        let bytes = try v.hex("dcf_hex")
        let keys = DCFKeys(encryptionKey: SecretBytes(try v.hex("encryption_key_128")),
                           authenticationKey: SecretBytes(try v.hex("authentication_key_160")))
        let reader = DCFReader()
        let parsed = try reader.parse(bytes)
        XCTAssertEqual(parsed.signedBytes.count, 218, "ftyp + odrm (dcf.json hmac_input)")
        XCTAssertEqual(parsed.mbmsKeyID?.base64, try v.string("key_id_base64_ascii"))
        XCTAssertEqual(parsed.signedBytes, Array(bytes.prefix(218)))
        XCTAssertEqual(parsed.file.mutableInformation?.signature?.signature, try v.hex("hmac_sha1_signature"))
        let opened = try reader.open(bytes, keys: keys)
        XCTAssertEqual(opened.plaintext, try v.hex("plaintext_hex"))
        XCTAssertEqual(opened.signature, .verified)
        XCTAssertEqual(opened.contentType, "text/plain")
        let info = try XCTUnwrap(opened.keyInfo)
        XCTAssertEqual(info.keyIDType, 0x02)
        XCTAssertEqual(info.mbmsKeyID?.mtkID, 3)
        XCTAssertEqual(info.mbmsKeyID?.mskID, 0x0001_0002)
        XCTAssertEqual(info.mbmsKeyID?.keyDomainID, [0x00, 0xF1, 0x10])
        XCTAssertEqual(try DCFWriter().serialize(parsed.file), bytes)
    }
}
