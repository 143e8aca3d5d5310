import Foundation
import Gateway
import KeyManagement
import PacketIO
import TestSupport
import XCTest

/// `replay`'s pass 2 as a three-thread pipeline (read -> work -> write over SPSC rings) must
/// write exactly the bytes of the one-thread run (the same stages one after another), for
/// streaming and download sessions alike, and keep frames of any size. Correctness of those
/// bytes against independent implementations is shown elsewhere (ReplayTests: a UE decrypts
/// back to the input; ReceiverTests.CLITests: Debian libsrtp2 decrypts the replay output).
final class ReplayPipelineTests: XCTestCase {
    private func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    private func replay(_ gw: TestGateway, _ input: String, threads: Int, downloads: Bool = false) throws -> (Data, ReplayJob.Report) {
        let output = gw.path("out-\(threads)-\(UUID().uuidString).pcap")
        var options = ReplayJob.Options(input: input, output: output)
        options.threads = threads
        let report = try ReplayJob(sessions: gw.sessions,
                                   downloads: downloads ? try DownloadSession.sessions(of: gw.configuration) : [],
                                   keySource: try KeySource(manager: gw.manager), options: options).run()
        return (try bytes(output), report)
    }

    func testThreeThreadsWriteTheSameBytesAsOneOnEveryRTPFixture() throws {
        for name in ["rtp-seqwrap.pcap", "rtp-multicast.pcap", "rtp-h264-aac.pcap"] {
            let input: String
            do { input = try TestGateway.fixture(name) } catch { continue }
            let gw = try TestGateway()
            let (one, r1) = try replay(gw, input, threads: 1)
            let (three, r3) = try replay(gw, input, threads: 3)
            XCTAssertGreaterThan(r1.statistics.sessions.map(\.packetsOut).reduce(0, +), 0, name)
            XCTAssertEqual(r1.statistics.sessions.map(\.packetsOut), r3.statistics.sessions.map(\.packetsOut), name)
            XCTAssertEqual(r1.statistics.sessions.map(\.mikeySent), r3.statistics.sessions.map(\.mikeySent), name)
            XCTAssertEqual(one.count, three.count, name)
            XCTAssertTrue(one == three, "\(name): pipelined output differs from the one-thread output")
        }
    }

    func testThreeThreadsWriteTheSameBytesAsOneOnFLUTE() throws {
        let input = try TestGateway.fixture("flute-files.pcap")
        let gw = try TestGateway(yaml: DownloadTests.yaml)
        let (one, r1) = try replay(gw, input, threads: 1, downloads: true)
        let (three, r3) = try replay(gw, input, threads: 3, downloads: true)
        XCTAssertEqual(r1.download.map(\.objectsOut), r3.download.map(\.objectsOut))
        XCTAssertGreaterThan(r1.download.map(\.objectsOut).reduce(0, +), 0)
        XCTAssertTrue(one == three, "pipelined FLUTE output differs from the one-thread output")
    }

    /// Frames from 14 bytes to libpcap's maximum snapshot length (batches close on the arena,
    /// not only at 64 frames) pass through unchanged and in order.
    func testFramesOfEverySizePassThroughInOrder() throws {
        let gw = try TestGateway()
        let input = gw.path("sizes.pcap")
        var rng = SplitMix64(seed: 7)
        var written: [[UInt8]] = []
        do {
            let w = try CaptureWriter(path: input, dataLinkType: 1)   // Ethernet
            for i in 0..<300 {
                let n: Int
                switch i % 7 {
                case 0: n = 262_144
                case 1: n = 14   // the shortest Ethernet frame (shorter ones are dropped as malformed)
                case 2: n = Int(rng.next() % 70_000)
                default: n = 14 + Int(rng.next() % 1500)
                }
                var f = rng.bytes(max(14, n))
                f[12] = 0x88; f[13] = 0xB5   // local experimental EtherType: passed through
                w.write(timestampNanoseconds: 1_790_000_000_000_000_000 + UInt64(i) * 1_000_000, bytes: f)
                written.append(f)
            }
            w.close()
        }
        let (one, _) = try replay(gw, input, threads: 1)
        let (three, _) = try replay(gw, input, threads: 3)
        XCTAssertTrue(one == three)
        let out = gw.path("sizes-out.pcap")
        var options = ReplayJob.Options(input: input, output: out)
        options.threads = 3
        _ = try ReplayJob(sessions: gw.sessions, keySource: try KeySource(manager: gw.manager), options: options).run()
        let r = try CaptureReader(path: out)
        var k = 0
        while let f = try r.next() {
            XCTAssertLessThan(k, written.count)
            if k < written.count { XCTAssertTrue(Array(f.bytes) == written[k], "frame \(k) differs (\(f.bytes.count) vs \(written[k].count) bytes)") }
            k += 1
        }
        XCTAssertEqual(k, written.count)
    }
}
