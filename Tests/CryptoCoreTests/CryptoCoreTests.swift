import XCTest
@testable import CryptoCore

/// Known-answer tests against published vectors (RFC 2202, RFC 4231, FIPS 180-4,
/// NIST SP 800-38A, RFC 3711 B.2, RFC 6188 7.1/7.3). None of the expected values
/// come from this code.
final class CryptoCoreTests: XCTestCase {
    func h(_ s: String) -> [UInt8] { try! Hex.decode(s) }

    func testOpenSSLRuntimeCheckPasses() throws {
        XCTAssertNoThrow(try OpenSSLRuntime.check())
        XCTAssertTrue(OpenSSLRuntime.versionText.hasPrefix("OpenSSL 3"), OpenSSLRuntime.versionText)
    }

    // RFC 2202 test cases 1, 2, 6 (key longer than a block).
    func testHMACSHA1RFC2202() throws {
        XCTAssertEqual(try HMACSHA1.authenticate(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8)),
                       h("b617318655057264e28bc0b6fb378c8ef146be00"))
        XCTAssertEqual(try HMACSHA1.authenticate(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)),
                       h("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"))
        XCTAssertEqual(try HMACSHA1.authenticate(key: [UInt8](repeating: 0xaa, count: 80),
                                                 message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)),
                       h("aa4ae5e15272d00e95705637ce8a3b55ed402112"))
    }

    func testHMACSHA1TwoPartEqualsConcatenation() throws {
        let mac = try HMACSHA1(key: h("0102030405060708090a0b0c0d0e0f1011121314"))
        let a = (0..<77).map { UInt8($0) }, b = (0..<13).map { UInt8(200 &+ $0) }
        var out = [UInt8](repeating: 0, count: 20)
        a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in out.withUnsafeMutableBytes { o in
            mac.authenticate(pa.baseAddress, pa.count, pb.baseAddress, pb.count, into: o.baseAddress!)
        } } }
        XCTAssertEqual(out, mac.authenticate(a + b))
        XCTAssertEqual(out, mac.authenticate(a, b))
    }

    func testSHA256AndHMACSHA256() throws {
        XCTAssertEqual(SHA256.hash(Array("abc".utf8)), h("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
        XCTAssertEqual(SHA1.hash(Array("abc".utf8)), h("a9993e364706816aba3e25717850c26c9cd0d89d"))
        // RFC 1321 A.5 test suite.
        XCTAssertEqual(MD5.hash(Array("abc".utf8)), h("900150983cd24fb0d6963f7d28e17f72"))
        XCTAssertEqual(MD5.hash([]), h("d41d8cd98f00b204e9800998ecf8427e"))
        // RFC 4231 test case 2.
        XCTAssertEqual(try HMACSHA256.authenticate(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)),
                       h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"))
    }

    // RFC 3711 Appendix B.2.
    func testAESCMRFC3711B2() throws {
        let aes = try AESCounterMode(key: h("2B7E151628AED2A6ABF7158809CF4F3C"))
        let ks = try aes.keystream(iv: h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"), count: 48)
        XCTAssertEqual(ks, h("E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB41E95B3BB0A2E8DD477901E4FCA894C0"))
        let tail = try aes.keystream(iv: h("F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF"), count: 48)
        XCTAssertEqual(tail, h("EC8CDF7398607CB0F2D21675EA9EA1E4362B7C3C6773516318A077D7FC5073AE6A2CC3787889374FBEB4C81B17BA6C44"))
    }

    // RFC 6188 7.1 (AES-256-CM) and 7.3 (AES-192-CM) first blocks.
    func testAESCMRFC6188() throws {
        let a256 = try AESCounterMode(key: h("57f82fe3613fd170a85ec93c40b1f0922ec4cb0dc025b58272147cc438944a98"))
        XCTAssertEqual(try a256.keystream(iv: h("f0f1f2f3f4f5f6f7f8f9fafbfcfd0000"), count: 32),
                       h("92bdd28a93c3f52511c677d08b5515a49da71b2378a854f67050756ded165bac"))
        let a192 = try AESCounterMode(key: h("eab234764e517b2d3d160d587d8c86219740f65f99b6bcf7"))
        XCTAssertEqual(try a192.keystream(iv: h("f0f1f2f3f4f5f6f7f8f9fafbfcfd0000"), count: 32),
                       h("35096cba4610028dc1b57503804ce37c5de986291dcce161d5165ec4568f5c9a"))
    }

    func testAESCMRejectsBadKeyLength() {
        XCTAssertThrowsError(try AESCounterMode(key: [UInt8](repeating: 0, count: 15))) { error in
            XCTAssertEqual(error as? CryptoError, .invalidKeyLength(algorithm: "AES-CM", got: 15, allowed: [16, 24, 32]))
        }
    }

    func testAESCMCopyIsIndependentAndEqual() throws {
        let a = try AESCounterMode(key: h("2B7E151628AED2A6ABF7158809CF4F3C"))
        let b = a.copy()
        let iv = h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
        XCTAssertEqual(try a.keystream(iv: iv, count: 40), try b.keystream(iv: iv, count: 40))
    }

    // NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt), first two blocks, no padding.
    func testAESCBCNIST() throws {
        let key = h("2b7e151628aed2a6abf7158809cf4f3c"), iv = h("000102030405060708090a0b0c0d0e0f")
        let pt = h("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
        let ct = try AESCBC.encrypt(key: key, iv: iv, plaintext: pt, padding: false)
        XCTAssertEqual(ct, h("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"))
        XCTAssertEqual(try AESCBC.decrypt(key: key, iv: iv, ciphertext: ct, padding: false), pt)
    }

    func testAESCBCPaddingRoundTripAndBadPadding() throws {
        let key = [UInt8](repeating: 7, count: 16), iv = [UInt8](repeating: 9, count: 16)
        for n in [0, 1, 15, 16, 17, 100] {
            let pt = (0..<n).map { UInt8(truncatingIfNeeded: $0) }
            let ct = try AESCBC.encrypt(key: key, iv: iv, plaintext: pt)
            XCTAssertEqual(ct.count, (n / 16 + 1) * 16)
            XCTAssertEqual(try AESCBC.decrypt(key: key, iv: iv, ciphertext: ct), pt)
        }
        XCTAssertThrowsError(try AESCBC.decrypt(key: key, iv: iv, ciphertext: [UInt8](repeating: 1, count: 15)))
        // Decrypting random blocks almost never yields valid padding; a fixed block that does not:
        let garbage = try AESCBC.encrypt(key: key, iv: iv, plaintext: [UInt8](repeating: 0, count: 16), padding: false)
        XCTAssertThrowsError(try AESCBC.decrypt(key: key, iv: iv, ciphertext: garbage))
    }

    func testSecretBytesRedactsAndCompares() throws {
        let s = SecretBytes([1, 2, 3, 4])
        XCTAssertEqual("\(s)", "SecretBytes(4 bytes, redacted)")
        XCTAssertTrue(s.isEqual(to: SecretBytes([1, 2, 3, 4])))
        XCTAssertFalse(s.isEqual(to: SecretBytes([1, 2, 3, 5])))
        let r = try SecretBytes.random(count: 32)
        XCTAssertEqual(r.count, 32)
        XCTAssertFalse(r.isEqual(to: try SecretBytes.random(count: 32)))
    }

    func testHexRejectsGarbage() {
        XCTAssertThrowsError(try Hex.decode("abc"))
        XCTAssertThrowsError(try Hex.decode("zz"))
        XCTAssertEqual(try Hex.decode("0x00:ff AB"), [0, 255, 0xab])
    }
}
