import CryptoCore
import Foundation
import PacketIO
import SRTP
import TestSupport
import XCTest
@testable import Receiver

/// Issue 19 finding 10, receiver side: the SRTCP E flag against the SP, and `--plain`.
final class Finding10SRTCPFlagTests: XCTestCase {
    /// rtp-seqwrap carries 6 RTCP compounds (fixtures README), each SRTCP here.
    static let rtcpPackets = 6

    func receive(spEncrypts: Bool, sentEncrypted: Bool, name: String) throws -> ReceiveReport {
        let fixture = try Paths.fixture("rtp-seqwrap.pcap")
        let bmsc = TestBMSC(policy: SRTPPolicy(cipher: .aesCM128, authentication: .rccm2, rocTransmissionRate: 4, srtcpEncryption: spEncrypts))
        let cap = try buildProtectedCapture(fixture: fixture, bmsc: bmsc, output: Paths.temporary("\(name).pcap"),
                                            distortion: Distortion(srtcpEncryption: sentEncrypted))
        var keys = UEKeyState(muk: bmsc.muk, nafID: bmsc.nafID, bTID: bmsc.bTID)
        try keys.loadMSKMessage(try bmsc.mskMessage(), source: "msk.bin")
        return try CaptureReceiver.run(inputPath: cap.path, outputPath: nil, keys: keys)
    }

    /// SRTCP that verifies but whose E flag contradicts the MSK message's SP (type 6, SRTCP
    /// encryption) is a named rule violation that fails the verdict, both ways round.
    func testSRTCPWhoseEFlagContradictsTheSPIsAViolation() throws {
        for (sp, sent) in [(true, false), (false, true)] {
            let r = try receive(spEncrypts: sp, sentEncrypted: sent, name: "eflag-\(sp)-\(sent)")
            XCTAssertEqual(r.violationCounts["srtcp_e_flag_mismatch"], Self.rtcpPackets, "SP \(sp), E \(sent): \(r.summary())")
            let v = try XCTUnwrap(r.violations.first { $0.kind == .srtcpEncryptionFlagMismatch })
            XCTAssertEqual(v.flow, "127.0.0.20:5011")
            XCTAssertTrue(v.detail.contains("E = \(sent ? 1 : 0)") && v.detail.contains("SRTCP encryption \(sp ? "on" : "off")"), v.detail)
            XCTAssertFalse(r.ok, r.summary())
            // It is flagged, not lost: the packets still decrypt (RFC 3711 3.4 honours E).
            XCTAssertEqual(r.totals.srtcpOK, Self.rtcpPackets)
            XCTAssertTrue(r.summary().contains("srtcp_e_flag_mismatch"))
        }
        for sp in [true, false] {
            let r = try receive(spEncrypts: sp, sentEncrypted: sp, name: "eflag-ok-\(sp)")
            XCTAssertEqual(r.violationCounts, [:], r.summary())
            XCTAssertTrue(r.ok, r.summary())
        }
    }
}

/// `receive --plain`: payload-by-payload comparison with the plain capture, per flow.
final class Finding10PlainComparisonTests: XCTestCase {
    struct Fixture {
        var frames: [Frame]
        var linkType: Int32
        /// Indices into `frames` of the RTP and RTCP packets.
        var rtp: [Int], rtcp: [Int]
        func seq(_ i: Int) -> UInt16 { let p = frames[i].payload ?? []; return UInt16(p[2]) << 8 | UInt16(p[3]) }
    }

    func fixture() throws -> (String, Fixture) {
        let path = try Paths.fixture("rtp-seqwrap.pcap")
        let (link, frames) = try readFrames(path)
        var rtp: [Int] = [], rtcp: [Int] = []
        for (i, f) in frames.enumerated() {
            guard let p = f.payload, p.count >= 2 else { continue }
            if (200...204).contains(p[1]) { rtcp.append(i) } else { rtp.append(i) }
        }
        return (path, Fixture(frames: frames, linkType: link, rtp: rtp, rtcp: rtcp))
    }

    /// What a faulty gateway might send: the fixture with RTP packet 100's payload altered (one
    /// octet past the header), RTP packet 2000 and RTCP compound 2 dropped, RTCP compound 4
    /// altered, and one RTP packet added at the end (SEQ 3500, not in the fixture).
    func faulty(_ fx: Fixture, to path: String) throws {
        var out: [(UInt64, [UInt8])] = []
        for (i, f) in fx.frames.enumerated() {
            if i == fx.rtp[2000] || i == fx.rtcp[2] { continue }
            var p = f.payload ?? []
            if i == fx.rtp[100] { p[20] ^= 0x5A }
            if i == fx.rtcp[4] { p[20] ^= 0x01 }   // inside the SR's sender info
            out.append((f.timestamp, f.payload == nil ? f.bytes : replacingPayload(f, p)))
        }
        let last = fx.frames[fx.rtp[fx.rtp.count - 1]]
        var extra = try XCTUnwrap(last.payload)
        extra[2] = UInt8(3500 >> 8); extra[3] = UInt8(3500 & 0xFF)
        out.append((last.timestamp + 1_000_000, replacingPayload(last, extra)))
        try writeFrames(path, linkType: fx.linkType, out)
    }

    func protectAndReceive(_ input: String, name: String) throws -> (ReceiveReport, String, TestBMSC) {
        let bmsc = TestBMSC(policy: SRTPPolicy(cipher: .aesCM128, authentication: .rccm1, rocTransmissionRate: 1))
        let cap = try buildProtectedCapture(fixture: input, bmsc: bmsc, output: Paths.temporary("\(name)-protected.pcap"))
        var keys = UEKeyState(muk: bmsc.muk, nafID: bmsc.nafID, bTID: bmsc.bTID)
        try keys.loadMSKMessage(try bmsc.mskMessage(), source: "msk.bin")
        let out = Paths.temporary("\(name)-plain.pcap")
        let report = try CaptureReceiver.run(inputPath: cap.path, outputPath: out, keys: keys)
        return (report, out, bmsc)
    }

    func testFaithfulOutputMatchesEveryPayload() throws {
        let (path, fx) = try fixture()
        let (report, out, _) = try protectAndReceive(path, name: "plain-ok")
        XCTAssertTrue(report.ok, report.summary())
        let c = try PlainComparison.compare(plain: path, received: out, protectedFlows: report.flows)
        XCTAssertEqual(c.flows.map { "\($0.destination) \($0.kind) \($0.matched)/\($0.plain)" },
                       ["127.0.0.20:5010 rtp \(fx.rtp.count)/\(fx.rtp.count)", "127.0.0.20:5011 rtcp \(fx.rtcp.count)/\(fx.rtcp.count)"])
        XCTAssertEqual(fx.rtp.count, 3486)   // fixtures README
        XCTAssertTrue(c.flows.allSatisfy { $0.protected && $0.altered == 0 && $0.missing == 0 && $0.extra == 0 })
        XCTAssertTrue(c.ok)
    }

    /// Every fault of `faulty` decrypts and verifies (the "gateway" protected it), so only the
    /// comparison sees it: per flow, with the SEQs read from the fixture.
    func testAlteredMissingAndExtraPayloadsPerFlow() throws {
        let (path, fx) = try fixture()
        let faultyInput = Paths.temporary("faulty-input.pcap")
        try faulty(fx, to: faultyInput)
        let (report, out, _) = try protectAndReceive(faultyInput, name: "plain-faulty")
        XCTAssertTrue(report.ok, "the receiver alone sees nothing wrong: \(report.summary())")
        let c = try PlainComparison.compare(plain: path, received: out, protectedFlows: report.flows)
        let rtp = try XCTUnwrap(c.flows.first { $0.kind == "rtp" })
        XCTAssertEqual(rtp.ssrc, 0x0BAD_CAFE)
        XCTAssertEqual([rtp.plain, rtp.received, rtp.matched, rtp.altered, rtp.missing, rtp.extra],
                       [3486, 3486, 3484, 1, 1, 1])
        XCTAssertEqual(rtp.firstAlteredSequenceNumbers, [fx.seq(fx.rtp[100])])
        XCTAssertEqual(rtp.firstMissingSequenceNumbers, [fx.seq(fx.rtp[2000])])
        let rtcp = try XCTUnwrap(c.flows.first { $0.kind == "rtcp" })
        XCTAssertEqual([rtcp.plain, rtcp.received, rtcp.matched, rtcp.altered, rtcp.missing, rtcp.extra], [6, 5, 4, 1, 1, 0])
        XCTAssertFalse(c.ok)
        XCTAssertEqual([c.altered, c.missing, c.extra], [2, 2, 1])
        XCTAssertTrue(c.summary().contains("payloads: FAILED (2 altered, 2 missing)"), c.summary())
    }

    /// Through the binary: `--plain` turns the same run from OK (exit 0) into FAILED (exit 1),
    /// with the per-flow table; a --plain file that cannot be read is bad input (exit 2).
    func testReceivePlainThroughTheBinary() throws {
        _ = try CLI.binary()
        let (path, fx) = try fixture()
        let faultyInput = Paths.temporary("faulty-cli-input.pcap")
        try faulty(fx, to: faultyInput)
        let bmsc = TestBMSC(policy: SRTPPolicy(cipher: .aesCM128, authentication: .rccm1, rocTransmissionRate: 1))
        let good = try buildProtectedCapture(fixture: path, bmsc: bmsc, output: Paths.temporary("cli-good.pcap"))
        let bad = try buildProtectedCapture(fixture: faultyInput, bmsc: bmsc, output: Paths.temporary("cli-bad.pcap"))
        let export = Paths.temporary("cli-export.json")
        try bmsc.exportJSON().write(to: URL(fileURLWithPath: export))

        var r = try CLI.run(["receive", "--input", good.path, "--ue-export", export, "--plain", path])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("payloads: OK"), r.output)
        r = try CLI.run(["receive", "--input", bad.path, "--ue-export", export])
        XCTAssertEqual(r.status, 0, "without a reference nothing is wrong: \(r.output)")
        let report = Paths.temporary("cli-plain-report.json")
        r = try CLI.run(["receive", "--input", bad.path, "--ue-export", export, "--plain", path, "--report", report])
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.output.contains("payloads: FAILED (2 altered, 2 missing)"), r.output)
        XCTAssertTrue(r.output.contains("missing SEQ: \(fx.seq(fx.rtp[2000]))"), r.output)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])
        let plain = try XCTUnwrap(json["plainComparison"] as? [String: Any])
        XCTAssertEqual((plain["flows"] as? [[String: Any]])?.count, 2)
        r = try CLI.run(["receive", "--input", bad.path, "--ue-export", export, "--plain", Paths.temporary("no-such.pcap")])
        XCTAssertEqual(r.status, 2, r.output)
        XCTAssertTrue(r.output.contains("no-such.pcap"), r.output)
    }
}
