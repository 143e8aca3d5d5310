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

    /// tshark dissects the schedule's MTK messages (streaming and download) cleanly, and the
    /// EXT carries Key Domain ID, MSK ID and MTK ID as mikey.md 4.2 lays them out.
    func testTsharkDissectsScheduledMTKMessages() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark") else { throw XCTSkip("tshark not installed") }
        let m = KeyManager(configuration: try Fixtures.configuration(), store: InMemoryKeyStore(), random: DeterministicRandom("ts"))
        try m.initialize(at: at(1000))
        let s = try m.schedule()
        let g = try XCTUnwrap(KeyGroup(1))
        let streaming = try s.mtkMessages(keyGroup: g, at: at(1555), builder: MIKEYMTKMessageBuilder())   // MSK 1/MTK 10, MSK 2/MTK 1
        let download = try s.mtkMessages(keyGroup: g, at: at(1000), download: true, builder: MIKEYMTKMessageBuilder())
        let messages = streaming + download
        XCTAssertEqual(messages.count, 3)
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pcap = dir.appendingPathComponent("mtk.pcap")
        try Data(CLITests.pcap(messages)).write(to: pcap)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/tshark")
        p.arguments = ["-r", pcap.path, "-T", "fields", "-E", "separator=|", "-e", "_ws.malformed", "-e", "_ws.expert",
                       "-e", "mikey.v.set", "-e", "mikey.cs_id_map_type", "-e", "mikey.ext.data", "-e", "mikey.kemac.encr_alg"]
        let o = Pipe()
        p.standardOutput = o
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: o.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let rows = text.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(rows.count, 3, text)
        let ext = ["00000300f1100100040001000102000200" + "0a", "00000300f1100100040001000202000200" + "01",
                   "00000300f1100100040001000102000200" + "01"]
        for (r, e) in zip(rows, ext) where r.count == 6 {
            XCTAssertEqual(r[0], ""); XCTAssertEqual(r[1], "")
            XCTAssertEqual(r[2], "0")    // V clear in MTK messages
            XCTAssertEqual(r[3], "1")    // Empty map
            XCTAssertEqual(r[4].replacingOccurrences(of: ":", with: ""), e)
            XCTAssertEqual(r[5], "1")    // AES-CM-128
        }
    }

    /// A FLUTE channel's UE gets a download MSK message (no SP) and MTKs as TGK.
    func testFLUTEChannelGetsDownloadMessages() throws {
        let c = try GatewayConfiguration.load(path: Fixtures.packageRoot.appendingPathComponent("Examples/gateway.yaml").path)
        let m = KeyManager(configuration: c, store: InMemoryKeyStore(), random: DeterministicRandom("flute"))
        try m.initialize(at: at(1000))
        let g = try XCTUnwrap(KeyGroup(3))
        var ue = UEKeyProcessor(muk: Self.muk, nafID: c.bmscFQDN, bTID: Self.bTID)
        let msk = try m.mskMessage(keyGroup: g, ueID: Self.bTID, muk: Self.muk, verify: false, at: at(1000), builder: MIKEYMSKMessageBuilder())
        guard case .success(.msk(let d, _)) = ue.process(msk) else { return XCTFail("download MSK message rejected") }
        XCTAssertNil(d.srtpPolicy)
        let messages = try m.mtkMessages(keyGroup: g, at: at(1000))
        XCTAssertEqual(messages.count, 1)
        guard case .success(.mtk(let t)) = ue.process(messages[0]) else { return XCTFail("MTK message rejected") }
        XCTAssertEqual(t.kind, .download)
        XCTAssertNil(t.salt)
        XCTAssertTrue(t.key.isEqual(to: try m.schedule().currentMTK(keyGroup: g, at: at(1000)).mtk))
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
