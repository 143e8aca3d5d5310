import Foundation
@testable import Gateway
import KeyManagement
import PacketIO
import TestSupport
import XCTest

/// `replay` reads a capture once when every session starts near its beginning: pass 1 stops
/// at the last session's first packet, and pass 2 looks ahead in the file for where each stream
/// ends (`SessionLookahead`) instead of a first walk over the whole capture. For captures whose
/// times never go back the output must be the bytes the whole walk gives — the same MIKEY
/// messages at the same places — on real captures (a sequence-number wrap, multicast, two
/// sessions) and on streams that end early, pause and resume, re-timed with --start-time.
final class SessionLookaheadTests: XCTestCase {
    /// The test configuration with only the named sessions (a session the capture lacks makes
    /// pass 1 walk the whole capture).
    private static func yaml(_ names: [String]) -> String {
        TestGateway.header + "\n" + TestGateway.yaml.split(separator: "\n")
            .filter { line in names.contains { line.contains("name: \($0),") } }.joined(separator: "\n")
    }

    private func run(_ gw: TestGateway, _ input: String, threads: Int, wholeScan: Bool, start: UInt64? = nil,
                     progress: (ReplayJob.Progress) -> Void = { _ in }) throws -> (Data, ReplayJob.Report) {
        let output = gw.path("out-\(UUID().uuidString).pcap")
        var options = ReplayJob.Options(input: input, output: output)
        options.threads = threads
        options.scanWholeCapture = wholeScan
        options.startNanoseconds = start
        let report = try ReplayJob(sessions: gw.sessions, keySource: try KeySource(manager: gw.manager, senderIndices: .unreserved), options: options).run(progress: progress)
        return (try Data(contentsOf: URL(fileURLWithPath: output)), report)
    }

    private func assertSameAsWholeScan(_ gw: TestGateway, _ input: String, start: UInt64? = nil, _ name: String) throws -> ReplayJob.Report {
        let (whole, rw) = try run(gw, input, threads: 1, wholeScan: true, start: start)
        XCTAssertTrue(rw.scannedWholeCapture, name)
        XCTAssertGreaterThan(rw.statistics.sessions.map(\.mikeySent).reduce(0, +), gw.sessions.count, name)
        var last: ReplayJob.Report?
        for threads in [1, 2, 3] {
            var fractions: [Double] = []
            let (once, r) = try run(gw, input, threads: threads, wholeScan: false, start: start) { fractions.append($0.fractionRead) }
            XCTAssertFalse(r.scannedWholeCapture, "\(name): every session starts early, so pass 1 should stop there")
            XCTAssertEqual(r.statistics.sessions.map(\.mikeySent), rw.statistics.sessions.map(\.mikeySent), "\(name), \(threads) threads")
            XCTAssertTrue(once == whole, "\(name), \(threads) threads: reading once gave other bytes than the whole first pass")
            XCTAssertEqual(r.firstPacketTime, rw.firstPacketTime, name)
            XCTAssertEqual(r.lastPacketTime, rw.lastPacketTime, name)
            // Progress: by file position, never backwards, ending at the whole file.
            XCTAssertEqual(fractions, fractions.sorted(), name)
            XCTAssertEqual(fractions.last, 1, name)
            last = r
        }
        return try XCTUnwrap(last)
    }

    func testRealCapturesGiveTheBytesOfTheWholeFirstPass() throws {
        for (fixture, names) in [("rtp-h264-aac.pcap", ["video", "audio"]), ("rtp-seqwrap.pcap", ["wrap"]),
                                 ("rtp-multicast.pcap", ["mcvideo", "mcaudio"])] {
            let input: String
            do { input = try TestGateway.fixture(fixture) } catch { continue }
            let gw = try TestGateway(yaml: Self.yaml(names))
            XCTAssertEqual(gw.sessions.count, names.count)
            _ = try assertSameAsWholeScan(gw, input, fixture)
        }
    }

    /// Three streams of 15, 60 and 120 s: the first two end long before the capture does, so
    /// their messages must stop there.
    private func threeStreams(_ gw: TestGateway, start: UInt64) throws -> String {
        let path = gw.path("streams.pcap")
        _ = try SyntheticCapture(
            source: .v4(0x0A00_000A),
            streams: [
                .init(destination: TransportAddress(.v4(0x7F00_0014), 5004), ssrc: 0x1111_2222, packetsPerSecond: 400, payloadBytes: 200...400),
                .init(destination: TransportAddress(.v4(0x7F00_0014), 5006), ssrc: 0x3333_4444, packetsPerSecond: 100, payloadBytes: 200...400),
                .init(destination: TransportAddress(.v4(0xEFFF_0A01), 5022), ssrc: 0x5555_6666, packetsPerSecond: 50, payloadBytes: 200...400),
            ],
            startNanoseconds: start, packetsPerStream: 6000).write(to: path)
        return path
    }

    /// Copies `source` to `path`, leaving out the frames `drop` picks and adding `extra` at the end.
    private func rewrite(_ source: String, to path: String, drop: (UInt64, UDPFrame) -> Bool = { _, _ in false },
                         extra: (CapturedFrame, UDPFrame) -> Bool = { _, _ in false }) throws -> Int {
        let reader = try CaptureReader(path: source)
        let writer = try CaptureWriter(path: path, dataLinkType: reader.dataLinkType)
        var dropped = 0
        var appended: (UInt64, [UInt8])?
        while let f = try reader.next() {
            if case .udp(let u) = FrameParser.classify(f.bytes.baseAddress!, length: f.bytes.count, linkType: .ethernet) {
                if appended == nil, extra(f, u) { appended = (f.timestampNanoseconds, Array(f.bytes)) }
                if drop(f.timestampNanoseconds, u) { dropped += 1; continue }
            }
            writer.write(timestampNanoseconds: f.timestampNanoseconds, bytes: f.bytes)
        }
        if let (t, b) = appended { writer.write(timestampNanoseconds: t, bytes: b) }
        writer.close()
        return dropped
    }

    /// The same capture as pcapng (written by Wireshark's editcap, read through libpcap: no
    /// mapping, so pass 1 walks it all) gives the bytes the classic pcap read once gives.
    func testPcapngGetsTheWholeFirstPassAndTheSameBytes() throws {
        let source = try TestGateway.fixture("rtp-h264-aac.pcap")
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/editcap") else { throw XCTSkip("editcap (wireshark-common) not installed") }
        let gw = try TestGateway(yaml: Self.yaml(["video", "audio"]))
        let ng = gw.path("capture.pcapng")
        XCTAssertEqual(try Tool.run("/usr/bin/editcap", ["-F", "pcapng", source, ng]).status, 0)
        let (once, r) = try run(gw, source, threads: 2, wholeScan: false)
        XCTAssertFalse(r.scannedWholeCapture)
        for threads in [1, 2] {
            var fractions: [Double] = []
            let (whole, rw) = try run(gw, ng, threads: threads, wholeScan: false) { fractions.append($0.fractionRead) }
            XCTAssertTrue(rw.scannedWholeCapture)
            XCTAssertTrue(whole == once, "pcapng, \(threads) threads: other bytes than the pcap")
            XCTAssertEqual(fractions, fractions.sorted())
            XCTAssertEqual(fractions.last, 1)
        }
    }

    /// The three streams with a 20 s pause in the second (its messages go on through it: the
    /// stream resumes), with and without --start-time.
    func testStreamsThatEndEarlyOrPauseGiveTheBytesOfTheWholeFirstPass() throws {
        let gw = try TestGateway(yaml: Self.yaml(["video", "audio", "mcaudio"]))
        let start: UInt64 = 1_790_000_003_000_000_000
        let input = gw.path("streams-pause.pcap")
        let dropped = try rewrite(try threeStreams(gw, start: start), to: input, drop: { t, u in
            (u.destination.port == 5006 || u.destination.port == 5007) && t >= start + 20_000_000_000 && t < start + 40_000_000_000
        })
        XCTAssertGreaterThan(dropped, 1500)
        let r = try assertSameAsWholeScan(gw, input, "pause")
        // About one message a second while each stream lasts.
        let mikey = r.statistics.sessions.map(\.mikeySent)
        XCTAssertTrue(mikey[0] < mikey[1] && mikey[1] < mikey[2], "\(mikey)")
        _ = try assertSameAsWholeScan(gw, input, start: 1_790_000_100_500_000_000, "pause, --start-time")
    }

    /// Five streams that end one after another (7.5, 15, 30, 60 and 120 s): the same bytes as the
    /// whole first pass, and the look-ahead reads less than the file once — from where the first
    /// stream ends to the end, not once per stream that ends (that first search to the end notes
    /// every session's last packet).
    func testStreamsEndingOneAfterAnotherCostLessThanOneWalk() throws {
        let gw = try TestGateway()
        XCTAssertEqual(gw.sessions.count, 5)
        let input = gw.path("five.pcap")
        let ports: [(UInt32, UInt16)] = [(0x7F00_0014, 5004), (0x7F00_0014, 5006), (0x7F00_0014, 5010), (0xEFFF_0A01, 5020), (0xEFFF_0A01, 5022)]
        let frames = try SyntheticCapture(
            source: .v4(0x0A00_000A),
            streams: ports.enumerated().map { k, p in
                .init(destination: TransportAddress(.v4(p.0), p.1), ssrc: 0x1000_0000 + UInt32(k), packetsPerSecond: 400 >> k, payloadBytes: 200...300)
            },
            startNanoseconds: 1_790_000_003_000_000_000, packetsPerStream: 3000).write(to: input)
        let r = try assertSameAsWholeScan(gw, input, "five streams")
        XCTAssertEqual(r.statistics.sessions.filter { $0.mikeySent > 0 }.count, 5)
        let job = ReplayJob(sessions: gw.sessions, keySource: try KeySource(manager: gw.manager, senderIndices: .unreserved),
                            options: .init(input: input, output: gw.path("five-out.pcap")))
        _ = try job.run()
        XCTAssertGreaterThan(job.lookaheadRecords, frames / 2, "the first stream ends at 7.5 s of 120: its search runs to the end")
        XCTAssertLessThan(job.lookaheadRecords, frames, "\(job.lookaheadRecords) records looked at for \(frames) in the capture")
    }

    /// A capture whose last frame is a stray copy of one from the first stream's second second
    /// (times going back): that stream's messages still stop when it does — at 15 s, though the
    /// capture goes on to 120 s — as without the stray. (The whole first pass took the stray as
    /// the stream's last packet and stopped them at 2 s: for such captures the two differ.)
    func testAStrayEarlyFrameAtTheEndChangesNoMessage() throws {
        let gw = try TestGateway(yaml: Self.yaml(["video", "audio", "mcaudio"]))
        let start: UInt64 = 1_790_000_003_000_000_000
        let plain = try threeStreams(gw, start: start)
        let input = gw.path("stray.pcap")
        _ = try rewrite(plain, to: input, extra: { f, u in u.destination.port == 5004 && f.timestampNanoseconds > start + 1_500_000_000 })
        let (_, without) = try run(gw, plain, threads: 2, wholeScan: false)
        let (_, with) = try run(gw, input, threads: 2, wholeScan: false)
        XCTAssertFalse(with.scannedWholeCapture)
        XCTAssertEqual(with.statistics.sessions.map(\.mikeySent), without.statistics.sessions.map(\.mikeySent))
        XCTAssertEqual(with.statistics.sessions[0].rtpPackets, without.statistics.sessions[0].rtpPackets + 1)
        XCTAssertLessThan(without.statistics.sessions[0].mikeySent, without.statistics.sessions[2].mikeySent / 4)
    }

    /// A capture cut inside its last record fails with the reader's error — now met in pass 2,
    /// after output was written — and leaves no output behind, on every thread count.
    func testACutCaptureLeavesNoOutput() throws {
        let gw = try TestGateway(yaml: Self.yaml(["video", "audio"]))
        let whole = try Data(contentsOf: URL(fileURLWithPath: try TestGateway.fixture("rtp-h264-aac.pcap")))
        let input = gw.path("cut.pcap")
        try whole.prefix(whole.count - 10).write(to: URL(fileURLWithPath: input))
        for threads in [1, 2, 3] {
            for wholeScan in [false, true] {
                let output = gw.path("cut-out-\(threads)-\(wholeScan).pcap")
                var options = ReplayJob.Options(input: input, output: output)
                options.threads = threads
                options.scanWholeCapture = wholeScan
                XCTAssertThrowsError(try ReplayJob(sessions: gw.sessions, keySource: try KeySource(manager: gw.manager, senderIndices: .unreserved), options: options).run()) { e in
                    XCTAssertTrue("\(e)".contains("cut.pcap") && "\(e)".contains("truncated dump file"), "\(e)")
                }
                XCTAssertFalse(FileManager.default.fileExists(atPath: output), "threads \(threads), whole scan \(wholeScan): a failed run left its output")
            }
        }
    }
}
