import CryptoCore
import XCTest
@testable import SRTP

/// Known answers from `../shared/spec/vectors/srtp.json` (RFC 3711 B.2/B.3, RFC 6188 7.1–7.4,
/// cisco/libsrtp reference packets) and the worked examples of `srtp.md` 8 and `rfc4771.md` 7
/// (the latter two were accepted by stock libsrtp 2.5.0 when the spec notes were written).
final class SRTPVectorTests: XCTestCase {
    func testRFC3711AppendixB2KeystreamVector() throws {
        let v = try Fixtures.json("srtp.json").object("official_vectors").object("rfc3711_appendix_B2_aes_cm_keystream")
        let aes = try AESCounterMode(key: try v.bytes("session_key"))
        let blocks = try XCTUnwrap(v["blocks"] as? [[String: Any]])
        XCTAssertEqual(blocks.count, 6)
        for b in blocks {
            XCTAssertEqual(try aes.keystream(iv: try b.bytes("counter_block"), count: 16), try b.bytes("keystream"))
        }
    }

    func testRFC3711AppendixB3KeyDerivationVector() throws {
        let v = try Fixtures.json("srtp.json").object("official_vectors").object("rfc3711_appendix_B3_key_derivation")
        let prf = try AESCounterMode(key: try v.bytes("master_key"))
        let salt = try v.bytes("master_salt")
        let out = try v.object("outputs")
        XCTAssertEqual(try SRTPKeyDerivation.derive(prf: prf, masterSalt: salt, label: .srtpEncryption, length: 16),
                       try out.bytes("srtp_cipher_key_label_0x00"))
        XCTAssertEqual(try SRTPKeyDerivation.derive(prf: prf, masterSalt: salt, label: .srtpSalt, length: 14),
                       try out.bytes("srtp_cipher_salt_label_0x02"))
        // B.3 prints 94 octets of the authentication-key stream.
        XCTAssertEqual(try SRTPKeyDerivation.derive(prf: prf, masterSalt: salt, label: .srtpAuthentication, length: 94),
                       try out.bytes("srtp_auth_key_label_0x01_94_octets"))
    }

    func testRFC6188KeystreamVectors() throws {
        let o = try Fixtures.json("srtp.json").object("official_vectors")
        for name in ["rfc6188_section7_1_aes256_cm_keystream", "rfc6188_section7_3_aes192_cm_keystream"] {
            let v = try o.object(name)
            let aes = try AESCounterMode(key: try v.bytes("session_key"))
            let first = try XCTUnwrap(v["first_blocks"] as? [String]).map { try hex($0) }.flatMap { $0 }
            XCTAssertEqual(try aes.keystream(iv: try v.bytes("iv"), count: first.count), first, name)
            let last = try XCTUnwrap(v["last_blocks_counter_FEFF_FF00_FF01"] as? [String]).map { try hex($0) }.flatMap { $0 }
            var iv = try v.bytes("iv"); iv[14] = 0xFE; iv[15] = 0xFF
            XCTAssertEqual(try aes.keystream(iv: iv, count: 48), last, name)
        }
    }

    func testRFC6188KeyDerivationVectors() throws {
        let o = try Fixtures.json("srtp.json").object("official_vectors")
        for name in ["rfc6188_section7_2_aes256_key_derivation", "rfc6188_section7_4_aes192_key_derivation"] {
            let v = try o.object(name)
            let key = try v.bytes("master_key"), salt = try v.bytes("master_salt")
            let prf = try AESCounterMode(key: key)
            let out = try v.object("outputs")
            XCTAssertEqual(try SRTPKeyDerivation.derive(prf: prf, masterSalt: salt, label: .srtpEncryption, length: key.count),
                           try out.bytes("srtp_cipher_key_label_0x00"), name)
            XCTAssertEqual(try SRTPKeyDerivation.derive(prf: prf, masterSalt: salt, label: .srtpSalt, length: 14),
                           try out.bytes("srtp_cipher_salt_label_0x02"), name)
            XCTAssertEqual(try SRTPKeyDerivation.derive(prf: prf, masterSalt: salt, label: .srtpAuthentication, length: 20),
                           try out.bytes("srtp_auth_key_label_0x01_first_20_octets"), name)
        }
    }

    /// cisco/libsrtp srtp_driver.c reference packets: protect must reproduce them byte for
    /// byte and unprotect must return the plaintext.
    func testLibSRTPReferencePackets() throws {
        let r = try Fixtures.json("srtp.json").object("non_rfc_reference_vectors")
        let key = try r.bytes("master_key"), salt = try r.bytes("master_salt")
        let rtp = try r.bytes("rtp_plaintext"), rtcp = try r.bytes("rtcp_plaintext")
        let packets = try r.object("packets")
        struct Case { let name: String; let rtcp: Bool; let cipher: SRTPCipher; let mki: [UInt8] }
        let cases = [
            Case(name: "srtp_aes128cm_hmacsha1_80", rtcp: false, cipher: .aesCM128, mki: []),
            Case(name: "srtp_aes128cm_hmacsha1_80_mki_e1f97a0d", rtcp: false, cipher: .aesCM128, mki: [0xe1, 0xf9, 0x7a, 0x0d]),
            Case(name: "srtcp_aes128cm_hmacsha1_80_index1", rtcp: true, cipher: .aesCM128, mki: []),
            Case(name: "srtcp_aes128cm_hmacsha1_80_index1_mki_e1f97a0d", rtcp: true, cipher: .aesCM128, mki: [0xe1, 0xf9, 0x7a, 0x0d]),
            Case(name: "srtp_null_cipher_hmacsha1_80", rtcp: false, cipher: .null, mki: []),
            Case(name: "srtcp_null_cipher_hmacsha1_80_index1", rtcp: true, cipher: .null, mki: []),
        ]
        for c in cases {
            let expected = try packets.object(c.name).bytes("protected")
            var policy = SRTPPolicy.rfc3711Default(mkiLength: c.mki.count)
            policy.cipher = c.cipher
            policy.srtcpEncryption = c.cipher != .null
            let keys = try SRTPSessionKeys(masterKey: key, masterSalt: salt, mki: MasterKeyIdentifier(bytes: c.mki), cipher: c.cipher)
            let protector = try SRTPProtector(policy: policy)
            var packet = c.rtcp ? rtcp : rtp
            if c.rtcp {
                var stream = SRTCPSenderStream(firstIndex: 1)   // libsrtp sends index 1 first
                try protector.protectRTCP(&packet, keys: keys, stream: &stream)
            } else {
                var stream = SRTPSenderStream()
                try protector.protectRTP(&packet, keys: keys, stream: &stream)
            }
            XCTAssertEqual(Hex.encode(packet), Hex.encode(expected), c.name)

            let receiver = try SRTPReceiver(policy: policy)
            try receiver.addKey(try SRTPSessionKeys(masterKey: key, masterSalt: salt, mki: MasterKeyIdentifier(bytes: c.mki), cipher: c.cipher))
            var back = expected
            if c.rtcp { try receiver.unprotectRTCP(&back) } else { try receiver.unprotectRTP(&back) }
            XCTAssertEqual(back, c.rtcp ? rtcp : rtp, c.name)
        }
    }

    /// srtp.md 8: the MBMS SRTCP example (6-octet MKI, index 0) with E = 1 and E = 0.
    func testMBMSSRTCPExample() throws {
        let mtk = try hex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"), salt = try hex("b0b1b2b3b4b5b6b7b8b9babbbcbd")
        let sr = try hex("80c8000612345678e1a1b2c3d4e5f6a700000a000000001000000800")
        let mki = MasterKeyIdentifier(keyGroup: 1, keyNumber: 2, mtkID: 5)
        XCTAssertEqual(mki.bytes, try hex("000100020005"))
        let expected: [Bool: String] = [
            true: "80c8000612345678" + "e1774ece36b2ab517a30a4c013f35c3280675f5e" + "80000000" + "000100020005" + "98f95210bee76e7dda14",
            false: "80c8000612345678e1a1b2c3d4e5f6a700000a00000000100000080000000000000100020005d70c212be6e9b525d895",
        ]
        for e in [true, false] {
            let policy = SRTPPolicy(authentication: .rccm2, srtcpEncryption: e)
            let keys = try SRTPSessionKeys(masterKey: mtk, masterSalt: salt, mki: mki, cipher: .aesCM128)
            var packet = sr
            var stream = SRTCPSenderStream()
            try SRTPProtector(policy: policy).protectRTCP(&packet, keys: keys, stream: &stream)
            XCTAssertEqual(Hex.encode(packet), expected[e], "E=\(e)")
            XCTAssertEqual(stream.nextIndex, 1)
        }
        // SRTCP session keys (labels 3/4/5) from srtp.md 8.
        let prf = try AESCounterMode(key: mtk)
        XCTAssertEqual(Hex.encode(try SRTPKeyDerivation.derive(prf: prf, masterSalt: salt, label: .srtcpEncryption, length: 16)), "4b6a8c4840cabe274f28e0f7546a2cf1")
        XCTAssertEqual(Hex.encode(try SRTPKeyDerivation.derive(prf: prf, masterSalt: salt, label: .srtcpAuthentication, length: 20)), "6cb174f5b1f0047ac5b963faa7a3cb6f5de210f6")
        XCTAssertEqual(Hex.encode(try SRTPKeyDerivation.derive(prf: prf, masterSalt: salt, label: .srtcpSalt, length: 14)), "9d5de49a0efa81fc6901af887ab8")
    }

    /// rfc4771.md 7: RCCm1/2/3 packets for SEQ 0x0040 (carries the ROC, R = 64) and 0x0041.
    func testRFC4771WorkedExample() throws {
        let mtk = try hex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"), salt = try hex("b0b1b2b3b4b5b6b7b8b9babbbcbd")
        let prf = try AESCounterMode(key: mtk)
        XCTAssertEqual(Hex.encode(try SRTPKeyDerivation.derive(prf: prf, masterSalt: salt, label: .srtpEncryption, length: 16)), "89543249e33e5c055464b0232de11573")
        XCTAssertEqual(Hex.encode(try SRTPKeyDerivation.derive(prf: prf, masterSalt: salt, label: .srtpAuthentication, length: 20)), "c27d7d8214eb5285e30a0f456874a879ad493d66")
        XCTAssertEqual(Hex.encode(try SRTPKeyDerivation.derive(prf: prf, masterSalt: salt, label: .srtpSalt, length: 14)), "1cff20d26bf8093190949b70486f")
        let mki = MasterKeyIdentifier(keyGroup: 1, keyNumber: 2, mtkID: 5)
        let payload = Array(0..<16).map { UInt8($0) }
        let expected: [(SRTPAuthentication, Int, UInt16, String)] = [
            (.rccm1, 10, 0x40, "8060004000000a0012345678d12135d835463c8c220679fd24c95885000100020005000000016fcc00140d440242e9aa"),
            (.rccm2, 10, 0x40, "8060004000000a0012345678d12135d835463c8c220679fd24c95885000100020005000000016fcc00140d440242e9aa"),
            (.rccm3, 10, 0x40, "8060004000000a0012345678d12135d835463c8c220679fd24c9588500010002000500000001"),
            (.rccm1, 10, 0x41, "8060004100000a001234567892749ae185138105dc8f29c050554d86000100020005"),
            (.rccm3, 10, 0x41, "8060004100000a001234567892749ae185138105dc8f29c050554d86000100020005"),
            (.rccm2, 10, 0x41, "8060004100000a001234567892749ae185138105dc8f29c050554d860001000200053d55690dd6c325901e81"),
            (.rccm2, 14, 0x41, "8060004100000a001234567892749ae185138105dc8f29c050554d860001000200053d55690dd6c325901e81d4dd4322"),
        ]
        for (mode, nonCarrying, seq, want) in expected {
            let policy = SRTPPolicy(authentication: mode, rocTransmissionRate: 64, rccm2NonCarryingTagLength: nonCarrying)
            let keys = try SRTPSessionKeys(masterKey: mtk, masterSalt: salt, mki: mki, cipher: .aesCM128)
            var stream = SRTPSenderStream(initialROC: 1)
            var packet = rtpPacket(seq: seq, payload: payload)
            try SRTPProtector(policy: policy).protectRTP(&packet, keys: keys, stream: &stream)
            XCTAssertEqual(Hex.encode(packet), want, "\(mode) tag \(nonCarrying) seq \(seq)")

            // ROC 1 is known out of band here.
            var p2 = policy; p2.initialROC = 1
            let r = try SRTPReceiver(policy: p2, lateJoin: false)
            try r.addKey(keys.copy())
            var back = packet
            let info = try r.unprotectRTP(&back)
            XCTAssertEqual(back, rtpPacket(seq: seq, payload: payload), "\(mode) seq \(seq)")
            XCTAssertEqual(info.index, 0x1_0000 | UInt64(seq))
        }
    }
}
