import Foundation
import Gateway
import KeyManagement
import PacketIO
import TestSupport
import XCTest

/// `replay`'s pass 2 on two or three lanes (each thread reads, works and writes every second or
/// third batch, taking turns through SPSC rings) must write exactly the bytes of the one-thread
/// run (the same steps one after another), for
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
                                   keySource: try KeySource(manager: gw.manager, senderIndices: .unreserved), options: options).run()
        return (try bytes(output), report)
    }

    func testEveryLaneCountWritesTheSameBytesAsOneOnEveryRTPFixture() throws {
        for name in ["rtp-seqwrap.pcap", "rtp-multicast.pcap", "rtp-h264-aac.pcap"] {
            let input: String
            do { input = try TestGateway.fixture(name) } catch { continue }
            let gw = try TestGateway()
            let (one, r1) = try replay(gw, input, threads: 1)
            let (three, r3) = try replay(gw, input, threads: 3)
            let (two, r2) = try replay(gw, input, threads: 2)
            XCTAssertEqual(r1.statistics.sessions.map(\.packetsOut), r2.statistics.sessions.map(\.packetsOut), name)
            XCTAssertTrue(one == two, "\(name): two-thread output differs from the one-thread output")
            XCTAssertGreaterThan(r1.statistics.sessions.map(\.packetsOut).reduce(0, +), 0, name)
            XCTAssertEqual(r1.statistics.sessions.map(\.packetsOut), r3.statistics.sessions.map(\.packetsOut), name)
            XCTAssertEqual(r1.statistics.sessions.map(\.mikeySent), r3.statistics.sessions.map(\.mikeySent), name)
            XCTAssertEqual(one.count, three.count, name)
            XCTAssertTrue(one == three, "\(name): pipelined output differs from the one-thread output")
            let (four, _) = try replay(gw, input, threads: 4)
            XCTAssertTrue(one == four, "\(name): four-lane output differs from the one-thread output")
        }
    }

    /// A capture big enough for pass 1 to be split over the threads (`CaptureReader.scanInParts`,
    /// 4 MiB a part at least): three sessions of different lengths (their last packets, hence
    /// their last MIKEY messages, fall in different parts), re-timed with --start-time. Every
    /// thread count writes the bytes of the one-thread run and reports the same times.
    func testPassOneSplitOverThreadsChangesNothing() throws {
        let gw = try TestGateway()
        let input = gw.path("long.pcap")
        let capture = SyntheticCapture(
            source: .v4(0x0A00_000A),
            streams: [
                .init(destination: TransportAddress(.v4(0x7F00_0014), 5004), ssrc: 0x1111_2222, packetsPerSecond: 400, payloadBytes: 900...1200),
                .init(destination: TransportAddress(.v4(0x7F00_0014), 5006), ssrc: 0x3333_4444, packetsPerSecond: 100, payloadBytes: 900...1200),
                .init(destination: TransportAddress(.v4(0xEFFF_0A01), 5022), ssrc: 0x5555_6666, packetsPerSecond: 50, payloadBytes: 900...1200),
            ],
            startNanoseconds: 1_790_000_003_000_000_000, packetsPerStream: 6000)
        try capture.write(to: input)
        let size = (try FileManager.default.attributesOfItem(atPath: input)[.size] as? NSNumber)?.intValue ?? 0
        XCTAssertGreaterThan(size, 3 * (4 << 20), "the capture must be long enough to split in three")
        func run(_ threads: Int) throws -> (Data, ReplayJob.Report) {
            let output = gw.path("long-out-\(threads).pcap")
            var options = ReplayJob.Options(input: input, output: output)
            options.threads = threads
            options.startNanoseconds = 1_790_000_100_500_000_000
            let report = try ReplayJob(sessions: gw.sessions, keySource: try KeySource(manager: gw.manager, senderIndices: .unreserved), options: options).run()
            return (try bytes(output), report)
        }
        let (one, r1) = try run(1)
        XCTAssertEqual(r1.threads.map(\.stages), ["read + work + write"])
        XCTAssertGreaterThan(r1.threads[0].cpuSeconds, 0)
        XCTAssertEqual(r1.threads[0].waitSeconds, 0)
        // Each step took time, and one thread's steps fit in the run.
        let s1 = r1.threads[0].steps
        XCTAssertTrue(s1.read > 0 && s1.work > 0 && s1.protect > 0 && s1.layOut > 0 && s1.write > 0, "\(s1)")
        XCTAssertLessThanOrEqual(s1.read + s1.work + s1.protect + s1.layOut + s1.write, r1.seconds)
        XCTAssertGreaterThan(r1.scanSeconds, 0)
        XCTAssertEqual(r1.firstPacketTime, 1_790_000_100)
        XCTAssertEqual(r1.lastPacketTime, 1_790_000_100 + 120)
        XCTAssertEqual(r1.statistics.sessions.filter { $0.packetsOut > 0 }.count, 3)
        for threads in [2, 3, 4] {
            let (out, r) = try run(threads)
            XCTAssertTrue(out == one, "\(threads) threads: output differs from the one-thread output")
            // The report has each lane's steps, CPU time and time waiting for its turns (the
            // summary's "CPU per thread" line).
            XCTAssertEqual(r.threads.map(\.stages), Array(repeating: "read + work + write", count: threads))
            XCTAssertTrue(r.threads.allSatisfy { $0.cpuSeconds > 0 && $0.waitSeconds > 0 && $0.waitSeconds < r.seconds }, "\(r.threads)")
            // Every lane did every step; the steps done in turn never overlap, so each one's sum
            // over the lanes fits in the run (the turn bound).
            XCTAssertTrue(r.threads.allSatisfy { $0.steps.read > 0 && $0.steps.work > 0 && $0.steps.protect > 0 && $0.steps.layOut > 0 && $0.steps.write > 0 },
                          "\(r.threads)")
            XCTAssertLessThanOrEqual(r.turnBound, r.seconds)
            XCTAssertEqual(r.turnBound, max(r.steps.read, r.steps.work, r.steps.write))
            XCTAssertEqual(r.firstPacketTime, r1.firstPacketTime)
            XCTAssertEqual(r.lastPacketTime, r1.lastPacketTime)
            XCTAssertEqual(r.statistics.sessions.map(\.mikeySent), r1.statistics.sessions.map(\.mikeySent), "\(threads) threads")
        }
    }

    /// Every IP header checksum and UDP checksum of the replay output (protected RTP/RTCP with
    /// the UDP checksum filled in by the write stage, injected MIKEY) checks out in tshark, an
    /// independent implementation, with either thread count; with `--udp-checksum zero` the
    /// protected IPv4 frames carry none.
    func testReplayOutputChecksumsVerifyInTshark() throws {
        guard Tool.isInstalled(Tool.tshark) else { throw XCTSkip("tshark not installed") }
        let input = try TestGateway.fixture("rtp-multicast.pcap")
        let gw = try TestGateway()
        for threads in [1, 2, 3] {
            for policy in [UDPFrameEditor.ChecksumPolicy.recompute, .zeroForIPv4] {
                let output = gw.path("checksums-\(threads)-\(policy.rawValue).pcap")
                var options = ReplayJob.Options(input: input, output: output)
                options.threads = threads
                options.checksum = policy
                let report = try ReplayJob(sessions: gw.sessions, keySource: try KeySource(manager: gw.manager, senderIndices: .unreserved), options: options).run()
                XCTAssertGreaterThan(report.statistics.sessions.map(\.packetsOut).reduce(0, +), 1000)
                let out = try Tool.run(Tool.tshark, ["-r", output, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
                                                     "-T", "fields", "-e", "ip.checksum.status", "-e", "udp.checksum.status", "-e", "udp.checksum"]).stdout
                let lines = out.split(separator: "\n")
                XCTAssertGreaterThan(lines.count, 1000)
                var verified = 0, absent = 0
                for line in lines {
                    let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                    XCTAssertEqual(f.first, "1", "IP header checksum: \(line)")
                    if f.count > 2, f[2] == "0x0000" { absent += 1; continue }
                    XCTAssertEqual(f.count > 1 ? f[1] : "", "1", "UDP checksum (threads \(threads), \(policy)): \(line)")
                    verified += 1
                }
                if policy == .recompute {
                    XCTAssertEqual(absent, 0, "threads \(threads)")
                } else {
                    XCTAssertGreaterThan(absent, 1000, "threads \(threads): protected IPv4 frames should carry no UDP checksum")
                }
            }
        }
    }

    func testEveryLaneCountWritesTheSameBytesAsOneOnFLUTE() throws {
        let input = try TestGateway.fixture("flute-files.pcap")
        let gw = try TestGateway(yaml: DownloadTests.yaml)
        let (one, r1) = try replay(gw, input, threads: 1, downloads: true)
        let (three, r3) = try replay(gw, input, threads: 3, downloads: true)
        let (two, _) = try replay(gw, input, threads: 2, downloads: true)
        XCTAssertTrue(one == two, "two-thread FLUTE output differs from the one-thread output")
        XCTAssertEqual(r1.download.map(\.objectsOut), r3.download.map(\.objectsOut))
        XCTAssertGreaterThan(r1.download.map(\.objectsOut).reduce(0, +), 0)
        XCTAssertTrue(one == three, "pipelined FLUTE output differs from the one-thread output")
        let (four, _) = try replay(gw, input, threads: 4, downloads: true)
        XCTAssertTrue(one == four, "four-lane FLUTE output differs from the one-thread output")
    }

    /// A capture that ends inside a record: every thread count stops with the reader's error,
    /// naming the file and the offset, without hanging on a ring.
    func testACutCaptureFailsWithTheReadersErrorOnEveryThreadCount() throws {
        let gw = try TestGateway()
        let whole = try Data(contentsOf: URL(fileURLWithPath: try TestGateway.fixture("rtp-multicast.pcap")))
        let input = gw.path("cut.pcap")
        try whole.prefix(whole.count - 10).write(to: URL(fileURLWithPath: input))
        for threads in [1, 2, 3, 4] {
            XCTAssertThrowsError(try replay(gw, input, threads: threads), "threads \(threads)") { e in
                XCTAssertTrue("\(e)".contains("cut.pcap") && "\(e)".contains("truncated dump file"), "threads \(threads): \(e)")
            }
        }
    }

    /// A failure in the work step (here: the capture re-timed to 2020, before the key store's
    /// first MSK, so no key epoch exists for it) stops every lane at its next turn: the run
    /// throws the key source's error on every thread count, without hanging, and leaves no
    /// output.
    func testAWorkStepFailureStopsEveryLane() throws {
        let gw = try TestGateway()
        let input = try TestGateway.fixture("rtp-h264-aac.pcap")
        var messages: Set<String> = []
        for threads in [1, 2, 3] {
            let output = gw.path("past-\(threads).pcap")
            var options = ReplayJob.Options(input: input, output: output)
            options.threads = threads
            options.startNanoseconds = 1_577_836_800_000_000_000   // 2020-01-01T00:00:00Z
            XCTAssertThrowsError(try ReplayJob(sessions: gw.sessions, keySource: try KeySource(manager: gw.manager, senderIndices: .unreserved), options: options).run(),
                                 "threads \(threads)") { messages.insert("\($0)") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: output), "threads \(threads): a failed run left its output")
        }
        XCTAssertEqual(messages.count, 1, "\(messages)")
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
        let (two, _) = try replay(gw, input, threads: 2)
        XCTAssertTrue(one == three)
        XCTAssertTrue(one == two)
        let out = gw.path("sizes-out.pcap")
        var options = ReplayJob.Options(input: input, output: out)
        options.threads = 3
        _ = try ReplayJob(sessions: gw.sessions, keySource: try KeySource(manager: gw.manager, senderIndices: .unreserved), options: options).run()
        let r = try CaptureReader(path: out)
        var k = 0
        while let f = try r.next() {
            XCTAssertLessThan(k, written.count)
            if k < written.count { XCTAssertTrue(Array(f.bytes) == written[k], "frame \(k) differs (\(f.bytes.count) vs \(written[k].count) bytes)") }
            k += 1
        }
        XCTAssertEqual(k, written.count)
    }

    /// Captures shorter than there are lanes: none, one frame, and one batch and a frame (the
    /// lane after the one that read the last batch stops, and so does every other), on every
    /// thread count: the one-thread bytes, no hang.
    func testCapturesShorterThanTheLanesEndCleanly() throws {
        let gw = try TestGateway()
        let source = try CaptureReader(path: try TestGateway.fixture("rtp-multicast.pcap"))
        var frames: [(UInt64, [UInt8])] = []
        while frames.count < 257, let f = try source.next() { frames.append((f.timestampNanoseconds, Array(f.bytes))) }
        XCTAssertEqual(frames.count, 257)
        for count in [0, 1, 257] {
            let input = gw.path("short-\(count).pcap")
            let w = try CaptureWriter(path: input, dataLinkType: source.dataLinkType)
            for (t, b) in frames.prefix(count) { w.write(timestampNanoseconds: t, bytes: b) }
            w.close()
            let (one, r1) = try replay(gw, input, threads: 1)
            for threads in [2, 3, 4] {
                let (out, r) = try replay(gw, input, threads: threads)
                XCTAssertTrue(out == one, "\(count) frames, \(threads) threads")
                XCTAssertEqual(r.statistics.framesIn, r1.statistics.framesIn)
                XCTAssertEqual(r.threads.count, threads)
            }
            XCTAssertEqual(r1.statistics.framesIn, count)
        }
    }
}
