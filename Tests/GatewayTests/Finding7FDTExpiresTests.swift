import CryptoCore
import FLUTE
import Foundation
import Gateway
import KeyManagement
import PacketIO
import Receiver
import TestSupport
import XCTest

/// Issue 19 finding 7: FLUTE objects kept their names only while the input FDT's (absolute)
/// Expires was in the future of the gateway's clock. `replay --start-time` moves the frames, so
/// it must move each input FDT Instance's Expires by the same offset; an object that still has
/// no valid FDT entry is counted and warned about, never renamed silently.
final class Finding7FDTExpiresTests: XCTestCase {
    /// The first frame of flute-files.pcap (fixtures README: captured in November 2026; its FDT
    /// says Expires = send time + 1 hour).
    static let fixtureStart: UInt64 = 1_795_436_375
    /// The Content-Locations of flute-files.pcap (fixtures README table), with their sha256.
    static let names = [
        "http://bmsc.example.com/download/content.bin": "bd8b1743deaa7ba98d30a6e28fcc0d2d0650a6b3a9b6ad9f0b3fa668cf86c1d2",
        "http://bmsc.example.com/download/readme.txt": "b71351e074ae5186689a01fa9f5d0ad825722f813a7edb5258c08e6c9bf29e3b",
        "http://bmsc.example.com/download/clip.mp4": "719418448baf2e8704b4ce79e52947a25e1be9b033176cc53d89667d42eabe67",
        "http://bmsc.example.com/download/manifest.xml": "cb5e560e0ed01a202e0e8e4db12bcb8a46b9b46af37e04a191a12e348e2197b4",
    ]
    static let yaml = TestConfiguration.header + """

          - { name: files, kind: flute, destination: 127.0.0.30:4000, tsi: 7, keyGroup: 7 }
        """

    final class Warnings: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [String] = []
        func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
    }

    func replay(_ gw: TestGateway, input: String, start: UInt64?, warnings: Warnings) throws -> (String, ReplayJob.Report) {
        let output = gw.path("out-\(UUID().uuidString).pcap")
        var options = ReplayJob.Options(input: input, output: output)
        options.startNanoseconds = start.map { $0 * 1_000_000_000 }
        options.download.warning = { warnings.add($0) }
        let report = try ReplayJob(sessions: [], downloads: try DownloadSession.sessions(of: gw.configuration),
                                   keySource: try KeySource(manager: gw.manager), options: options).run()
        return (output, report)
    }

    /// Decodes the protected output as a UE does (`receive --objects`): MSK message, MIKEY
    /// object, DCF-wrapped FDT, DCFs.
    func decode(_ gw: TestGateway, output: String, report: ReplayJob.Report) throws -> DownloadReceiveReport {
        let muk = try SecretBytes.random(count: 32)
        var keys = UEKeyState(muk: muk, nafID: gw.configuration.bmscFQDN, bTID: "ue-f7")
        let t0 = Date(timeIntervalSince1970: TimeInterval(try XCTUnwrap(report.firstPacketTime)))
        let group = try XCTUnwrap(KeyGroup(7))
        _ = try keys.loadMSKMessage(try gw.manager.mskMessage(keyGroup: group, ueID: "ue-f7", muk: muk, verify: false, at: t0,
                                                              builder: MIKEYMSKMessageBuilder()), source: "test")
        let rx = ObjectReceiver(keys: keys, outputDirectory: nil)
        for f in try readFrames(output) {
            guard let u = f.udp, u.destination.port == 4000 else { continue }
            rx.receive(f.payload, flow: u.destination, at: Double(f.time) / 1e9)
        }
        rx.finish()
        return rx.report
    }

    /// Re-timed a week past its own time (its FDT Expires, one hour after capture, long gone
    /// at the new clock): every object keeps the Content-Location the input FDT gave it.
    func testReTimedReplayKeepsTheInputFDTNames() throws {
        let gw = try TestGateway(yaml: Self.yaml)
        let warnings = Warnings()
        let (output, report) = try replay(gw, input: try TestGateway.fixture("flute-files.pcap"),
                                          start: Self.fixtureStart + 7 * 86_400, warnings: warnings)
        // The re-timing happened (the output's clock is a week later).
        XCTAssertEqual(report.firstPacketTime.map { $0 / 86_400 }, Int64(Self.fixtureStart + 7 * 86_400) / 86_400)
        let stats = try XCTUnwrap(report.download.first)
        XCTAssertEqual(stats.objectsIn, 4)
        XCTAssertEqual(stats.objectsWithoutFDTEntry, 0, "\(stats)")
        XCTAssertNil(stats.rejected["fdt_expired"], "\(stats.rejected)")
        XCTAssertEqual(warnings.all, [])
        let decoded = try decode(gw, output: output, report: report)
        XCTAssertEqual(decoded.failed, 0, decoded.summary())
        XCTAssertEqual(Set(decoded.objects.map(\.contentLocation)), Set(Self.names.keys), decoded.summary())
        for o in decoded.objects { XCTAssertEqual(o.sha256, Self.names[o.contentLocation], o.contentLocation) }
    }

    /// The same capture moved a week by hand (so the gateway cannot know its FDT's Expires is
    /// stale): the FDT is expired at the capture's clock, so the four objects have no valid FDT
    /// entry. Each is counted, the expired FDT Instances are counted, and one warning names the
    /// channel — the output's `file:///object-N` names are never silent.
    func testObjectsWithoutAValidFDTEntryAreCountedAndWarnedOnce() throws {
        let gw = try TestGateway(yaml: Self.yaml)
        let moved = gw.path("moved.pcap")
        let r = try CaptureReader(path: try TestGateway.fixture("flute-files.pcap"))
        let w = try CaptureWriter(path: moved, dataLinkType: r.dataLinkType)
        while let f = try r.next() { w.write(timestampNanoseconds: f.timestampNanoseconds + 7 * 86_400 * 1_000_000_000, bytes: f.bytes) }
        try w.finish()
        w.close()
        let warnings = Warnings()
        let (output, report) = try replay(gw, input: moved, start: nil, warnings: warnings)
        let stats = try XCTUnwrap(report.download.first)
        XCTAssertEqual(stats.objectsIn, 4)
        XCTAssertEqual(stats.objectsWithoutFDTEntry, 4, "\(stats)")
        // The FDT (TOI 0) is repeated about once a second over the 5 s capture: every copy expired.
        XCTAssertGreaterThanOrEqual(stats.rejected["fdt_expired"] ?? 0, 1, "\(stats.rejected)")
        XCTAssertEqual(warnings.all.count, 1, "\(warnings.all)")
        let warning = try XCTUnwrap(warnings.all.first)
        XCTAssertTrue(warning.contains("FLUTE channel files") && warning.contains("no valid FDT entry") && warning.contains("expired"), warning)
        let decoded = try decode(gw, output: output, report: report)
        XCTAssertEqual(decoded.objects.filter { $0.contentLocation.hasPrefix("file:///object-") }.count, 4, decoded.summary())
    }

    /// The shift is applied where Expires meets the clock, in the FLUTE receiver: the fixture's
    /// packets a week late name their files only when Expires is moved by that week too.
    func testFLUTEReceiverComparesExpiresPlusShift() throws {
        let frames = try readFrames(try TestGateway.fixture("flute-files.pcap"))
        let week: Int64 = 7 * 86_400
        for (shift, named) in [(Int64(0), 0), (week, 4), (week - 7200, 0)] {
            var c = FLUTEReceiver.Configuration()
            c.expiresShiftSeconds = shift
            var rx = FLUTEReceiver(configuration: c)
            var names: [String] = [], unnamed = 0
            for f in frames where f.udp?.destination.port == 4000 {
                for case .object(let o) in rx.receive(datagram: f.payload, at: Double(f.time) / 1e9 + Double(week)) where o.toi != 0 {
                    if let file = o.file { names.append(file.contentLocation) } else { unnamed += 1 }
                }
            }
            XCTAssertEqual(names.count, named, "shift \(shift): \(names)")
            XCTAssertEqual(unnamed, 4 - named, "shift \(shift)")
            if named == 4 { XCTAssertEqual(Set(names), Set(Self.names.keys)) }
        }
    }
}
