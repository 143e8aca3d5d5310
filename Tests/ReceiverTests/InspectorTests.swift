import CryptoCore
import Foundation
import MIKEY
import PacketIO
import SRTP
import XCTest
@testable import Receiver

final class InspectorTests: XCTestCase {
    func testInspectShowsMIKEYAndSRTPFields() throws {
        let fixture = try Paths.fixture("rtp-seqwrap.pcap")
        let bmsc = TestBMSC(policy: SRTPPolicy(cipher: .aesCM128, authentication: .rccm2, rocTransmissionRate: 16))
        let cap = try buildProtectedCapture(fixture: fixture, bmsc: bmsc, output: Paths.temporary("inspect.pcap"))
        let packets = try CaptureInspector.inspect(path: cap.path)
        XCTAssertEqual(packets.count, try readFrames(cap.path).frames.count)

        let mikey = try XCTUnwrap(packets.first { $0.kind == "mikey" })
        XCTAssertEqual(mikey.field("message"), "MTK message")
        XCTAssertEqual(mikey.field("key_domain_id"), "00f110")
        XCTAssertEqual(mikey.field("msk_id"), "00010001")
        XCTAssertEqual(mikey.field("key_group"), "1")
        XCTAssertEqual(mikey.field("mtk_id"), "1")
        XCTAssertEqual(mikey.field("ts"), "COUNTER 10")
        XCTAssertEqual(mikey.field("csb_id"), "0xc0de0001")
        XCTAssertEqual(mikey.field("v"), "0")
        XCTAssertEqual(mikey.field("cs_map"), "1 (Empty)")
        XCTAssertEqual(mikey.field("kemac_encr"), "AES-CM-128")
        XCTAssertEqual(mikey.field("kemac_mac"), "HMAC-SHA-1-160")
        XCTAssertTrue(mikey.line.contains("mtk_id=1"), mikey.line)

        // SRTP: MKI split, ROC on SEQ multiples of 16 (RCCm2), plain MAC elsewhere.
        let srtp = packets.filter { $0.kind == "srtp" }
        XCTAssertEqual(srtp.count, cap.rtpCount)
        for p in srtp {
            XCTAssertEqual(p.field("ssrc"), "0x0badcafe")
            XCTAssertEqual(p.field("key_group"), "1")
            XCTAssertEqual(p.field("key_number"), "1")
            let seq = try XCTUnwrap(p.field("seq").flatMap { UInt16($0) })
            let mtk = cap.rtpFrames[p.frame].map { $0 < cap.switchAt ? "1" : "2" }
            XCTAssertEqual(p.field("mtk_id"), mtk, p.line)
            if seq % 16 == 0 {
                // The ROC before the wrap is 0, after it 1 (first SEQ is 65000).
                XCTAssertEqual(p.field("roc"), seq >= 65000 ? "0" : "1", p.line)
                XCTAssertEqual(p.field("mac")?.count, 20)
            } else {
                XCTAssertNil(p.field("roc"), p.line)
                XCTAssertEqual(p.field("mac")?.count, 20)
            }
        }
        let srtcp = try XCTUnwrap(packets.first { $0.kind == "srtcp" })
        XCTAssertEqual(srtcp.field("e"), "1")
        XCTAssertEqual(srtcp.field("index"), "0")
        XCTAssertEqual(srtcp.field("mki"), "000100010001")
        XCTAssertEqual(srtcp.field("tag")?.count, 20)

        // JSON lines are objects with the same fields.
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(mikey.jsonLine().utf8)) as? [String: Any])
        XCTAssertEqual(object["mtk_id"] as? String, "1")
        XCTAssertEqual(object["kind"] as? String, "mikey")

        let limited = try CaptureInspector.inspect(path: cap.path, limit: 5)
        XCTAssertEqual(limited.count, 5)
    }

    func testInspectMSKMessageShowsNamedSPParameters() throws {
        let bmsc = TestBMSC(policy: SRTPPolicy(authentication: .rccm2, rocTransmissionRate: 64))
        let fields = CaptureInspector.mikeyFields(try bmsc.mskMessage())
        let f = Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(f["message"], "MSK message")
        XCTAssertEqual(f["idi"], bmsc.nafID)
        XCTAssertEqual(f["idr"], bmsc.bTID)
        XCTAssertEqual(f["ts"], "COUNTER 1")
        XCTAssertTrue(f["cs_map"]?.hasPrefix("0 (SRTP-ID)") ?? false)
        let sp = try XCTUnwrap(f["sp"])
        XCTAssertTrue(sp.contains("roc_rate_R=64"), sp)
        XCTAssertTrue(sp.contains("srtp_auth_alg=RCCm2"), sp)
        XCTAssertTrue(sp.contains("encr_alg=AES-CM"), sp)
        XCTAssertTrue(sp.contains("srtp_tag_len=14"), sp)
    }

    /// Random and truncated frames: never traps, every frame gets a line.
    func testInspectAndReceiveSurviveGarbage() throws {
        var rng = SystemRandomNumberGenerator()
        let bmsc = TestBMSC(policy: SRTPPolicy())
        let template = UDPFrameEditor.buildFrame(linkType: .ethernet, template: nil, source: TransportAddress(.v4(0x7F00_000A), 2269),
                                                 destination: TransportAddress(.v4(0x7F00_0014), 2269), hopLimit: 64,
                                                 payload: try bmsc.mtkMessage(1, timestamp: 1))
        var frames: [(UInt64, [UInt8])] = []
        for i in 0..<400 {
            var f: [UInt8]
            switch i % 4 {
            case 0:  // random bytes
                f = (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1:  // MIKEY frame truncated or with flipped bytes, lengths fixed
                var payload = try bmsc.mtkMessage(1, timestamp: 1)
                payload = Array(payload.prefix(Int.random(in: 0...payload.count, using: &rng)))
                if !payload.isEmpty { payload[Int.random(in: 0..<payload.count, using: &rng)] ^= 0xFF }
                f = UDPFrameEditor.buildFrame(linkType: .ethernet, template: nil, source: TransportAddress(.v4(0x7F00_000A), 2269),
                                              destination: TransportAddress(.v4(0x7F00_0014), 2269), hopLimit: 64, payload: payload)
            case 2:  // RTP-looking payloads of every small length to the session address
                let payload = [0x80] + (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                f = UDPFrameEditor.buildFrame(linkType: .ethernet, template: nil, source: TransportAddress(.v4(0x7F00_000A), 5010),
                                              destination: TransportAddress(.v4(0x7F00_0014), UInt16.random(in: 5010...5011, using: &rng)),
                                              hopLimit: 64, payload: payload)
            default:  // a valid frame with a random tail cut
                f = Array(template.prefix(Int.random(in: 0...template.count, using: &rng)))
            }
            frames.append((UInt64(i) * 1_000_000, f))
        }
        let path = Paths.temporary("garbage.pcap")
        try writeFrames(path, linkType: 1, frames)
        let packets = try CaptureInspector.inspect(path: path)
        XCTAssertEqual(packets.count, 400)
        XCTAssertTrue(packets.allSatisfy { !$0.line.isEmpty })
        for p in packets { _ = p.jsonLine() }

        var keys = UEKeyState(muk: bmsc.muk, nafID: bmsc.nafID, bTID: bmsc.bTID)
        try keys.loadMSKMessage(try bmsc.mskMessage(), source: "msk.bin")
        let report = try CaptureReceiver.run(inputPath: path, outputPath: Paths.temporary("garbage-out.pcap"), keys: keys)
        XCTAssertEqual(report.totals.frames, 400)

        // A capture cut in the middle of a record: the frames before the cut are decoded.
        let cut = Paths.temporary("cut.pcap")
        try writeFrames(cut, linkType: 1, Array(frames.prefix(10)) + [(UInt64(0), [UInt8](repeating: 0, count: 64))])
        let whole = try Data(contentsOf: URL(fileURLWithPath: cut))
        try whole.prefix(whole.count - 7).write(to: URL(fileURLWithPath: cut))
        let (partial, damage) = try CaptureInspector.inspectPartially(path: cut)
        XCTAssertNotNil(damage)
        XCTAssertEqual(partial.count, 10)
        XCTAssertThrowsError(try CaptureInspector.inspect(path: cut))
        let r2 = try CaptureReceiver.run(inputPath: cut, outputPath: nil, keys: keys)
        XCTAssertEqual(r2.totals.frames, 10)
        XCTAssertNotNil(r2.inputError)
        XCTAssertFalse(r2.ok)
    }
}
