import CryptoCore
import XCTest
@testable import MIKEY

/// Round trips of every message kind and the decoder's typed errors.
final class CodecTests: XCTestCase {
    let hex = Fixtures.hex

    /// Every message kind the builders make: decode then re-encode gives the same bytes.
    func allMessageKinds() throws -> [(String, [UInt8])] {
        let keys = try MIKEYKeyDerivation.pskKeys(psk: Fixtures.muk, csbID: Fixtures.csbMSK, rand: Fixtures.rand)
        return [
            ("MSK streaming V=1", try Fixtures.mskBuilder().build()),
            ("MSK streaming V=0", try Fixtures.mskBuilder(verification: false).build()),
            ("MSK download", try Fixtures.mskBuilder(service: .download).build()),
            ("MSK solicited pull", try Fixtures.mskBuilder(content: .solicitedPull, mskID: MSKID(keyGroup: 1, keyNumber: 0)).build()),
            ("MSK invalidation", try Fixtures.mskBuilder(content: .invalidation(msk: Fixtures.msk, seqL: 0xFFFF, seqU: 0)).build()),
            ("MTK streaming", try Fixtures.mtkBuilder().build()),
            ("MTK download", try Fixtures.mtkBuilder(content: .download(mtk: Fixtures.mtk)).build()),
            ("MSK verification", try MSKVerificationMessage.build(csbID: Fixtures.csbMSK, timestamp: 42, nafID: Array(Fixtures.nafID.utf8),
                                                                  bTID: Array(Fixtures.bTID.utf8), authenticationKey: keys.authenticationKey)),
        ]
    }

    func testRoundTripOfEveryMessageKind() throws {
        for (name, bytes) in try allMessageKinds() {
            let message = try MIKEYDecoder.decode(bytes)
            XCTAssertEqual(message.encode(), bytes, name)
            XCTAssertEqual(try MIKEYDecoder.decode(message.encode()), message, name)
        }
    }

    func testDecodedStructureOfExampleMessages() throws {
        let msk = try MIKEYDecoder.decode(Fixtures.example91)
        XCTAssertEqual(msk.header, MIKEYHeader(dataType: .preShared, verificationRequested: true, csbID: Fixtures.csbMSK,
                                               csIDMap: .srtpID([SRTPCryptoSession(policyNumber: 0, ssrc: 0x1234_5678, roc: 0)])))
        XCTAssertEqual(msk.payloads.map(\.payloadType), [21, 5, 11, 6, 6, 10, 1])
        XCTAssertEqual(msk.keyIDInformation, KeyIDInformation(keyDomainID: Fixtures.keyDomain, mskID: Fixtures.mskID))
        XCTAssertEqual(msk.timestamp, .counter(42))
        XCTAssertEqual(msk.rand, Fixtures.rand)
        XCTAssertEqual(msk.identities.map { String(decoding: $0.data, as: UTF8.self) }, [Fixtures.nafID, Fixtures.bTID])
        XCTAssertEqual(try msk.securityPolicies.first?.srtpPolicy(), Fixtures.policy)
        XCTAssertEqual(msk.kemac?.encryptionAlgorithm, .aesCM128)
        XCTAssertEqual(msk.kemac?.macAlgorithm, .hmacSHA1_160)
        XCTAssertEqual(msk.kemacEncryptedDataOffset, 212 - 21 - 26)
        XCTAssertEqual(msk.payloadOffsets, [19, 36, 42, 60, 80, 104, 161])

        let mtk = try MIKEYDecoder.decode(Fixtures.example92)
        XCTAssertEqual(mtk.header.csIDMap, .empty)
        XCTAssertFalse(mtk.header.verificationRequested)
        XCTAssertEqual(mtk.payloads.map(\.payloadType), [21, 5, 1])
        XCTAssertEqual(mtk.keyIDInformation?.mtkID, MTKID(5))

        let ver = try MIKEYDecoder.decode(Fixtures.example93)
        XCTAssertEqual(ver.header.dataType, .preSharedVerification)
        XCTAssertEqual(ver.payloads.map(\.payloadType), [5, 6, 9])
        XCTAssertEqual(ver.verification?.verificationData, hex("a0a27b4b3ccbf8553988161f0081a2e9246d85ea"))
    }

    func testKeyDataSubPayloadRoundTrip() throws {
        // mikey.md 4.8 byte examples.
        let mskPlain = hex("00220010c0c1c2c3c4c5c6c7c8c9cacbcccdcecf0200000" + "2fffe")
        let list = try KeyDataPayload.decodeList(mskPlain, base: 0)
        XCTAssertEqual(list, [KeyDataPayload(type: .tek, key: Fixtures.msk, validity: .interval(KeyValidityInterval(seqL: 0, seqU: 0xFFFE)))])
        XCTAssertEqual(KeyDataPayload.encodeList(list), mskPlain)
        let mtkPlain = hex("00300010a0a1a2a3a4a5a6a7a8a9aaabacadaeaf000eb0b1b2b3b4b5b6b7b8b9babbbcbd")
        let mtkList = try KeyDataPayload.decodeList(mtkPlain, base: 0)
        XCTAssertEqual(mtkList, [KeyDataPayload(type: .tekSalt, key: Fixtures.mtk, salt: Fixtures.salt, validity: .null)])
        XCTAssertEqual(KeyDataPayload.encodeList(mtkList), mtkPlain)
        // SEQl/SEQu of 1 and 4 octets are accepted (M-5) and read big-endian.
        let wide = try KeyDataPayload.decodeList(hex("00220001aa" + "0105" + "0400000102"), base: 0)
        guard case .interval(let i)? = wide.first?.validity else { return XCTFail("no interval") }
        XCTAssertEqual(i.seqL, 5)
        XCTAssertEqual(i.seqU, 0x102)
        // The description never shows key bytes.
        XCTAssertFalse(String(describing: mtkList[0]).contains("a0a1"))
        XCTAssertFalse(String(describing: mtkList[0]).lowercased().contains("160"))
    }

    func testSRTPPolicyParametersRoundTripAndRejections() throws {
        var all = SRTPPolicyParameters.mbmsRecommended(rocTransmissionRate: 0x1234, authentication: .rccm3, srtcpEncryption: true)
        all.srtpPrefixLength = 0
        all.srtpSessionAuthenticationKeyLength = 20
        all.srtcpSessionAuthenticationKeyLength = 20
        all.keyDerivationRate = 0x10000
        let params = all.encodedParameters()
        XCTAssertEqual(params.map(\.type), Array(0...19))
        XCTAssertEqual(params.first { $0.type == 6 }?.value, [1, 0, 0])
        XCTAssertEqual(params.first { $0.type == 13 }?.value, [0x12, 0x34])
        XCTAssertEqual(try SRTPPolicyParameters(parameters: params), all)
        XCTAssertEqual(all.effectiveSRTPAuthenticationAlgorithm, .rccm3)
        XCTAssertEqual(all.effectiveSRTCPAuthenticationAlgorithm, .hmacSHA1)
        // R of 1 and 4 octets accepted (rfc4771.md R-3), 0 rejected, default 1 when absent.
        XCTAssertEqual(try SRTPPolicyParameters(parameters: [PolicyParameter(type: 13, value: [7])]).rocTransmissionRate, 7)
        XCTAssertEqual(try SRTPPolicyParameters(parameters: [PolicyParameter(type: 13, value: [0, 0, 0, 9])]).rocTransmissionRate, 9)
        XCTAssertThrowsError(try SRTPPolicyParameters(parameters: [PolicyParameter(type: 13, value: [0, 0])]))
        XCTAssertEqual(try SRTPPolicyParameters(parameters: []).effectiveROCTransmissionRate, 1)
        // Unknown code points, repeated types and wrong widths are rejected.
        XCTAssertThrowsError(try SRTPPolicyParameters(parameters: [PolicyParameter(type: 2, value: [5])]))
        XCTAssertThrowsError(try SRTPPolicyParameters(parameters: [PolicyParameter(type: 0, value: [1]), PolicyParameter(type: 0, value: [1])]))
        XCTAssertThrowsError(try SRTPPolicyParameters(parameters: [PolicyParameter(type: 7, value: [2])]))
        XCTAssertThrowsError(try SRTPPolicyParameters(parameters: [PolicyParameter(type: 1, value: [0, 16])]))
        XCTAssertThrowsError(try SRTPPolicyParameters(parameters: [PolicyParameter(type: 20, value: [16])]))
    }

    func testSerialNumberComparisonRFC1982() {
        // mikey.md section 8 examples.
        XCTAssertTrue(SerialNumber.isLess(0xFFFF_FFF0, 0x0000_0005))
        XCTAssertFalse(SerialNumber.isLess(5, 0x8000_0005))
        XCTAssertFalse(SerialNumber.isLess(0x8000_0005, 5))
        XCTAssertFalse(SerialNumber.isLess(0x10, 0x0F))
        XCTAssertTrue(SerialNumber.isLess(0x0F, 0x10))
        XCTAssertFalse(SerialNumber.isLess(7, 7))
    }

    /// An unknown EXT is kept as opaque bytes, re-encoded exactly and covered by the MAC (6.5.3).
    func testUnknownExtensionIsKeptAndCoveredByMAC() throws {
        var message = try MIKEYDecoder.decode(Fixtures.example92)
        message.payloads.insert(.generalExtension(.opaque(type: 0, data: [0xDE, 0xAD, 0xBE])), at: 1)
        var bytes = message.encode()
        XCTAssertEqual(try MIKEYDecoder.decode(bytes), message)
        var ue = UEKeyProcessor(muk: Fixtures.muk, nafID: Fixtures.nafID, bTID: Fixtures.bTID)
        guard case .success = ue.process(Fixtures.example91) else { return XCTFail("MSK rejected") }
        // The old MAC no longer matches: the extension is covered.
        var probe = ue
        XCTAssertEqual(probe.process(bytes).failure, .macMismatch)
        // Recompute the MAC over the whole message (test-side, from the 4.1.4 auth key).
        let keys = try MIKEYKeyDerivation.pskKeys(psk: Fixtures.msk, csbID: Fixtures.csbMTK, rand: Fixtures.rand)
        let mac = try KEMACCrypto.mac(authenticationKey: keys.authenticationKey, Array(bytes.dropLast(20)))
        bytes.replaceSubrange((bytes.count - 20)..., with: mac)
        guard case .success(.mtk(let mtk)) = ue.process(bytes) else { return XCTFail("MTK with unknown EXT rejected") }
        XCTAssertEqual(mtk.key.revealedBytes(), Fixtures.mtk.revealedBytes())
    }

    // MARK: typed decoder errors (payload, offset, rule)

    func decodeError(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> MIKEYError? {
        do {
            _ = try MIKEYDecoder.decode(bytes)
            XCTFail("decoded", file: file, line: line)
            return nil
        } catch { return error }
    }

    func testHeaderErrors() {
        XCTAssertEqual(decodeError([]), .truncated(payload: .header, offset: 0, needed: 10, available: 0))
        var m = Fixtures.example92
        m[0] = 2
        guard case .invalidValue(.header, 0, "version", 2, _)? = decodeError(m) else { return XCTFail() }
        m = Fixtures.example92; m[1] = 7
        guard case .invalidValue(.header, 1, "data type", 7, _)? = decodeError(m) else { return XCTFail() }
        m = Fixtures.example92; m[3] = 0x01
        guard case .invalidValue(.header, 3, "PRF func", 1, _)? = decodeError(m) else { return XCTFail() }
        m = Fixtures.example92; m[8] = 1
        guard case .invalidValue(.header, 8, "#CS", 1, _)? = decodeError(m) else { return XCTFail() }
        m = Fixtures.example92; m[9] = 2
        guard case .invalidValue(.header, 9, "CS ID map type", 2, _)? = decodeError(m) else { return XCTFail() }
        // SRTP-ID map with #CS = 2 but one entry's worth of octets before the payloads run out.
        m = Array(Fixtures.example91[0..<15])
        m[8] = 2
        XCTAssertEqual(decodeError(m), .truncated(payload: .csIDMap, offset: 10, needed: 18, available: 5))
    }

    func testPayloadChainErrors() {
        // HDR names an ERR payload (12): not carried.
        var m = Fixtures.example92
        m[2] = 12
        XCTAssertEqual(decodeError(m), .unsupportedPayloadType(offset: 10, type: 12))
        // EXT Length larger than what follows.
        m = Fixtures.example92
        m[12] = 0xFF; m[13] = 0xFF
        guard case .lengthMismatch(.generalExtension, 12, "Length", 65535, _, _)? = decodeError(m) else { return XCTFail() }
        // T with TS type 4.
        m = Fixtures.example92
        m[33] = 4
        guard case .invalidValue(.timestamp, 33, "TS type", 4, _)? = decodeError(m) else { return XCTFail() }
        // KEMAC not last: its next payload names T.
        m = Fixtures.example92
        m[38] = 5
        guard case .misplacedPayload(.kemac, 38, _)? = decodeError(m) else { return XCTFail() }
        // KEMAC Encr data len beyond the message.
        m = Fixtures.example92
        m[40] = 0x01
        guard case .lengthMismatch(.kemac, 40, "Encr data len", _, _, _)? = decodeError(m) else { return XCTFail() }
        // Unknown Mac alg.
        m = Fixtures.example92
        m[78] = 2
        guard case .invalidValue(.kemac, 78, "Mac alg", 2, _)? = decodeError(m) else { return XCTFail() }
        // Octets after the last payload.
        XCTAssertEqual(decodeError(Fixtures.example92 + [0]), .trailingData(payload: .message, offset: 99, count: 1))
        // Truncated MAC.
        XCTAssertEqual(decodeError(Array(Fixtures.example92.dropLast())), .truncated(payload: .kemac, offset: 79, needed: 20, available: 19))
        // A second T (EXT.next = T, T.next = T).
        m = Fixtures.example92
        m[32] = 5
        guard case .misplacedPayload(.timestamp, 38, _)? = decodeError(m) else { return XCTFail() }
    }

    func testKeyIDErrors() {
        // Key ID entries with 8-bit lengths (the other reading of M-3) do not add up: rejected.
        let eightBit = hex("01001500112233440001" + "0503000f" + "0003" + "00f110" + "0104" + "00010002" + "0202" + "0005" + "01020000000700010000" + "01" + String(repeating: "00", count: 20))
        guard case .lengthMismatch(.keyIDInformation, 15, "Key ID Length", _, 3, _)? = decodeError(eightBit) else { return XCTFail("\(String(describing: decodeError(eightBit)))") }
        // Unknown Key ID Type.
        var m = Fixtures.example92
        m[27] = 9
        guard case .invalidValue(.keyIDInformation, 27, "Key ID Type", 9, _)? = decodeError(m) else { return XCTFail() }
        // MTK ID entry retyped as MSK ID: its length 2 is wrong for type 1.
        m = Fixtures.example92
        m[27] = 1
        guard case .lengthMismatch(.keyIDInformation, 28, "Key ID Length", 2, 4, _)? = decodeError(m) else { return XCTFail() }
        // A repeated Key ID Type.
        do {
            _ = try KeyIDInformation.decode(hex("00000300f110" + "00000300f110"), base: 14)
            XCTFail("duplicate Key Domain ID accepted")
        } catch {
            guard case .misplacedPayload(.keyIDInformation, 20, _) = error else { return XCTFail("\(error)") }
        }
    }

    func testOtherPayloadErrors() {
        // Example 9.1 layout: HDR 0-18, EXT 19, T 36, RAND 42, IDi 60, IDr 80, SP 104, KEMAC 161.
        // RAND len 0.
        var m = Fixtures.example91
        XCTAssertEqual(m[43], 0x10)
        m[43] = 0
        guard case .invalidValue(.rand, 43, "RAND len", 0, _)? = decodeError(m) else { return XCTFail() }
        // ID len lie.
        m = Fixtures.example91
        m[63] = 0xFF
        guard case .lengthMismatch(.identity, 62, "ID len", 0xFF, _, _)? = decodeError(m) else { return XCTFail() }
        // ID type 7.
        m = Fixtures.example91
        m[61] = 7
        guard case .invalidValue(.identity, 61, "ID Type", 7, _)? = decodeError(m) else { return XCTFail() }
        // SP: a parameter length running past Policy param length (params from 109).
        m = Fixtures.example91
        XCTAssertEqual(Array(m[104..<109]), [0x01, 0x00, 0x00, 0x00, 0x34])
        m[110] = 0x40
        guard case .lengthMismatch(.securityPolicy, 110, _, 0x40, _, _)? = decodeError(m) else { return XCTFail() }
        // SP: Policy param length beyond the message.
        m = Fixtures.example91
        m[107] = 0x10
        guard case .lengthMismatch(.securityPolicy, 107, "Policy param length", _, _, _)? = decodeError(m) else { return XCTFail() }
    }

    func testKeyDataErrors() {
        func err(_ h: String) -> MIKEYError? {
            do { _ = try KeyDataPayload.decodeList(hex(h), base: 100); XCTFail("decoded \(h)"); return nil } catch { return error }
        }
        guard case .invalidValue(.keyData, 100, "next payload", 5, _)? = err("05200001aa") else { return XCTFail() }
        guard case .invalidValue(.keyData, 101, "Type", 8, _)? = err("00800001aa") else { return XCTFail() }
        guard case .invalidValue(.keyData, 101, "KV", 3, _)? = err("00230001aa") else { return XCTFail() }
        guard case .invalidValue(.keyData, 102, "Key data len", 0, _)? = err("00200000") else { return XCTFail() }
        guard case .lengthMismatch(.keyData, 102, "Key data len", 16, 1, _)? = err("00200010aa") else { return XCTFail() }
        guard case .invalidValue(.keyData, 105, "VF length", 5, _)? = err("00220001aa050000000001020000") else { return XCTFail() }
        XCTAssertEqual(err("00200001aaff"), .trailingData(payload: .keyData, offset: 105, count: 1))
        XCTAssertEqual(err("14200001aa"), .truncated(payload: .keyData, offset: 105, needed: 1, available: 0))
    }

    func testErrorDescriptionsNameThePayloadAndOffset() {
        let e = MIKEYError.lengthMismatch(payload: .kemac, offset: 39, field: "Encr data len", declared: 292, actual: 56, rule: "RFC 3830 6.2")
        XCTAssertEqual(e.description, "KEMAC at offset 39: Encr data len declares 292 octets but 56 are present (RFC 3830 6.2)")
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let f) = self { return f }
        return nil
    }
}
