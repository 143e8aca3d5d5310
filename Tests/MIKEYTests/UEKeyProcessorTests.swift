import CryptoCore
import XCTest
@testable import MIKEY

/// The UE-side checks (TS 33.246 6.4.6, 6.5): accepted paths and one test per rejection.
final class UEKeyProcessorTests: XCTestCase {
    let hex = Fixtures.hex

    func freshUE() -> UEKeyProcessor { UEKeyProcessor(muk: Fixtures.muk, nafID: Fixtures.nafID, bTID: Fixtures.bTID) }

    /// A UE that already accepted the MSK of example 9.1 (SEQl 0, SEQu 0xFFFE).
    func ueWithMSK(seqL: UInt16 = 0, seqU: UInt16 = 0xFFFE) throws -> UEKeyProcessor {
        var ue = freshUE()
        let msk = try Fixtures.mskBuilder(verification: false, content: .key(msk: Fixtures.msk, seqL: seqL, seqU: seqU)).build()
        guard case .success(.msk) = ue.process(msk) else { XCTFail("MSK rejected"); return ue }
        return ue
    }

    /// Test-side sealing of arbitrary Key data plaintext with the library's 4.1.4 keys, AES-CM and HMAC,
    /// so that rejections after the MAC check can be reached.
    func seal(header: MIKEYHeader, payloads: [MIKEYPayload], plaintext: [UInt8], psk: SecretBytes, ts: UInt32,
              encr: KEMACEncryptionAlgorithm = .aesCM128) throws -> [UInt8] {
        let keys = try MIKEYKeyDerivation.pskKeys(psk: psk, csbID: header.csbID, rand: Fixtures.rand)
        let data = try KEMACCrypto.crypt(plaintext, keys: keys, csbID: header.csbID, timestamp: .counter(ts))
        let kemac = KEMACPayload(encryptionAlgorithm: encr, encryptedData: data, macAlgorithm: .hmacSHA1_160, mac: [UInt8](repeating: 0, count: 20))
        var bytes = MIKEYMessage(header: header, payloads: payloads + [.kemac(kemac)]).encode()
        let mac = try KEMACCrypto.mac(authenticationKey: keys.authenticationKey, Array(bytes.dropLast(20)))
        bytes.replaceSubrange((bytes.count - 20)..., with: mac)
        return bytes
    }

    func mskPayloads(mskID: MSKID = Fixtures.mskID, ts: UInt32 = 42) -> [MIKEYPayload] {
        [.generalExtension(.keyID(KeyIDInformation(keyDomainID: Fixtures.keyDomain, mskID: mskID))), .timestamp(.counter(ts)),
         .rand(RANDPayload(Fixtures.rand)), .identity(IdentityPayload(Fixtures.nafID)), .identity(IdentityPayload(Fixtures.bTID))]
    }
    func mtkPayloads(mtkID: UInt16 = 5, ts: UInt32 = 7) -> [MIKEYPayload] {
        [.generalExtension(.keyID(KeyIDInformation(keyDomainID: Fixtures.keyDomain, mskID: Fixtures.mskID, mtkID: MTKID(mtkID)))),
         .timestamp(.counter(ts))]
    }
    let mskHeader = MIKEYHeader(dataType: .preShared, verificationRequested: false, csbID: Fixtures.csbMSK, csIDMap: .empty)
    let mtkHeader = MIKEYHeader(dataType: .preShared, verificationRequested: false, csbID: Fixtures.csbMTK, csIDMap: .empty)

    // MARK: accepted messages

    func testMSKMessageAcceptedWithPolicyAndVerification() throws {
        var ue = freshUE()
        guard case .success(.msk(let msk, let v)) = ue.process(Fixtures.example91) else { return XCTFail("rejected") }
        XCTAssertEqual(msk.key.revealedBytes(), Fixtures.msk.revealedBytes())
        XCTAssertEqual(msk.mskID, Fixtures.mskID)
        XCTAssertEqual(msk.keyDomainID, Fixtures.keyDomain)
        XCTAssertEqual(msk.seqL, 0)
        XCTAssertEqual(msk.seqU, 0xFFFE)
        XCTAssertEqual(msk.rand, Fixtures.rand)
        XCTAssertEqual(msk.srtpPolicy, Fixtures.policy)
        XCTAssertEqual(msk.csIDMap, .srtpID([SRTPCryptoSession(policyNumber: 0, ssrc: 0x1234_5678, roc: 0)]))
        XCTAssertEqual(v, Fixtures.example93)
        XCTAssertFalse(String(describing: msk).contains("c0c1"))
    }

    func testMTKMessageAcceptedStreaming() throws {
        var ue = try ueWithMSK()
        guard case .success(.mtk(let mtk)) = ue.process(Fixtures.example92) else { return XCTFail("rejected") }
        XCTAssertEqual(mtk.kind, .streaming)
        XCTAssertEqual(mtk.key.revealedBytes(), Fixtures.mtk.revealedBytes())
        XCTAssertEqual(mtk.salt?.revealedBytes(), Fixtures.salt.revealedBytes())
        XCTAssertEqual(mtk.mki, hex("000100020005"))
        XCTAssertEqual(mtk.mtkID, MTKID(5))
    }

    func testDownloadMTKGivesTheDCFKeysOfExample94() throws {
        var ue = try ueWithMSK()
        let tgk = SecretBytes(hex("d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"))
        let bytes = try Fixtures.mtkBuilder(content: .download(mtk: tgk)).build()
        guard case .success(.mtk(let mtk)) = ue.process(bytes) else { return XCTFail("rejected") }
        XCTAssertEqual(mtk.kind, .download)
        XCTAssertNil(mtk.salt)
        let keys = try mtk.downloadKeys()
        XCTAssertEqual(keys.encryptionKey.revealedBytes(), hex("fe7e3c5ac246e3848c5f655fc0369db5"))
        XCTAssertEqual(keys.authenticationKey.revealedBytes(), hex("8fd8308cb9ebfb0526c9ab9b0b9d25e5bd4a78e3"))
    }

    func testSolicitedPullAccepted() throws {
        var ue = freshUE()
        let pull = try Fixtures.mskBuilder(verification: true, content: .solicitedPull, mskID: MSKID(keyGroup: 1, keyNumber: 0)).build()
        let message = try MIKEYDecoder.decode(pull)
        XCTAssertFalse(message.header.verificationRequested, "V is always clear in a solicited pull (6.3.2.2.4)")
        XCTAssertEqual(message.kemac?.encryptedData, [])
        XCTAssertTrue(message.securityPolicies.isEmpty)
        guard case .success(.solicitedPull(let group)) = ue.process(pull) else { return XCTFail("rejected") }
        XCTAssertEqual(group, KeyGroupReference(keyDomainID: Fixtures.keyDomain, keyGroup: 1))
    }

    func testDownloadMSKAcceptedWithoutPolicy() throws {
        var ue = freshUE()
        let bytes = try Fixtures.mskBuilder(verification: false, service: .download).build()
        let message = try MIKEYDecoder.decode(bytes)
        XCTAssertEqual(message.header.csIDMap, .empty)
        XCTAssertTrue(message.securityPolicies.isEmpty)
        guard case .success(.msk(let msk, nil)) = ue.process(bytes) else { return XCTFail("rejected") }
        XCTAssertNil(msk.srtpPolicy)
    }

    func testInvalidationDeletesTheMSK() throws {
        var ue = try ueWithMSK()
        let inval = try Fixtures.mskBuilder(verification: false, content: .invalidation(msk: Fixtures.msk, seqL: 0xFFFF, seqU: 0), ts: 43).build()
        guard case .success(.mskInvalidated(Fixtures.keyDomain, Fixtures.mskID, nil)) = ue.process(inval) else { return XCTFail("rejected") }
        XCTAssertNil(ue.msk(Fixtures.keyDomain, Fixtures.mskID))
        XCTAssertEqual(ue.process(Fixtures.example92).failure, .unknownMSK(Fixtures.keyDomain, Fixtures.mskID))
    }

    func testAtMostTwoMSKsPerKeyGroupNewestKept() throws {
        var ue = freshUE()
        for (n, ts) in [(2, 10), (3, 11), (4, 12)] as [(UInt16, UInt32)] {
            let b = try Fixtures.mskBuilder(verification: false, ts: ts, mskID: MSKID(keyGroup: 1, keyNumber: n)).build()
            guard case .success(.msk) = ue.process(b) else { return XCTFail("MSK \(n) rejected") }
        }
        let group = KeyGroupReference(keyDomainID: Fixtures.keyDomain, keyGroup: 1)
        XCTAssertEqual(ue.mskIDs(in: group), [MSKID(keyGroup: 1, keyNumber: 3), MSKID(keyGroup: 1, keyNumber: 4)])
        // A new MUK: TS counting restarts, and its MSK is newer than both stored ones (6.5.3).
        let newMUK = SecretBytes([UInt8](repeating: 0x77, count: 32))
        ue.replaceMUK(newMUK)
        let b = try Fixtures.mskBuilder(verification: false, ts: 1, mskID: MSKID(keyGroup: 1, keyNumber: 9), muk: newMUK).build()
        guard case .success(.msk) = ue.process(b) else { return XCTFail("MSK under new MUK rejected") }
        XCTAssertEqual(ue.mskIDs(in: group), [MSKID(keyGroup: 1, keyNumber: 4), MSKID(keyGroup: 1, keyNumber: 9)])
    }

    func testAtMostTwoMTKsPerSessionAndTimestampWrap() throws {
        var ue = try ueWithMSK()
        for (id, ts) in [(5, 0xFFFF_FFF0), (6, 0xFFFF_FFFF), (7, 5)] as [(UInt16, UInt32)] {
            guard case .success(.mtk) = ue.process(try Fixtures.mtkBuilder(mtkID: id, ts: ts).build()) else { return XCTFail("MTK \(id) rejected") }
        }
        let held = ue.mtks(in: KeyGroupReference(keyDomainID: Fixtures.keyDomain, keyGroup: 1))
        XCTAssertEqual(held.map(\.mtkID), [MTKID(6), MTKID(7)])
    }

    func testMTKTimestampCounterIsPerMSK() throws {
        // Two MSKs of one key group, each with its own MTK TS counter (6.4.3).
        var ue = freshUE()
        let msk2 = SecretBytes(hex("1112131415161718191a1b1c1d1e1f10"))
        let id2 = MSKID(keyGroup: 1, keyNumber: 3)
        guard case .success = ue.process(try Fixtures.mskBuilder(verification: false, ts: 1).build()),
              case .success = ue.process(try Fixtures.mskBuilder(verification: false, content: .key(msk: msk2, seqL: 0, seqU: 100), ts: 2, mskID: id2).build())
        else { return XCTFail("MSKs rejected") }
        guard case .success = ue.process(try Fixtures.mtkBuilder(mtkID: 5, ts: 1000).build()) else { return XCTFail("MTK under MSK 1") }
        // A lower TS under the other MSK is fine: its counter is separate.
        guard case .success(.mtk(let m)) = ue.process(try Fixtures.mtkBuilder(mtkID: 1, ts: 3, msk: msk2, mskID: id2).build()) else {
            return XCTFail("MTK under MSK 2 rejected")
        }
        XCTAssertEqual(m.mki, hex("000100030001"))
        XCTAssertEqual(ue.process(try Fixtures.mtkBuilder(mtkID: 6, ts: 999).build()).failure, .replayedMTKTimestamp(stored: 1000, received: 999))
    }

    func testBuilderOutputAcceptedOnlyWithTheRightKeys() throws {
        let msk = try Fixtures.mskBuilder(verification: false).build()
        var wrongMUK = UEKeyProcessor(muk: SecretBytes([UInt8](repeating: 1, count: 32)), nafID: Fixtures.nafID, bTID: Fixtures.bTID)
        XCTAssertEqual(wrongMUK.process(msk).failure, .macMismatch)
        var right = freshUE()
        guard case .success = right.process(msk) else { return XCTFail("right MUK rejected") }
        // MTK protected with another MSK under the same MSK ID: rejected by the UE holding the real MSK.
        let otherMSK = SecretBytes(hex("00112233445566778899aabbccddeeff"))
        XCTAssertEqual(right.process(try Fixtures.mtkBuilder(msk: otherMSK).build()).failure, .macMismatch)
        guard case .success(.mtk) = right.process(try Fixtures.mtkBuilder().build()) else { return XCTFail("right MSK rejected") }
    }

    // MARK: one test per rejection

    func testRejectMalformed() throws {
        var ue = freshUE()
        guard case .malformed(.truncated(.kemac, _, _, _))? = ue.process(Array(Fixtures.example91.dropLast(3))).failure else { return XCTFail() }
    }

    func testRejectNotMBMSMessage() throws {
        let ue = try ueWithMSK()
        func reason(_ b: [UInt8]) -> String? {
            var probe = ue
            guard case .notMBMSMessage(let r)? = probe.process(b).failure else { return nil }
            return r
        }
        // A verification message is not an MSK/MTK message.
        XCTAssertNotNil(reason(Fixtures.example93))
        // V set in an MTK message.
        var m = Fixtures.example92
        m[3] |= 0x80
        XCTAssertEqual(reason(m)?.contains("6.4.5.3"), true)
        // Key Group 0.
        m = try Fixtures.mtkBuilder().build()
        m[23] = 0; m[24] = 0
        XCTAssertEqual(reason(m)?.contains("Key Group 0"), true)
        // NTP timestamp instead of COUNTER.
        var msg = try MIKEYDecoder.decode(Fixtures.example92)
        msg.payloads[1] = .timestamp(.ntpUTC(7))
        XCTAssertEqual(reason(msg.encode())?.contains("COUNTER"), true)
        // MSK message without RAND.
        msg = try MIKEYDecoder.decode(Fixtures.example91)
        msg.payloads.remove(at: 2)
        XCTAssertEqual(reason(msg.encode())?.contains("RAND"), true)
        // MTK message carrying a RAND.
        msg = try MIKEYDecoder.decode(Fixtures.example92)
        msg.payloads.insert(.rand(RANDPayload(Fixtures.rand)), at: 2)
        XCTAssertNotNil(reason(msg.encode()))
        // AES-KW-128 instead of AES-CM-128.
        m = Fixtures.example92
        m[39] = 2
        XCTAssertEqual(reason(m)?.contains("AES-CM-128"), true)
        // SRTP-ID map entry naming a policy number the SP does not have (sealed properly).
        let mapHeader = MIKEYHeader(dataType: .preShared, verificationRequested: false, csbID: Fixtures.csbMSK,
                                    csIDMap: .srtpID([SRTPCryptoSession(policyNumber: 7, ssrc: 1, roc: 0)]))
        let withSP = mskPayloads(ts: 49) + [.securityPolicy(SecurityPolicyPayload(policyNumber: 0, srtp: Fixtures.policy))]
        let mskPlain = KeyDataPayload.encodeList([KeyDataPayload(type: .tek, key: Fixtures.msk, validity: .interval(KeyValidityInterval(seqL: 0, seqU: 9)))])
        XCTAssertEqual(reason(try seal(header: mapHeader, payloads: withSP, plaintext: mskPlain, psk: Fixtures.muk, ts: 49))?.contains("Policy_no"), true)
        // Solicited pull with V set (past the MAC check: sealed properly).
        let pullHeader = MIKEYHeader(dataType: .preShared, verificationRequested: true, csbID: Fixtures.csbMSK, csIDMap: .empty)
        let pull = try seal(header: pullHeader, payloads: mskPayloads(mskID: MSKID(keyGroup: 1, keyNumber: 0), ts: 50), plaintext: [], psk: Fixtures.muk, ts: 50)
        XCTAssertEqual(reason(pull)?.contains("6.3.2.2.4"), true)
    }

    func testRejectNullAlgorithms() throws {
        var ue = try ueWithMSK()
        var m = Fixtures.example92
        m[39] = 0
        var probe = ue
        XCTAssertEqual(probe.process(m).failure, .nullAlgorithm(field: "KEMAC Encr alg"))
        // Mac alg NULL: no MAC octets follow.
        m = Array(Fixtures.example92.dropLast(20))
        m[m.count - 1] = 0
        XCTAssertEqual(ue.process(m).failure, .nullAlgorithm(field: "KEMAC Mac alg"))
    }

    func testRejectUnknownMUK() throws {
        var ue = UEKeyProcessor(muk: Fixtures.muk, nafID: Fixtures.nafID, bTID: "other@bsf.example.org")
        XCTAssertEqual(ue.process(Fixtures.example91).failure, .unknownMUK)
    }

    func testRejectUnknownMSK() throws {
        var ue = freshUE()
        XCTAssertEqual(ue.process(Fixtures.example92).failure, .unknownMSK(Fixtures.keyDomain, Fixtures.mskID))
    }

    func testRejectMACMismatch() throws {
        var ue = freshUE()
        var m = Fixtures.example91
        m[m.count - 1] ^= 1
        XCTAssertEqual(ue.process(m).failure, .macMismatch)
        // A flipped bit in a covered field (SSRC) is caught by the MAC too.
        m = Fixtures.example91
        m[12] ^= 0x40
        XCTAssertEqual(ue.process(m).failure, .macMismatch)
        // Nothing was stored by the rejected messages.
        XCTAssertNil(ue.msk(Fixtures.keyDomain, Fixtures.mskID))
        // MAC first: a replayed message with a broken MAC reports the MAC, not the replay, and a
        // forged higher-TS message does not advance the TS counter.
        guard case .success = ue.process(Fixtures.example91) else { return XCTFail() }
        m = Fixtures.example91
        m[m.count - 5] ^= 0x10
        XCTAssertEqual(ue.process(m).failure, .macMismatch)
        var forged = try Fixtures.mskBuilder(ts: 1000).build()
        forged[forged.count - 1] ^= 1
        XCTAssertEqual(ue.process(forged).failure, .macMismatch)
        guard case .success = ue.process(try Fixtures.mskBuilder(ts: 43).build()) else { return XCTFail("TS counter moved by a forged message") }
    }

    func testRejectReplayedMSKTimestamp() throws {
        var ue = freshUE()
        guard case .success = ue.process(Fixtures.example91) else { return XCTFail() }
        XCTAssertEqual(ue.process(Fixtures.example91).failure, .replayedMSKTimestamp(stored: 42, received: 42))
        XCTAssertEqual(ue.process(try Fixtures.mskBuilder(ts: 41).build()).failure, .replayedMSKTimestamp(stored: 42, received: 41))
        // Undefined order (distance 2^31) is discarded as well (mikey.md 8).
        XCTAssertEqual(ue.process(try Fixtures.mskBuilder(ts: 42 + 0x8000_0000).build()).failure,
                       .replayedMSKTimestamp(stored: 42, received: 42 + 0x8000_0000))
        guard case .success = ue.process(try Fixtures.mskBuilder(ts: 43).build()) else { return XCTFail("higher TS rejected") }
    }

    func testRejectReplayedMTKTimestamp() throws {
        var ue = try ueWithMSK()
        guard case .success = ue.process(try Fixtures.mtkBuilder(mtkID: 5, ts: 7).build()) else { return XCTFail() }
        XCTAssertEqual(ue.process(try Fixtures.mtkBuilder(mtkID: 6, ts: 7).build()).failure, .replayedMTKTimestamp(stored: 7, received: 7))
    }

    func testRejectMTKIDNotIncreasing() throws {
        var ue = try ueWithMSK()
        guard case .success = ue.process(try Fixtures.mtkBuilder(mtkID: 5, ts: 7).build()) else { return XCTFail() }
        XCTAssertEqual(ue.process(try Fixtures.mtkBuilder(mtkID: 5, ts: 8).build()).failure, .mtkIDNotIncreasing(current: MTKID(5), received: MTKID(5)))
        XCTAssertEqual(ue.process(try Fixtures.mtkBuilder(mtkID: 4, ts: 9).build()).failure, .mtkIDNotIncreasing(current: MTKID(5), received: MTKID(4)))
    }

    func testRejectMTKIDOutsideKeyValidity() throws {
        var ue = try ueWithMSK(seqL: 10, seqU: 20)
        XCTAssertEqual(ue.process(try Fixtures.mtkBuilder(mtkID: 10, ts: 7).build()).failure,
                       .mtkIDOutsideKeyValidity(seqL: 10, seqU: 20, received: MTKID(10)))
        XCTAssertEqual(ue.process(try Fixtures.mtkBuilder(mtkID: 21, ts: 8).build()).failure,
                       .mtkIDOutsideKeyValidity(seqL: 10, seqU: 20, received: MTKID(21)))
        guard case .success = ue.process(try Fixtures.mtkBuilder(mtkID: 20, ts: 9).build()) else { return XCTFail("SEQu itself rejected") }
    }

    func testRejectInvalidKeyData() throws {
        let ue = try ueWithMSK()
        func rejection(_ b: [UInt8]) -> UEKeyRejection? { var p = ue; return p.process(b).failure }
        let kd = { (t: KeyDataType, salt: SecretBytes?, v: KeyValidity) in
            KeyDataPayload.encodeList([KeyDataPayload(type: t, key: Fixtures.mtk, salt: salt, validity: v)])
        }
        // MTK message: salt of 12 octets, KV Interval, TEK without salt, two keys.
        let shortSalt = SecretBytes([UInt8](repeating: 9, count: 12))
        for (name, plain) in [("short salt", kd(.tekSalt, shortSalt, .null)),
                              ("KV interval", kd(.tekSalt, Fixtures.salt, .interval(KeyValidityInterval(seqL: 0, seqU: 9)))),
                              ("TEK", kd(.tek, nil, .null)),
                              ("two keys", KeyDataPayload.encodeList([KeyDataPayload(type: .tgk, key: Fixtures.mtk, validity: .null),
                                                                      KeyDataPayload(type: .tgk, key: Fixtures.mtk, validity: .null)]))] {
            let b = try seal(header: mtkHeader, payloads: mtkPayloads(), plaintext: plain, psk: Fixtures.msk, ts: 7)
            guard case .invalidKeyData? = rejection(b) else { return XCTFail(name) }
        }
        // MSK message carrying TEK+SALT with KV Null.
        let b = try seal(header: mskHeader, payloads: mskPayloads(ts: 50), plaintext: kd(.tekSalt, Fixtures.salt, .null), psk: Fixtures.muk, ts: 50)
        guard case .invalidKeyData? = rejection(b) else { return XCTFail("MSK as TEK+SALT") }
        // Solicited pull that carries a key.
        let pull = try seal(header: mskHeader, payloads: mskPayloads(mskID: MSKID(keyGroup: 1, keyNumber: 0), ts: 51),
                            plaintext: kd(.tek, nil, .interval(KeyValidityInterval(seqL: 0, seqU: 9))), psk: Fixtures.muk, ts: 51)
        guard case .invalidKeyData? = rejection(pull) else { return XCTFail("pull with key") }
        // An MSK message with an empty KEMAC but Key Number != 0.
        let empty = try seal(header: mskHeader, payloads: mskPayloads(ts: 52), plaintext: [], psk: Fixtures.muk, ts: 52)
        guard case .invalidKeyData? = rejection(empty) else { return XCTFail("empty KEMAC") }
    }

    func testRejectMalformedKeyDataAndPolicyBehindAValidMAC() throws {
        let ue = try ueWithMSK()
        var p = ue
        let garbage = try seal(header: mtkHeader, payloads: mtkPayloads(), plaintext: hex("0030ffff00"), psk: Fixtures.msk, ts: 7)
        guard case .malformed(.lengthMismatch(.keyData, 44, "Key data len", 0xFFFF, 1, _))? = p.process(garbage).failure else { return XCTFail() }
        // SP whose parameters are well-formed TLVs but not a valid SRTP policy (auth alg 9).
        var payloads = mskPayloads(ts: 60)
        payloads.append(.securityPolicy(SecurityPolicyPayload(policyNumber: 0, parameters: [PolicyParameter(type: 2, value: [9])])))
        let plain = KeyDataPayload.encodeList([KeyDataPayload(type: .tek, key: Fixtures.msk, validity: .interval(KeyValidityInterval(seqL: 0, seqU: 9)))])
        let b = try seal(header: mskHeader, payloads: payloads, plaintext: plain, psk: Fixtures.muk, ts: 60)
        p = ue
        // Layout: HDR 0-9, EXT 10-26, T 27-32, RAND 33-50, IDi 51-70, IDr 71-94, SP 95 (params from 100).
        guard case .malformed(.invalidValue(.securityPolicy, 100, _, 9, _))? = p.process(b).failure else { return XCTFail("\(String(describing: p.process(b).failure))") }
        XCTAssertEqual(try MIKEYDecoder.decode(b).payloadOffsets, [10, 27, 33, 51, 71, 95, 103])
    }

    // MARK: BM-SC side verification of the UE's verification message (6.4.5.2)

    func testVerificationMessageChecks() throws {
        let keys = try MIKEYKeyDerivation.pskKeys(psk: Fixtures.muk, csbID: Fixtures.csbMSK, rand: Fixtures.rand)
        let idi = Array(Fixtures.nafID.utf8), idr = Array(Fixtures.bTID.utf8)
        func verify(_ b: [UInt8], muk: SecretBytes = Fixtures.muk, csb: CSBID = Fixtures.csbMSK, ts: UInt32 = 42,
                    accepted: [MSKVerificationMessage.MACConstruction] = MSKVerificationMessage.MACConstruction.allCases)
            -> Result<MSKVerificationMessage.MACConstruction, MSKVerificationMessage.Rejection> {
            MSKVerificationMessage.verify(b, muk: muk, mskRAND: Fixtures.rand, nafID: idi, bTID: idr, expectedCSBID: csb,
                                          expectedTimestamp: ts, accepted: accepted)
        }
        // Other MAC constructions (M-1) are accepted and reported.
        for c in MSKVerificationMessage.MACConstruction.allCases {
            let b = try MSKVerificationMessage.build(csbID: Fixtures.csbMSK, timestamp: 42, nafID: idi, bTID: idr,
                                                     authenticationKey: keys.authenticationKey, construction: c)
            XCTAssertEqual(verify(b), .success(c))
        }
        let plain = try MSKVerificationMessage.build(csbID: Fixtures.csbMSK, timestamp: 42, nafID: idi, bTID: idr,
                                                     authenticationKey: keys.authenticationKey, construction: .timestamp64)
        XCTAssertEqual(verify(plain, accepted: [.identitiesAndTimestamp64]), .failure(.macMismatch))
        XCTAssertEqual(verify(Fixtures.example93, muk: SecretBytes([UInt8](repeating: 3, count: 32))), .failure(.macMismatch))
        XCTAssertEqual(verify(Fixtures.example93, csb: CSBID(1)), .failure(.csbIDMismatch(expected: CSBID(1), received: Fixtures.csbMSK)))
        XCTAssertEqual(verify(Fixtures.example93, ts: 43), .failure(.timestampMismatch(expected: 43, received: 42)))
        var wrongID = Fixtures.example93
        wrongID[20] ^= 0x20
        XCTAssertEqual(verify(wrongID), .failure(.identityMismatch))
        guard case .failure(.notAVerificationMessage) = verify(Fixtures.example92) else { return XCTFail() }
        guard case .failure(.malformed) = verify(Array(Fixtures.example93.dropLast())) else { return XCTFail() }
        var nullV = Array(Fixtures.example93.dropLast(20))
        nullV[nullV.count - 1] = 0
        XCTAssertEqual(verify(nullV), .failure(.nullAlgorithm))
    }

    // MARK: builder input validation

    func testBuildersRejectInvalidInputs() {
        XCTAssertThrowsError(try Fixtures.mskBuilder(mskID: MSKID(keyGroup: 0, keyNumber: 1)).build())
        XCTAssertThrowsError(try Fixtures.mskBuilder(mskID: MSKID(keyGroup: 1, keyNumber: 0)).build())
        XCTAssertThrowsError(try Fixtures.mskBuilder(content: .key(msk: Fixtures.msk, seqL: 5, seqU: 4)).build())
        XCTAssertThrowsError(try Fixtures.mskBuilder(content: .invalidation(msk: Fixtures.msk, seqL: 4, seqU: 5)).build())
        XCTAssertThrowsError(try Fixtures.mskBuilder(service: .streaming(policy: SRTPPolicyParameters(), policyNumber: 0, ssrc: 1, roc: 0)).build(),
                             "R must be signalled (6.6.2.1)")
        var emptyID = Fixtures.mskBuilder()
        emptyID.bTID = ""
        XCTAssertThrowsError(try emptyID.build())
        XCTAssertThrowsError(try Fixtures.mtkBuilder(mtkID: 0).build())
        XCTAssertThrowsError(try Fixtures.mtkBuilder(mtkID: 0xFFFF).build())
        XCTAssertThrowsError(try Fixtures.mtkBuilder(content: .streaming(mtk: Fixtures.mtk, salt: SecretBytes([1, 2]))).build())
        XCTAssertThrowsError(try Fixtures.mtkBuilder(content: .streaming(mtk: SecretBytes([1]), salt: Fixtures.salt)).build())
    }
}
