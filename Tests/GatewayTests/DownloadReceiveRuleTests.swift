import CryptoCore
import FLUTE
import Foundation
import Gateway
import KeyManagement
import MIKEY
import PacketIO
import Receiver
import TestSupport
import XCTest

/// Issue 19 finding 10, download side: `receive --objects` names as rule violations an FDT sent
/// unwrapped, a Content-MD5 that is not the object's, and a DCF sent before the MIKEY object
/// that keys it. Each fault is planted in the gateway's own (correct) output of flute-files.pcap.
final class DownloadReceiveRuleTests: XCTestCase {
    static let port: UInt16 = 4000

    func replay(plainFDT: Bool) throws -> (TestGateway, String, ReplayJob.Report) {
        let gw = try TestGateway(yaml: DownloadTests.yaml)
        let output = gw.path("out.pcap")
        var options = ReplayJob.Options(input: try TestGateway.fixture("flute-files.pcap"), output: output)
        options.download.plainFDT = plainFDT
        let report = try ReplayJob(sessions: [], downloads: try DownloadSession.sessions(of: gw.configuration),
                                   keySource: try KeySource(manager: gw.manager), options: options).run()
        return (gw, output, report)
    }

    func keys(_ gw: TestGateway, _ report: ReplayJob.Report, muk: SecretBytes) throws -> UEKeyState {
        var keys = UEKeyState(muk: muk, nafID: gw.configuration.bmscFQDN, bTID: "ue-rules")
        let t0 = Date(timeIntervalSince1970: TimeInterval(try XCTUnwrap(report.firstPacketTime)))
        _ = try keys.loadMSKMessage(try gw.manager.mskMessage(keyGroup: try XCTUnwrap(KeyGroup(7)), ueID: "ue-rules", muk: muk, verify: false,
                                                              at: t0, builder: MIKEYMSKMessageBuilder()), source: "test")
        return keys
    }

    func receive(_ frames: [Frame], keys: UEKeyState, allowPlainFDT: Bool = false) -> DownloadReceiveReport {
        let rx = ObjectReceiver(keys: keys, outputDirectory: nil)
        rx.allowPlainFDT = allowPlainFDT
        for (n, f) in frames.enumerated() {
            guard let u = f.udp, u.destination.port == Self.port else { continue }
            rx.receive(f.payload, flow: u.destination, at: Double(f.time) / 1e9, frame: n + 1)
        }
        rx.finish()
        return rx.report
    }

    /// Where `needle` first occurs in `hay` at or after `from`.
    func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard hay.count >= needle.count else { return nil }
        return (from...(hay.count - needle.count)).first { Array(hay[$0..<$0 + needle.count]) == needle }
    }

    func toi(_ f: Frame) -> UInt64? {
        guard f.udp?.destination.port == Self.port, let p = try? ALCPacket(decoding: f.payload) else { return nil }
        return p.header.toi
    }

    /// The gateway's output as it is: every file recovered, no rule broken.
    func testCorrectOutputBreaksNoRule() throws {
        let (gw, output, report) = try replay(plainFDT: false)
        let r = receive(try readFrames(output), keys: try keys(gw, report, muk: try SecretBytes.random(count: 32)))
        XCTAssertEqual(r.recovered, 4, r.summary())
        XCTAssertEqual(r.violationCounts, [:], r.summary())
        XCTAssertTrue(r.ok)
    }

    /// `--plain-fdt` output: each FDT Instance (one per object, 4) is an `fdt_unprotected`
    /// violation unless the receiver is told to accept plain FDTs.
    func testUnwrappedFDTIsAViolationUnlessAllowed() throws {
        let (gw, output, report) = try replay(plainFDT: true)
        let frames = try readFrames(output)
        let k = try keys(gw, report, muk: try SecretBytes.random(count: 32))
        let strict = receive(frames, keys: k)
        XCTAssertEqual(strict.recovered, 4, strict.summary())
        XCTAssertEqual(strict.plainFDTs, 4)
        XCTAssertEqual(strict.violationCounts, ["fdt_unprotected": 4], strict.summary())
        XCTAssertEqual(strict.violations.first?.rule.contains("6.6.3.2"), true)
        XCTAssertEqual(strict.violations.first.map { self.toi(frames[$0.frame - 1]) }, 0, "the violation points at an FDT packet")
        XCTAssertFalse(strict.ok)
        let allowed = receive(frames, keys: k, allowPlainFDT: true)
        XCTAssertEqual(allowed.violationCounts, [:], allowed.summary())
        XCTAssertTrue(allowed.ok)
    }

    /// The readme's Content-MD5 changed in the (plain, so unsigned) FDT: one violation, naming it.
    func testContentMD5ThatIsNotTheObjectsIsAViolation() throws {
        let (gw, output, report) = try replay(plainFDT: true)
        var frames = try readFrames(output)
        var changed = 0
        for i in frames.indices where toi(frames[i]) == 0 {
            guard let u = frames[i].udp else { continue }
            let payload = frames[i].payload
            guard let name = find(Array("download/readme.txt\"".utf8), in: payload, from: 0),
                  let md5 = find(Array("Content-MD5=\"".utf8), in: payload, from: name) else { continue }
            let offset = md5 + "Content-MD5=\"".utf8.count
            var bytes = frames[i].bytes
            let at = u.payloadOffset + offset
            bytes[at] = bytes[at] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            bytes.withUnsafeMutableBytes { UDPFrameEditor.fillUDPChecksum($0.baseAddress!, frame: u) }
            frames[i].bytes = bytes
            changed += 1
        }
        XCTAssertEqual(changed, 1, "one FDT Instance lists readme.txt")
        let r = receive(frames, keys: try keys(gw, report, muk: try SecretBytes.random(count: 32)), allowPlainFDT: true)
        XCTAssertEqual(r.violationCounts, ["content_md5_mismatch": 1], r.summary())
        XCTAssertTrue(r.violations.first?.detail.contains("download/readme.txt") ?? false, r.summary())
        XCTAssertFalse(r.ok)
    }

    /// The first MIKEY object (TOI 1) moved after the first DCF (TOI 2): that DCF is still
    /// opened once its MTK arrives, but it was on the channel first — one violation.
    func testMIKEYObjectAfterTheDCFItKeysIsAViolation() throws {
        let (gw, output, report) = try replay(plainFDT: false)
        let frames = try readFrames(output)
        let tois = frames.map(toi)
        // The gateway's order: FDT (TOI 0), MIKEY (TOI 1), DCF (TOI 2), ... (DownloadEngine).
        XCTAssertEqual(Array(tois.compactMap { $0 }.prefix(3)), [0, 1, 2])
        let mikeyRun = try XCTUnwrap(tois.firstIndex(of: 1))
        var mikeyEnd = mikeyRun
        while mikeyEnd < tois.count, tois[mikeyEnd] == 1 { mikeyEnd += 1 }
        let dcfEnd = try XCTUnwrap(tois.lastIndex(of: 2))
        var moved = Array(frames[..<mikeyRun]) + Array(frames[mikeyEnd...dcfEnd])
        for var f in frames[mikeyRun..<mikeyEnd] { f.time = frames[dcfEnd].time; moved.append(f) }
        moved += frames[(dcfEnd + 1)...]
        XCTAssertEqual(moved.count, frames.count)
        let r = receive(moved, keys: try keys(gw, report, muk: try SecretBytes.random(count: 32)))
        XCTAssertEqual(r.recovered, 4, r.summary())
        XCTAssertEqual(r.violationCounts, ["mtk_object_after_dcf": 1], r.summary())
        XCTAssertTrue(r.violations.first?.detail.contains("TOI 2") ?? false, r.summary())
        XCTAssertFalse(r.ok)
    }

    /// Through the binary: `receive --objects` fails (exit 1) on `--plain-fdt` output naming
    /// fdt_unprotected, and passes (exit 0) with --allow-plain-fdt.
    func testReceiveObjectsCLIAndAllowPlainFDT() throws {
        guard let binary = Tool.product("mbms-gateway") else { throw XCTSkip("mbms-gateway not built") }
        let (gw, output, report) = try replay(plainFDT: true)
        let muk = try SecretBytes.random(count: 32)
        let t0 = Date(timeIntervalSince1970: TimeInterval(try XCTUnwrap(report.firstPacketTime)))
        let message = try gw.manager.mskMessage(keyGroup: try XCTUnwrap(KeyGroup(7)), ueID: "ue-cli", muk: muk, verify: false, at: t0,
                                                builder: MIKEYMSKMessageBuilder())
        try Data(message).write(to: URL(fileURLWithPath: gw.path("msk.bin")))
        try Data(muk.withUnsafeBytes { Hex.encode($0) }.utf8).write(to: URL(fileURLWithPath: gw.path("muk.hex")))
        chmod(gw.path("muk.hex"), 0o600)
        let base = ["receive", "--input", output, "--muk-file", gw.path("muk.hex"), "--ue-id", "ue-cli", "--naf-id", gw.configuration.bmscFQDN,
                    "--msk-message", gw.path("msk.bin"), "--objects", gw.path("objects")]
        var r = try Tool.run(binary.path, base)
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("fdt_unprotected 4"), r.stdout)
        r = try Tool.run(binary.path, base + ["--allow-plain-fdt"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("FLUTE: no rule violations"), r.stdout)
    }
}
