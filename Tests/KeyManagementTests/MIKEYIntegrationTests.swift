import CryptoCore
import Foundation
import MIKEY
import XCTest
@testable import KeyManagement

/// The schedule's MTK messages and `keys deliver`'s MSK messages, judged by the MIKEY module's
/// UE processor (TS 33.246 6.4.6 / 6.5.3 / 6.5.4 checks) and by tshark.
final class MIKEYIntegrationTests: XCTestCase {
    static let muk = SecretBytes([UInt8](0x40..<0x60))   // 32-byte MUK
    static let bTID = "btid-0001@bsf.example.org"

    /// A UE that received the current and next MSK accepts every MTK the schedule announces,
    /// across MTK switches and an MSK rollover, with the same keys the gateway uses.
    func testUEAcceptsScheduledMTKMessagesAcrossSwitchesAndRollover() throws {
        let c = try Fixtures.configuration()
        let m = KeyManager(configuration: c, store: InMemoryKeyStore(), random: DeterministicRandom("ue"))
        try m.initialize(at: at(1000))
        let g = try XCTUnwrap(KeyGroup(1))
        var ue = UEKeyProcessor(muk: Self.muk, nafID: c.bmscFQDN, bTID: Self.bTID)
        for next in [false, true] {
            let bytes = try m.mskMessage(keyGroup: g, ueID: Self.bTID, muk: Self.muk, verify: false, next: next, at: at(1000),
                                         builder: MIKEYMSKMessageBuilder())
            guard case .success(.msk(let d, nil)) = ue.process(bytes) else { return XCTFail("MSK message rejected") }
            let s = try m.schedule()
            let expected = next ? try s.nextMSK(keyGroup: g, at: at(1000)) : try s.msk(keyGroup: g, at: at(1000))
            XCTAssertEqual(d.mskID.rawValue, expected.mskID.rawValue)
            XCTAssertTrue(d.key.isEqual(to: try XCTUnwrap(expected.msk)))
            XCTAssertEqual(d.seqL, UInt32(expected.keyValidity.seqL))
            XCTAssertEqual(d.seqU, UInt32(expected.keyValidity.seqU))
            XCTAssertEqual(d.rand, expected.rand)
            XCTAssertEqual(d.srtpPolicy?.effectiveROCTransmissionRate, 1)
        }
        let s = try m.schedule()
        var accepted = 0
        // Every repeat tick from 1000 to 1600: current MTK message, plus the next one in the lead.
        for off in stride(from: Int64(1000), to: 1600, by: 5) {
            for sched in try s.transmissions(keyGroup: g, at: at(off)) {
                let bytes = try s.mtkMessage(for: sched, builder: MIKEYMTKMessageBuilder())
                switch ue.process(bytes) {
                case .success(.mtk(let d)):
                    accepted += 1
                    XCTAssertEqual(d.mtkID.rawValue, sched.mtkID.rawValue)
                    XCTAssertEqual(d.mskID.rawValue, sched.mskID.rawValue)
                    XCTAssertTrue(d.key.isEqual(to: sched.mtk))
                    XCTAssertTrue(try XCTUnwrap(d.salt).isEqual(to: sched.salt))
                    XCTAssertEqual(d.mki, sched.mki)
                    XCTAssertEqual(d.csbID.rawValue, sched.csbID.rawValue)
                case .success(let other): XCTFail("unexpected \(other)")
                case .failure(let r):
                    // Repeats of an MTK the UE already holds are discarded (TS 33.246 6.4.6.2).
                    switch r {
                    case .mtkIDNotIncreasing, .replayedMTKTimestamp: break
                    default: XCTFail("t = E + \(off): \(sched) rejected: \(r)")
                    }
                }
            }
        }
        // MTKs 1…10 of MSK 1 (from MTK 1 at 960), MTK 1 of MSK 2 (1560) = 11 new MTKs.
        XCTAssertEqual(accepted, 11)
    }

    func testDeliveredMSKMessageNeedsTheRightMUK() throws {
        let c = try Fixtures.configuration()
        let m = KeyManager(configuration: c, store: InMemoryKeyStore(), random: DeterministicRandom("muk"))
        try m.initialize(at: at(0))
        let g = try XCTUnwrap(KeyGroup(2))
        let bytes = try m.mskMessage(keyGroup: g, ueID: Self.bTID, muk: Self.muk, verify: true, at: at(0), builder: MIKEYMSKMessageBuilder())
        var wrong = UEKeyProcessor(muk: SecretBytes([UInt8](repeating: 1, count: 32)), nafID: c.bmscFQDN, bTID: Self.bTID)
        guard case .failure(.macMismatch) = wrong.process(bytes) else { return XCTFail("accepted with a wrong MUK") }
        var right = UEKeyProcessor(muk: Self.muk, nafID: c.bmscFQDN, bTID: Self.bTID)
        guard case .success(.msk(_, let v?)) = right.process(bytes) else { return XCTFail("V bit set: expected a verification message") }
        XCTAssertFalse(v.isEmpty)
        // The per-UE counter rose: a second message carries TS 2 and is accepted as newer.
        let again = try m.mskMessage(keyGroup: g, ueID: Self.bTID, muk: Self.muk, verify: false, at: at(0), builder: MIKEYMSKMessageBuilder())
        XCTAssertEqual(try m.store.mskMessageCounter(ueID: Self.bTID), 2)
        guard case .success(.msk) = right.process(again) else { return XCTFail("second MSK message rejected") }
        guard case .failure(.replayedMSKTimestamp) = right.process(bytes) else { return XCTFail("replay accepted") }
    }

    func testSRTPPolicyParametersFollowTheSession() throws {
        let c = try GatewayConfiguration.load(path: Fixtures.packageRoot.appendingPathComponent("Examples/gateway.yaml").path)
        let p = MIKEYMSKMessageBuilder.srtpPolicy(c.sessions[0].protection)   // aes-128-cm, rccm2, R 64
        // rfc4771.md 6, recommended set (SRTCP encryption on here).
        XCTAssertEqual(p.encryptionAlgorithm, .aesCM)
        XCTAssertEqual(p.sessionEncryptionKeyLength, 16)
        XCTAssertEqual(p.authenticationAlgorithm, .rccm2)
        XCTAssertEqual(p.srtpAuthenticationAlgorithm, .rccm2)
        XCTAssertEqual(p.srtcpAuthenticationAlgorithm, .hmacSHA1)
        XCTAssertEqual(p.rocTransmissionRate, 64)
        XCTAssertEqual(p.authenticationTagLength, 14)
        XCTAssertEqual(p.srtpAuthenticationTagLength, 14)
        XCTAssertEqual(p.srtcpAuthenticationTagLength, 10)
        XCTAssertEqual(p.keyDerivationRate, 0)
        XCTAssertEqual(p.srtcpEncryption, true)
        XCTAssertEqual(MIKEYMSKMessageBuilder.srtpPolicy(c.sessions[1].protection).sessionEncryptionKeyLength, 32)
    }
}
