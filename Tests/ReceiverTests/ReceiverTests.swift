import CryptoCore
import Foundation
import MIKEY
import PacketIO
import SRTP
import XCTest
@testable import Receiver

final class ReceiverRoundTripTests: XCTestCase {
    /// rtp-seqwrap through SRTP (RCCm2, R = 16, late join: the first packets wait for a ROC)
    /// with two MTKs, back through the receiver: every UDP payload byte-identical, across the
    /// SEQ wrap (ROC 1), and the plaintext capture has the fixture's payloads in order.
    func testSeqWrapRoundTripWithMSKMessage() throws {
        let fixture = try Paths.fixture("rtp-seqwrap.pcap")
        let bmsc = TestBMSC(policy: SRTPPolicy(cipher: .aesCM128, authentication: .rccm2, rocTransmissionRate: 16))
        let cap = try buildProtectedCapture(fixture: fixture, bmsc: bmsc, output: Paths.temporary("seqwrap-rccm2.pcap"))
        var keys = UEKeyState(muk: bmsc.muk, nafID: bmsc.nafID, bTID: bmsc.bTID)
        try keys.loadMSKMessage(try bmsc.mskMessage(), source: "msk.bin")
        let out = Paths.temporary("seqwrap-plain.pcap")
        let report = try CaptureReceiver.run(inputPath: cap.path, outputPath: out, keys: keys)

        XCTAssertEqual(report.violations, [])
        XCTAssertEqual(report.totals.dropped, 0)
        XCTAssertTrue(report.ok, report.summary())
        XCTAssertEqual(report.mtks.map(\.mtkID), [1, 2])
        XCTAssertEqual(report.mtks.first?.mki, "000100010001")
        XCTAssertEqual(report.mtks.first?.mtk, Hex.encode(bmsc.mtk(1).key))
        XCTAssertEqual(report.mtks.last?.salt, Hex.encode(bmsc.mtk(2).salt))
        XCTAssertGreaterThan(report.mikey.repeats, 0, "MTK 1 is repeated every 400 packets")
        XCTAssertEqual(report.mikey.rejected, 0)

        let rtp = try XCTUnwrap(report.flows.first { $0.kind == "srtp" })
        XCTAssertEqual(rtp.ssrc, 0x0BAD_CAFE)
        XCTAssertEqual(rtp.destination, "127.0.0.20:5010")
        XCTAssertEqual(rtp.packets, cap.rtpCount)
        XCTAssertEqual(rtp.ok, cap.rtpCount)
        XCTAssertEqual(rtp.mtkIDs, [1, 2])
        XCTAssertEqual(rtp.rocAtEnd, 1, "SEQ wrapped once")
        let rtcp = try XCTUnwrap(report.flows.first { $0.kind == "srtcp" })
        XCTAssertEqual(rtcp.ok, rtcp.packets)
        XCTAssertGreaterThan(rtcp.packets, 0)

        let plain = try udpPayloads(out)
        XCTAssertEqual(plain.count, cap.fixturePayloads.count)
        for (i, (a, b)) in zip(plain, cap.fixturePayloads).enumerated() where a != b {
            XCTFail("UDP payload \(i) differs from the fixture")
            break
        }
        XCTAssertEqual(plain, try udpPayloads(fixture))
        // The fixture itself has a SEQ wrap: the test covers ROC 1.
        let seqs = cap.fixturePayloads.filter { $0[1] & 0x7F == 96 }.map { UInt16($0[2]) << 8 | UInt16($0[3]) }
        XCTAssertTrue(zip(seqs, seqs.dropFirst()).contains { $0 > $1 })
    }

    /// Same with the MSK from `keys export-ue` JSON, RCCm1 with R = 1, SRTCP unencrypted.
    func testSeqWrapRoundTripWithUEExport() throws {
        let fixture = try Paths.fixture("rtp-seqwrap.pcap")
        let bmsc = TestBMSC(policy: SRTPPolicy(cipher: .aesCM128, authentication: .rccm1, rocTransmissionRate: 1, srtcpEncryption: false))
        let cap = try buildProtectedCapture(fixture: fixture, bmsc: bmsc, output: Paths.temporary("seqwrap-rccm1.pcap"))
        var keys = UEKeyState()
        let msks = try keys.loadUEExport(bmsc.exportJSON(), source: "export.json")
        XCTAssertEqual(msks.map(\.mskID.rawValue), [0x0001_0001])
        XCTAssertEqual(keys.policy(keyGroup: 1)?.policy.authentication, .rccm1)
        let out = Paths.temporary("seqwrap-rccm1-plain.pcap")
        let report = try CaptureReceiver.run(inputPath: cap.path, outputPath: out, keys: keys)
        XCTAssertTrue(report.ok, report.summary())
        XCTAssertEqual(try udpPayloads(out), cap.fixturePayloads)
        XCTAssertEqual(report.flows.first { $0.kind == "srtp" }?.rocAtEnd, 1)
    }

    /// R = 1024: the first 536 packets (SEQ 65000...65535) wait for the ROC carried at SEQ 0,
    /// far more than the 128-packet replay window; they are still decrypted, in order.
    func testLateJoinLongerThanTheReplayWindow() throws {
        let fixture = try Paths.fixture("rtp-seqwrap.pcap")
        let bmsc = TestBMSC(policy: SRTPPolicy(cipher: .aesCM128, authentication: .rccm2, rocTransmissionRate: 1024))
        let cap = try buildProtectedCapture(fixture: fixture, bmsc: bmsc, output: Paths.temporary("seqwrap-r1024.pcap"))
        var keys = UEKeyState()
        try keys.loadUEExport(bmsc.exportJSON(), source: "export.json")
        let out = Paths.temporary("seqwrap-r1024-plain.pcap")
        let report = try CaptureReceiver.run(inputPath: cap.path, outputPath: out, keys: keys)
        XCTAssertTrue(report.ok, report.summary())
        XCTAssertTrue(try udpPayloads(out) == cap.fixturePayloads)
    }

    /// The report JSON decodes and carries what `receive --report` promises.
    func testReportJSONShape() throws {
        let fixture = try Paths.fixture("rtp-seqwrap.pcap")
        let bmsc = TestBMSC(policy: SRTPPolicy(authentication: .rccm2, rocTransmissionRate: 64))
        let cap = try buildProtectedCapture(fixture: fixture, bmsc: bmsc, output: Paths.temporary("seqwrap-json.pcap"))
        var keys = UEKeyState(muk: bmsc.muk, nafID: bmsc.nafID, bTID: bmsc.bTID)
        try keys.loadMSKMessage(try bmsc.mskMessage(), source: "msk.bin")
        let report = try CaptureReceiver.run(inputPath: cap.path, outputPath: nil, keys: keys)
        XCTAssertTrue(report.ok, report.summary())
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try report.json().utf8)) as? [String: Any])
        for key in ["mtks", "flows", "violations", "violationCounts", "totals", "mikey", "policies", "note", "input"] {
            XCTAssertNotNil(object[key], key)
        }
        let mtk = try XCTUnwrap((object["mtks"] as? [[String: Any]])?.first)
        XCTAssertEqual(mtk["mskID"] as? String, "00010001")
        XCTAssertEqual(mtk["mki"] as? String, "000100010001")
        XCTAssertEqual(mtk["mtk"] as? String, Hex.encode(bmsc.mtk(1).key))
        XCTAssertEqual(mtk["salt"] as? String, Hex.encode(bmsc.mtk(1).salt))
        XCTAssertEqual(try JSONDecoder().decode(ReceiveReport.self, from: Data(try report.json().utf8)), report)
    }
}

final class ReceiverViolationTests: XCTestCase {
    let policy = SRTPPolicy(cipher: .aesCM128, authentication: .rccm2, rocTransmissionRate: 4)

    func run(_ d: Distortion, name: String) throws -> (ReceiveReport, ProtectedCapture) {
        let fixture = try Paths.fixture("rtp-seqwrap.pcap")
        let bmsc = TestBMSC(policy: policy)
        let cap = try buildProtectedCapture(fixture: fixture, bmsc: bmsc, output: Paths.temporary("\(name).pcap"), distortion: d)
        var keys = UEKeyState(muk: bmsc.muk, nafID: bmsc.nafID, bTID: bmsc.bTID)
        try keys.loadMSKMessage(try bmsc.mskMessage(), source: "msk.bin")
        return (try CaptureReceiver.run(inputPath: cap.path, outputPath: Paths.temporary("\(name)-plain.pcap"), keys: keys), cap)
    }

    func testMTKUsedBeforeItsMessage() throws {
        let (report, cap) = try run(Distortion(announceMTK2Late: 20), name: "late-mtk2")
        let v = report.violations.filter { $0.kind == .mtkUsedBeforeAnnouncement }
        XCTAssertEqual(v.count, 20, report.summary())
        XCTAssertEqual(v.first?.mki, "000100010002")
        XCTAssertEqual(v.first.map { cap.rtpFrames[$0.frame] }, cap.switchAt)
        XCTAssertTrue(v.allSatisfy { $0.frame < cap.mtk2Frame })
        XCTAssertEqual(report.violationCounts["unknown_mki"], nil)
        XCTAssertFalse(report.ok)
        XCTAssertEqual(report.flows.first { $0.kind == "srtp" }?.dropped["mtk_used_before_announcement"], 20)
    }

    func testUnknownMKI() throws {
        let (report, cap) = try run(Distortion(unknownMKIPackets: [100, 101, 2000]), name: "unknown-mki")
        let v = report.violations.filter { $0.kind == .unknownMKI }
        XCTAssertEqual(v.map { cap.rtpFrames[$0.frame] }, [100, 101, 2000], report.summary())
        XCTAssertEqual(v.first?.mki, "000100010007")
        XCTAssertEqual(report.violationCounts.count, 1)
        XCTAssertFalse(report.ok)
        // Everything else still decrypts.
        XCTAssertEqual(report.totals.srtpOK, cap.rtpCount - 3)
    }

    func testROCTagMissingAndUnexpected() throws {
        // R = 4: find packets whose SEQ is (not) a multiple of 4 among RTP packets 200...400.
        let fixture = try Paths.fixture("rtp-seqwrap.pcap")
        let seqs = try udpPayloads(fixture).filter { !(200...204).contains($0[1]) }.map { UInt16($0[2]) << 8 | UInt16($0[3]) }
        let carrying = try XCTUnwrap((200..<400).first { seqs[$0] % 4 == 0 })
        let notCarrying = try XCTUnwrap((200..<400).first { seqs[$0] % 4 == 1 })
        let (report, cap) = try run(Distortion(forceROCPackets: [notCarrying], omitROCPackets: [carrying]), name: "roc-tags")
        let missing = report.violations.filter { $0.kind == .rocTagMissing }
        let unexpected = report.violations.filter { $0.kind == .rocTagUnexpected }
        XCTAssertEqual(missing.map { cap.rtpFrames[$0.frame] }, [carrying], report.summary())
        XCTAssertEqual(unexpected.map { cap.rtpFrames[$0.frame] }, [notCarrying])
        XCTAssertEqual(missing.first?.sequenceNumber, seqs[carrying])
        XCTAssertEqual(report.violationCounts.count, 2, "\(report.violationCounts)")
        XCTAssertEqual(report.totals.srtpOK, cap.rtpCount - 2)
    }

    func testMIKEYOnWrongPortAndAddress() throws {
        let (report, _) = try run(Distortion(mikeyPort: 2270), name: "wrong-port")
        let v = report.violations.filter { $0.kind == .mikeyWrongPort }
        XCTAssertGreaterThan(v.count, 1, report.summary())
        XCTAssertEqual(v.first?.flow, "127.0.0.20:2270")
        // Processed anyway, so the stream still decrypts; only the port is flagged.
        XCTAssertEqual(report.failedPackets, 0)
        XCTAssertFalse(report.ok)

        let (r2, _) = try run(Distortion(mikeyAddress: IPAddress("127.0.0.99")), name: "wrong-address")
        let w = r2.violations.filter { $0.kind == .mikeyWrongAddress }
        XCTAssertEqual(w.count, 1, r2.summary())
        XCTAssertEqual(w.first?.flow, "127.0.0.99:2269")
        XCTAssertTrue(w.first?.detail.contains("127.0.0.20") ?? false)
    }

    func testBadKeyInputsGiveOneLineErrors() throws {
        var keys = UEKeyState(muk: SecretBytes([UInt8](repeating: 1, count: 32)), nafID: "x", bTID: "y")
        let bmsc = TestBMSC(policy: policy)
        XCTAssertThrowsError(try keys.loadMSKMessage(try bmsc.mskMessage(), source: "msk.bin")) { e in
            XCTAssertTrue("\(e)".hasPrefix("msk.bin: "), "\(e)")
        }
        XCTAssertThrowsError(try keys.loadMSKMessage([1, 2, 3], source: "junk.bin")) { e in
            XCTAssertTrue("\(e)".contains("junk.bin"), "\(e)")
        }
        XCTAssertThrowsError(try keys.loadUEExport(Data("{}".utf8), source: "e.json")) { e in
            XCTAssertTrue("\(e)".contains("e.json") && "\(e)".contains("export-ue"), "\(e)")
        }
        XCTAssertThrowsError(try CaptureReceiver.run(inputPath: "/nonexistent.pcap", outputPath: nil, keys: keys)) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent.pcap"), "\(e)")
        }
        let fixture = try Paths.fixture("rtp-seqwrap.pcap")
        XCTAssertThrowsError(try CaptureReceiver.run(inputPath: fixture, outputPath: fixture, keys: keys)) { e in
            XCTAssertTrue("\(e)".contains("overwrite"), "\(e)")
        }
    }
}

final class ReceiverMultiSessionTests: XCTestCase {
    /// Two RTP sessions (two key groups, different policies) per capture, on one unicast
    /// address (rtp-h264-aac) and on one multicast group (rtp-multicast): every UDP payload
    /// back byte for byte, each flow bound to its own key group.
    func testTwoSessionCaptures() throws {
        for (name, video, audio) in [("rtp-h264-aac.pcap", UInt16(5004), UInt16(5006)), ("rtp-multicast.pcap", 5020, 5022)] {
            let fixture = try Paths.fixture(name)
            var a = TestBMSC(policy: SRTPPolicy(cipher: .aesCM128, authentication: .rccm2, rocTransmissionRate: 64))
            var b = TestBMSC(policy: SRTPPolicy(cipher: .aesCM256, authentication: .rccm1, rocTransmissionRate: 1, srtcpEncryption: false))
            a.keyGroup = 10
            b.keyGroup = 11
            b.mskTimestamp = 2
            b.msk = SecretBytes((0..<16).map { UInt8($0 &* 3 &+ 9) })
            b.mtkIDs = (5, 6)
            b.mtkOverride = [5: ((0..<32).map { UInt8($0) }, (0..<14).map { UInt8($0 &+ 50) }),
                             6: ((0..<32).map { UInt8($0 &+ 1) }, (0..<14).map { UInt8($0 &+ 51) })]
            let out = Paths.temporary("multi-\(name)")
            let payloads = try buildMultiSessionCapture(fixture: fixture, sessions: [video: a, audio: b], output: out)
            var keys = UEKeyState(muk: a.muk, nafID: a.nafID, bTID: a.bTID)
            try keys.loadMSKMessage(try a.mskMessage(), source: "a.bin")
            try keys.loadMSKMessage(try b.mskMessage(), source: "b.bin")
            let plain = Paths.temporary("multi-plain-\(name)")
            let report = try CaptureReceiver.run(inputPath: out, outputPath: plain, keys: keys)
            XCTAssertTrue(report.ok, "\(name)\n" + report.summary())
            let back = try udpPayloads(plain)
            XCTAssertTrue(back == payloads, "\(name): plaintext payloads differ from the fixture's")
            XCTAssertTrue(back == (try udpPayloads(fixture)), name)
            XCTAssertEqual(report.flows.count, 4, name)
            XCTAssertEqual(Set(report.flows.filter { $0.destination.hasSuffix(":\(video)") || $0.destination.hasSuffix(":\(video + 1)") }.compactMap(\.keyGroup)), [10])
            XCTAssertEqual(Set(report.flows.filter { $0.destination.hasSuffix(":\(audio)") || $0.destination.hasSuffix(":\(audio + 1)") }.compactMap(\.keyGroup)), [11])
            XCTAssertEqual(report.mtks.count, 4)
        }
    }
}

final class PolicyMappingTests: XCTestCase {
    /// MIKEY SP parameters (as `keys deliver` writes them) to the SRTP policy, and back.
    func testSPToSRTPPolicy() throws {
        var p = SRTPPolicyParameters.mbmsRecommended(rocTransmissionRate: 64, authentication: .rccm2, srtcpEncryption: true)
        p.sessionEncryptionKeyLength = 24
        var s = PolicyMapping.srtpPolicy(p)
        XCTAssertEqual(s.cipher, .aesCM192)
        XCTAssertEqual(s.authentication, .rccm2)
        XCTAssertEqual(s.rocTransmissionRate, 64)
        XCTAssertEqual(s.rccTagLength, 14)
        XCTAssertTrue(s.srtcpEncryption)
        XCTAssertEqual(s.srtcpTagLength, 10)

        p = SRTPPolicyParameters.mbmsRecommended(rocTransmissionRate: 8, authentication: .rccm3)
        s = PolicyMapping.srtpPolicy(p)
        XCTAssertEqual(s.authentication, .rccm3)
        XCTAssertEqual(s.rccTagLength, 4)
        XCTAssertFalse(s.srtcpEncryption)

        p = SRTPPolicyParameters.mbmsRecommended(rocTransmissionRate: 1, authentication: .hmacSHA1)
        p.srtpAuthenticationTagLength = 4
        p.srtpEncryption = false
        s = PolicyMapping.srtpPolicy(p)
        XCTAssertEqual(s.authentication, .hmacSHA1_32)
        XCTAssertEqual(s.cipher, .null)

        // No SP at all: the SRTP defaults (AES-128, RCCm2, R = 1).
        XCTAssertEqual(PolicyMapping.srtpPolicy(nil), SRTPPolicy())

        // Round trip through the SP parameters used to install exported MSKs.
        for policy in [SRTPPolicy(cipher: .aesCM256, authentication: .rccm1, rocTransmissionRate: 3, srtcpEncryption: false),
                       SRTPPolicy(cipher: .aesCM128, authentication: .hmacSHA1_80),
                       SRTPPolicy(cipher: .aesCM192, authentication: .rccm3, rocTransmissionRate: 16)] {
            XCTAssertEqual(PolicyMapping.srtpPolicy(PolicyMapping.parameters(policy)), policy)
        }
        XCTAssertThrowsError(try PolicyMapping.srtpPolicy(cipher: "aes-512", auth: "rccm2", rocRate: 1, srtpTagLength: 14,
                                                          srtcpTagLength: 10, srtcpEncryption: true, source: "x.json")) { e in
            XCTAssertTrue("\(e)".hasPrefix("x.json: policy.cipher"), "\(e)")
        }
    }
}
