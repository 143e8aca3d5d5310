import CryptoCore
import Foundation
import XCTest
@testable import MIKEY

/// Inputs of the worked examples of `../shared/spec/mikey.md` section 9 (spec values, not ours).
enum Fixtures {
    static func hex(_ s: String) -> [UInt8] {
        do { return try Hex.decode(s) } catch { XCTFail("bad hex in test: \(s)"); return [] }
    }

    static var muk: SecretBytes { SecretBytes((0..<32).map { UInt8($0) }) }
    static let csbMSK = CSBID(0xCAFE_0001)
    static let csbMTK = CSBID(0x1122_3344)
    static let rand = hex("101112131415161718191a1b1c1d1e1f")
    static let keyDomain = KeyDomainID(bytes: [0x00, 0xF1, 0x10])!
    static let mskID = MSKID(rawValue: 0x0001_0002)
    static var msk: SecretBytes { SecretBytes(hex("c0c1c2c3c4c5c6c7c8c9cacbcccdcecf")) }
    static var mtk: SecretBytes { SecretBytes(hex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")) }
    static var salt: SecretBytes { SecretBytes(hex("b0b1b2b3b4b5b6b7b8b9babbbcbd")) }
    static let nafID = "bmsc.example.org"
    static let bTID = "btid@bsf.example.org"

    /// rfc4771.md section 6 recommended set with SRTCP encryption off, as in mikey.md 9.1.
    static var policy: SRTPPolicyParameters { .mbmsRecommended(rocTransmissionRate: 64, authentication: .rccm2, srtcpEncryption: false) }

    static func mskBuilder(verification: Bool = true, content: MSKDeliveryBuilder.Content? = nil, ts: UInt32 = 42,
                           service: MSKDeliveryBuilder.Service? = nil, mskID: MSKID = Fixtures.mskID, muk: SecretBytes = Fixtures.muk,
                           csb: CSBID = Fixtures.csbMSK) -> MSKDeliveryBuilder {
        MSKDeliveryBuilder(muk: muk, nafID: nafID, bTID: bTID, keyDomainID: keyDomain, mskID: mskID,
                           content: content ?? .key(msk: msk, seqL: 0x0000, seqU: 0xFFFE),
                           service: service ?? .streaming(policy: policy, policyNumber: 0, ssrc: 0x1234_5678, roc: 0),
                           rand: rand, csbID: csb, timestamp: ts, verificationRequested: verification)
    }

    static func mtkBuilder(mtkID: UInt16 = 5, ts: UInt32 = 7, content: MTKDeliveryBuilder.Content? = nil,
                           msk: SecretBytes = Fixtures.msk, mskID: MSKID = Fixtures.mskID, csb: CSBID = Fixtures.csbMTK) -> MTKDeliveryBuilder {
        MTKDeliveryBuilder(msk: msk, mskRAND: rand, keyDomainID: keyDomain, mskID: mskID, mtkID: MTKID(mtkID),
                           content: content ?? .streaming(mtk: mtk, salt: salt), csbID: csb, timestamp: ts)
    }

    /// mikey.md 9.1 whole message (212 octets).
    static let example91 = hex("01001580cafe000101000012345678000000000503000d00000300f110010004000100020b020000002a0610101112131415161718191a1b1c1d1e1f06000010626d73632e6578616d706c652e6f72670a00001462746964406273662e6578616d706c652e6f7267010000003400010101011002010303011404010e0501000601000701010801000901000a01010b010e0d0200400e01030f010112010e13010a0001001a8731745437bb61b0933e47a8f042e45eaa87274745d9b95078d4015d1b3034e4ca9190f92bb51b51be169a82119721")
    /// mikey.md 9.2 whole message (99 octets).
    static let example92 = hex("010015001122334400010503001200000300f11001000400010002020002000501020000000700010024ff536f8997e0d262b4a723a2eb5a5760989531e0f046eb84c0a6d7cadb98aa17a284c4d901f4c717371b3a658f00ebed345a9a15c376de5371")
    /// mikey.md 9.3 verification message.
    static let example93 = hex("01010500cafe00010001" + "0602" + "0000002a" + "0900" + "0014" + "62746964406273662e6578616d706c652e6f7267"
                               + "0001" + "a0a27b4b3ccbf8553988161f0081a2e9246d85ea")
}

func reveal(_ s: SecretBytes?) -> [UInt8]? { s?.revealedBytes() }
