import CryptoCore
import XCTest
@testable import MIKEY

/// mikey.md section 9 worked examples, byte for byte (expected values are the spec's).
final class WorkedExampleTests: XCTestCase {
    let hex = Fixtures.hex

    func testMSKMessageExample91() throws {
        let bytes = try Fixtures.mskBuilder().build()
        XCTAssertEqual(bytes.count, 212)
        XCTAssertEqual(Hex.encode(bytes), Hex.encode(Fixtures.example91))
    }

    func testMSKIntermediateValues91() throws {
        XCTAssertEqual(MIKEYPRF.label(.pskEncryption, csID: MIKEYKeyDerivation.pskCSID, csbID: 0xCAFE_0001, rand: Fixtures.rand),
                       hex("150533e1ffcafe0001101112131415161718191a1b1c1d1e1f"))
        let keys = try MIKEYKeyDerivation.pskKeys(psk: Fixtures.muk, csbID: Fixtures.csbMSK, rand: Fixtures.rand)
        XCTAssertEqual(keys.encryptionKey.revealedBytes(), hex("d764d071e534d77f9edeb0d9fc5e6546"))
        XCTAssertEqual(keys.authenticationKey.revealedBytes(), hex("d2aeead3d8fa284cc487b67adf7d40b0fe31ad32"))
        XCTAssertEqual(keys.saltKey.revealedBytes(), hex("e15e77845261545e80ad68091d32"))
        XCTAssertEqual(KEMACCrypto.iv(saltKey: keys.saltKey, csbID: Fixtures.csbMSK, timestamp: .counter(42)),
                       hex("e15ebd7a5260545e80ad68091d180000"))
        // Decrypting the example's Encr data gives the spec's plaintext Key data.
        let message = try MIKEYDecoder.decode(Fixtures.example91)
        let kemac = try XCTUnwrap(message.kemac)
        let plain = try KEMACCrypto.crypt(kemac.encryptedData, keys: keys, csbID: Fixtures.csbMSK, timestamp: .counter(42))
        XCTAssertEqual(plain, hex("00220010c0c1c2c3c4c5c6c7c8c9cacbcccdcecf020000" + "02fffe"))
    }

    func testMTKMessageExample92() throws {
        let bytes = try Fixtures.mtkBuilder().build()
        XCTAssertEqual(bytes.count, 99)
        XCTAssertEqual(Hex.encode(bytes), Hex.encode(Fixtures.example92))
        let keys = try MIKEYKeyDerivation.pskKeys(psk: Fixtures.msk, csbID: Fixtures.csbMTK, rand: Fixtures.rand)
        XCTAssertEqual(keys.encryptionKey.revealedBytes(), hex("9ec3f6591bd3933ef4559c01106d7b06"))
        XCTAssertEqual(keys.authenticationKey.revealedBytes(), hex("672cf4677667dbd7c4bdd6442aa7d7dd42e67766"))
        XCTAssertEqual(keys.saltKey.revealedBytes(), hex("00f0f6f32fec0a888e55cc557218"))
        XCTAssertEqual(KEMACCrypto.iv(saltKey: keys.saltKey, csbID: Fixtures.csbMTK, timestamp: .counter(7)),
                       hex("00f0e7d11ca80a888e55cc55721f0000"))
        let kemac = try XCTUnwrap(try MIKEYDecoder.decode(bytes).kemac)
        let plain = try KEMACCrypto.crypt(kemac.encryptedData, keys: keys, csbID: Fixtures.csbMTK, timestamp: .counter(7))
        XCTAssertEqual(plain, hex("00300010a0a1a2a3a4a5a6a7a8a9aaabacadaeaf000eb0b1b2b3b4b5b6b7b8b9babbbcbd"))
    }

    func testVerificationMessageExample93() throws {
        let keys = try MIKEYKeyDerivation.pskKeys(psk: Fixtures.muk, csbID: Fixtures.csbMSK, rand: Fixtures.rand)
        let bytes = try MSKVerificationMessage.build(csbID: Fixtures.csbMSK, timestamp: 42, nafID: Array(Fixtures.nafID.utf8),
                                                     bTID: Array(Fixtures.bTID.utf8), authenticationKey: keys.authenticationKey)
        XCTAssertEqual(Hex.encode(bytes), Hex.encode(Fixtures.example93))
        // The UE processor produces the same message for the V = 1 example MSK message.
        var ue = UEKeyProcessor(muk: Fixtures.muk, nafID: Fixtures.nafID, bTID: Fixtures.bTID)
        guard case .success(.msk(_, let v)) = ue.process(Fixtures.example91) else { return XCTFail("example 9.1 rejected") }
        XCTAssertEqual(v.map { Hex.encode($0) }, Hex.encode(Fixtures.example93))
        // And the BM-SC verifier accepts it with the recommended construction.
        let result = MSKVerificationMessage.verify(Fixtures.example93, muk: Fixtures.muk, mskRAND: Fixtures.rand,
                                                   nafID: Array(Fixtures.nafID.utf8), bTID: Array(Fixtures.bTID.utf8),
                                                   expectedCSBID: Fixtures.csbMSK, expectedTimestamp: 42)
        XCTAssertEqual(result, .success(.identitiesAndTimestamp64))
    }

    func testDownloadDerivationExample94() throws {
        let tgk = SecretBytes(hex("d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"))
        let keys = try MIKEYKeyDerivation.downloadKeys(mtk: tgk, csbID: Fixtures.csbMTK, rand: Fixtures.rand)
        XCTAssertEqual(keys.encryptionKey.revealedBytes(), hex("fe7e3c5ac246e3848c5f655fc0369db5"))
        XCTAssertEqual(keys.authenticationKey.revealedBytes(), hex("8fd8308cb9ebfb0526c9ab9b0b9d25e5bd4a78e3"))
    }

    func testRecommendedSRTPPolicyEncoding() throws {
        // The parameter list of the worked MSK message (mikey.md 9.1 whole-message hex). Note: the
        // spaced listing in mikey.md 9.1 / rfc4771.md 6 writes the second triple as "011010";
        // the whole 212-octet message (and its length 0x34) has "010110" (type 1, len 1, 16).
        var w: [UInt8] = []
        for p in Fixtures.policy.encodedParameters() { w += [p.type, UInt8(p.value.count)] + p.value }
        XCTAssertEqual(w.count, 0x34)
        let sp = Hex.encode(Fixtures.example91)
        let start = try XCTUnwrap(sp.range(of: "0100000034")).upperBound
        XCTAssertEqual(Hex.encode(w), String(sp[start...].prefix(0x34 * 2)))
        XCTAssertEqual(Hex.encode(w), "000101010110020103030114" + "04010e050100060100070101080100090100" + "0a01010b010e0d0200400e01030f010112010e13010a")
    }

    func testKeyDomainIDPLMNEncoding() {
        // mikey.md M-9: MCC 001 / MNC 01 -> 00 f1 10.
        XCTAssertEqual(KeyDomainID(mcc: "001", mnc: "01")?.bytes, [0x00, 0xF1, 0x10])
        // Three-digit MNC: MCC 310 / MNC 410 -> 13 00 14 (TS 24.008 10.5.1.3 layout).
        XCTAssertEqual(KeyDomainID(mcc: "310", mnc: "410")?.bytes, [0x13, 0x00, 0x14])
        XCTAssertNil(KeyDomainID(mcc: "01", mnc: "01"))
        XCTAssertNil(KeyDomainID(mcc: "0a1", mnc: "01"))
    }
}
