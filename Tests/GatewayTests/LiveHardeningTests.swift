import Foundation
@testable import Gateway
import KeyManagement
import Logging
import PacketIO
import SRTP
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Issue 19 finding 11, live-mode hardening: per-SSRC state is bounded (LRU eviction, counted,
/// summary bounded) without ever reusing an index; `source:` filtering; packets outside the
/// session's limits (too large, empty RTP payload, RTCP length fields that do not add up) are
/// dropped and counted; `/healthz`; a `# HELP` for every metric; quoted logfmt and JSON logs.
final class LiveHardeningTests: XCTestCase {
    static let src = TransportAddress(.v4(0x7F00_000A), 5004)        // 127.0.0.10
    static let rtp = TransportAddress(.v4(0x7F00_0014), 5004)        // session "video" of TestGateway
    static let rtcp = TransportAddress(.v4(0x7F00_0014), 5005)

    static func rtpPacket(ssrc: UInt32, seq: UInt16, timestamp: UInt32 = 0, payload: [UInt8]) -> [UInt8] {
        [0x80, 96, UInt8(seq >> 8), UInt8(seq & 0xFF)] + withUnsafeBytes(of: timestamp.bigEndian) { Array($0) }
            + withUnsafeBytes(of: ssrc.bigEndian) { Array($0) } + payload
    }

    /// RTCP SR without report blocks (28 octets, length field 6), SSRC `ssrc`.
    static func senderReport(ssrc: UInt32, fill: UInt8) -> [UInt8] {
        [0x80, 200, 0, 6] + withUnsafeBytes(of: ssrc.bigEndian) { Array($0) } + [UInt8](repeating: fill, count: 20)
    }

    static func frame(_ payload: [UInt8], from source: TransportAddress = src, to d: TransportAddress = rtp) -> [UInt8] {
        UDPFrameEditor.buildFrame(linkType: .ethernet, template: nil, source: source, destination: d, hopLimit: 64, payload: payload)
    }

    static func writeCapture(_ frames: [[UInt8]], to path: String) throws {
        let w = try CaptureWriter(path: path, dataLinkType: LinkType.ethernet.rawValue)
        for (i, f) in frames.enumerated() { w.write(timestampNanoseconds: 1_795_000_000_000_000_000 + UInt64(i) * 100_000, bytes: f) }
        w.close()
    }

    // MARK: - Bounded flows

    /// 1000 distinct SSRCs through `replay` (StreamingEngine): at most 64 flows are kept, the
    /// other 936 evictions are counted, and the summary lines stay short. Before the bound every
    /// SSRC was kept and the "ROC at end" line listed them all.
    func testThousandSSRCsKeepAtMost64FlowsAndABoundedSummary() throws {
        let gw = try TestGateway()
        var frames: [[UInt8]] = []
        for k in 0..<1000 {
            frames.append(Self.frame(Self.rtpPacket(ssrc: 0x1000_0000 + UInt32(k), seq: UInt16(k), payload: [UInt8](repeating: 0x55, count: 40))))
        }
        let input = gw.path("ssrcs.pcap")
        try Self.writeCapture(frames, to: input)
        let report = try gw.replay(input, output: gw.path("out.pcap"))
        let video = try XCTUnwrap(report.statistics.sessions.first { $0.name == "video" })
        XCTAssertEqual(video.rtpPackets, 1000)
        XCTAssertEqual(video.packetsOut, 1000, "every packet is still protected and sent")
        XCTAssertEqual(video.flowsEvicted, 1000 - 64)
        XCTAssertEqual(video.drops, [:])
        let flows = report.rollover.filter { $0.session == "video" }
        XCTAssertEqual(flows.count, 64)
        // The 64 most recent SSRCs are the ones kept (least recently used evicted first).
        XCTAssertEqual(Set(flows.map(\.ssrc)), Set((936..<1000).map { String(format: "0x%08x", 0x1000_0000 + $0) }))
        let summary = FlowSummary.lines(rollover: report.rollover.map { ($0.session, $0.ssrc, $0.roc) }, statistics: report.statistics)
        XCTAssertTrue(summary.contains("… and \(64 - FlowSummary.limit) more"), summary)
        XCTAssertTrue(summary.contains("video=936"), summary)
        XCTAssertLessThan(summary.utf8.count, 1000, summary)
    }

    /// `maxFlows` from the configuration reaches `replay`'s engine: 5 SSRCs through 3 flows.
    func testMaxFlowsFromConfiguration() throws {
        let yaml = TestGateway.header + """

              - { name: video, kind: rtp, destination: 127.0.0.20:5004, keyGroup: 1, maxFlows: 3, protection: { auth: hmac-sha1-80 } }
            """
        let gw = try TestGateway(yaml: yaml)
        XCTAssertEqual(gw.sessions.first?.maxFlows, 3)
        var frames: [[UInt8]] = []
        for s in UInt32(1)...UInt32(5) { frames.append(Self.frame(Self.rtpPacket(ssrc: s, seq: UInt16(s), payload: [1, 2, 3]))) }
        let input = gw.path("lru.pcap")
        try Self.writeCapture(frames, to: input)
        let report = try gw.replay(input, output: gw.path("out.pcap"))
        XCTAssertEqual(Set(report.rollover.map(\.ssrc)), ["0x00000003", "0x00000004", "0x00000005"])
        XCTAssertEqual(report.statistics.sessions[0].flowsEvicted, 2)
        XCTAssertEqual(report.statistics.sessions[0].packetsOut, 5)
    }

    /// Least recently used first: SSRC 1 used again before 4 comes, so 2 and then 3 go. (In a
    /// batch, `protectRTP(mixed:)` takes each SSRC's packets together at its first packet, so
    /// recency there is per batch; here one packet at a time.)
    func testEvictionIsLeastRecentlyUsed() throws {
        let keys = try SRTPSessionKeys(masterKey: [UInt8](repeating: 1, count: 16), masterSalt: [UInt8](repeating: 2, count: 14),
                                       mki: MasterKeyIdentifier(keyGroup: 1, keyNumber: 1, mtkID: 1), cipher: .aesCM128)
        var flows = try SessionFlows(policy: SRTPPolicy(authentication: .hmacSHA1_80), maxFlows: 3)
        for (k, s) in ([1, 2, 3, 1, 4, 5] as [UInt32]).enumerated() {
            var p = Self.rtpPacket(ssrc: s, seq: UInt16(k), payload: [1, 2, 3]) + [UInt8](repeating: 0, count: 64)
            _ = try p.withUnsafeMutableBytes { b in try flows.protect(b.baseAddress!, length: 15, capacity: b.count, rtcp: false, keys: keys) }
        }
        XCTAssertEqual(flows.rtp.recency, [5, 4, 1])
        XCTAssertEqual(flows.rtpEvictions, 2)
    }

    /// DESIGN.md §7 across eviction: an SSRC evicted and back again — with the very same SEQs
    /// and RTP timestamps — never gets an index (keystream) it had; nor its SRTCP. Checked from
    /// the bytes: keystream = ciphertext ⊕ plaintext, which two packets share exactly when they
    /// share (MTK, SSRC, index).
    func testReturningSSRCNeverReusesAKeystream() throws {
        var rng = SplitMix64.seeded("testReturningSSRCNeverReusesAKeystream")
        let keys = try SRTPSessionKeys(masterKey: rng.bytes(16), masterSalt: rng.bytes(14),
                                       mki: MasterKeyIdentifier(keyGroup: 1, keyNumber: 1, mtkID: 1), cipher: .aesCM128)
        let policy = SRTPPolicy(cipher: .aesCM128, authentication: .rccm2, rocTransmissionRate: 1)
        var flows = try SessionFlows(policy: policy, maxFlows: 4)
        var keystreams: [[UInt8]: String] = [:]
        var rtcpKeystreams: [[UInt8]: String] = [:]
        func send(ssrc: UInt32, seq: UInt16, round: Int) throws {
            let plain = Self.rtpPacket(ssrc: ssrc, seq: seq, timestamp: 1000, payload: rng.bytes(32))
            var p = plain + [UInt8](repeating: 0, count: 64)
            let n = try p.withUnsafeMutableBytes { b in
                try flows.protect(b.baseAddress!, length: plain.count, capacity: b.count, rtcp: false, keys: keys)
            }
            XCTAssertGreaterThan(n, plain.count)
            let ks = (12..<plain.count).map { p[$0] ^ plain[$0] }
            if let other = keystreams[ks] { XCTFail("SRTP keystream reused: SSRC \(ssrc) SEQ \(seq) round \(round) and \(other)") }
            keystreams[ks] = "SSRC \(ssrc) SEQ \(seq) round \(round)"

            let rplain = Self.senderReport(ssrc: ssrc, fill: UInt8(truncatingIfNeeded: seq))
            var r = rplain + [UInt8](repeating: 0, count: 64)
            _ = try r.withUnsafeMutableBytes { b in
                try flows.protect(b.baseAddress!, length: rplain.count, capacity: b.count, rtcp: true, keys: keys)
            }
            let rks = (8..<rplain.count).map { r[$0] ^ rplain[$0] }
            if let other = rtcpKeystreams[rks] { XCTFail("SRTCP keystream reused: SSRC \(ssrc) round \(round) and \(other)") }
            rtcpKeystreams[rks] = "SSRC \(ssrc) SEQ \(seq) round \(round)"
        }
        for round in 0..<3 {
            for seq in UInt16(100)..<UInt16(110) { try send(ssrc: 0xAAAA, seq: seq, round: round) }
            // Four other SSRCs push 0xAAAA out of the 4-flow table.
            for other in UInt32(1)...UInt32(4) { try send(ssrc: other &+ UInt32(round) &* 16, seq: 7, round: round) }
        }
        XCTAssertEqual(flows.rtp.count, 4)
        XCTAssertEqual(flows.rtpEvictions, 3 * 5 - 4)
        XCTAssertEqual(flows.rtcpEvictions, 3 * 5 - 4)
        XCTAssertEqual(keystreams.count, 3 * 14)
    }

    // MARK: - Source filter and limits

    /// `source:` and the packet limits in `replay`: packets from elsewhere (source_filtered), a
    /// 9000-octet RTP packet (too_large), a header-only one (empty_payload), RTCP with length
    /// 0xffff or trailing bytes (bad_rtcp_length) are dropped and counted; the good ones
    /// around them are protected. Before, all of them were protected and forwarded.
    func testSourceFilterAndPacketLimitsInReplay() throws {
        let yaml = TestGateway.header + """

              - { name: video, kind: rtp, destination: 127.0.0.20:5004, keyGroup: 1, source: 127.0.0.8/30, protection: { auth: hmac-sha1-80 } }
              - { name: big, kind: rtp, destination: 127.0.0.20:5006, keyGroup: 2, maxPacketSize: 9100, protection: { auth: hmac-sha1-80 } }
            """
        let gw = try TestGateway(yaml: yaml)
        let big = TransportAddress(.v4(0x7F00_0014), 5006)
        let stranger = TransportAddress(.v4(0x7F00_0063), 5004)   // 127.0.0.99: outside 127.0.0.8/30
        func good(_ seq: UInt16) -> [UInt8] { Self.rtpPacket(ssrc: 0x1234, seq: seq, payload: [UInt8](repeating: 7, count: 100)) }
        var sr = Self.senderReport(ssrc: 0x1234, fill: 1)
        var frames: [[UInt8]] = []
        frames.append(Self.frame(good(1)))
        frames.append(Self.frame(good(2), from: stranger))                                            // source_filtered
        frames.append(Self.frame(Self.rtpPacket(ssrc: 0x1234, seq: 3, payload: [UInt8](repeating: 1, count: 8988))))   // 9000 octets: too_large
        frames.append(Self.frame(Self.rtpPacket(ssrc: 0x1234, seq: 4, payload: [])))                   // header only: empty_payload
        var padded = Self.rtpPacket(ssrc: 0x1234, seq: 5, payload: [0, 0, 0, 4])                       // P = 1, all padding: empty_payload
        padded[0] |= 0x20
        frames.append(Self.frame(padded))
        frames.append(Self.frame(sr, to: Self.rtcp))                                                  // good RTCP
        sr[2] = 0xFF; sr[3] = 0xFF
        frames.append(Self.frame(sr, to: Self.rtcp))                                                  // length 0xffff: bad_rtcp_length
        frames.append(Self.frame(Self.senderReport(ssrc: 0x1234, fill: 2) + [0x80, 202], to: Self.rtcp))   // trailing bytes
        frames.append(Self.frame(Self.senderReport(ssrc: 0x1234, fill: 3), from: stranger, to: Self.rtcp)) // source_filtered
        frames.append(Self.frame(Self.rtpPacket(ssrc: 9, seq: 1, payload: [UInt8](repeating: 1, count: 8988)), to: big))   // allowed there
        frames.append(Self.frame(good(6)))
        let input = gw.path("limits.pcap")
        try Self.writeCapture(frames, to: input)
        let report = try gw.replay(input, output: gw.path("out.pcap"))
        let video = report.statistics.sessions[0]
        XCTAssertEqual(video.drops, ["source_filtered": 2, "too_large": 1, "empty_payload": 2, "bad_rtcp_length": 2])
        XCTAssertEqual(video.packetsOut, 3)   // SEQ 1, 6 and the good SR
        XCTAssertEqual(report.statistics.sessions[1].packetsOut, 1)
        XCTAssertEqual(report.statistics.sessions[1].drops, [:])
        let out = try readFrames(gw.path("out.pcap")).filter { $0.udp?.destination == Self.rtp || $0.udp?.destination == Self.rtcp }
        XCTAssertEqual(out.count, 3)
    }

    /// The configuration keys: values, defaults, and errors naming file, key and fix.
    func testConfigurationKeysAndErrors() throws {
        func parse(_ session: String) throws -> SessionConfiguration {
            let c = try GatewayConfiguration.parse(yaml: TestGateway.header + "\n  - " + session, fileName: "gw.yaml")
            return c.sessions[0]
        }
        func error(_ session: String) -> String {
            do { _ = try parse(session); return "" } catch { return "\(error)" }
        }
        let base = "{ name: v, kind: rtp, destination: 239.1.1.1:5000, keyGroup: 1"
        let d = try parse(base + " }")
        XCTAssertEqual(d.maxFlows, 64)
        XCTAssertEqual(d.maxPacketSize, 1500)
        XCTAssertNil(d.sources)
        let s = try parse(base + ", maxFlows: 8, maxPacketSize: 9000, source: [10.0.0.0/8, \"2001:db8::/32\", 192.0.2.7] }")
        XCTAssertEqual(s.maxFlows, 8)
        XCTAssertEqual(s.maxPacketSize, 9000)
        XCTAssertEqual(s.sources?.map(\.description), ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"])
        let filter = SourceFilter(try XCTUnwrap(s.sources))
        XCTAssertTrue(filter.contains(.v4(0x0A01_0203)))
        XCTAssertTrue(filter.contains(try XCTUnwrap(IPAddress("2001:db8:1::5"))))
        XCTAssertTrue(filter.contains(.v4(0xC000_0207)))
        XCTAssertFalse(filter.contains(.v4(0xC000_0208)))
        XCTAssertFalse(filter.contains(try XCTUnwrap(IPAddress("2001:db9::1"))))
        XCTAssertTrue(filter.contains(.v6(0, 0x0000_FFFF_0A09_0909)), "::ffff:10.9.9.9, the IPv4-mapped source of a dual-stack socket")

        var e = error(base + ", source: 10.0.0.1/8 }")
        XCTAssertTrue(e.contains("gw.yaml") && e.contains("sessions[0].source") && e.contains("fix: write the network: 10.0.0.0/8"), e)
        e = error(base + ", source: [10.0.0.0/8, 300.1.1.1] }")
        XCTAssertTrue(e.contains("sessions[0].source[1]") && e.contains("not an IPv4 or IPv6 address"), e)
        e = error(base + ", maxFlows: 0 }")
        XCTAssertTrue(e.contains("sessions[0].maxFlows") && e.contains("fix: use 1…65536"), e)
        e = error(base + ", maxPacketSize: 70000 }")
        XCTAssertTrue(e.contains("sessions[0].maxPacketSize") && e.contains("fix: use 13…65507"), e)
        e = error("{ name: f, kind: flute, destination: 239.1.1.1:4000, tsi: 1, keyGroup: 2, maxFlows: 5 }")
        XCTAssertTrue(e.contains("sessions[0].maxFlows") && e.contains("only RTP sessions"), e)
        e = error(base + ", maxflows: 5 }")
        XCTAssertTrue(e.contains("unknown key") && e.contains("maxFlows"), e)
    }

    // MARK: - run: limits, metrics and /healthz in process

    /// `run` in process with `maxFlows: 64` and `source: 127.0.0.2`: 1000 SSRCs from 127.0.0.2
    /// leave 64 flows (936 evictions, on /metrics too), packets from 127.0.0.3 are dropped as
    /// source_filtered, a 9000-octet RTP, a header-only RTP and an RTCP with length 0xffff are
    /// dropped with their reasons. /metrics has a `# HELP` for every `# TYPE`; /healthz is 200
    /// while keys are current, 503 with the reason when the published keys do not cover now,
    /// and 503 once the gateway stops.
    func testRunBoundsFlowsFiltersSourcesAndServesHealth() throws {
        var base: UInt16 = 0
        var collector: UDPBatchSocket?
        for _ in 0..<50 where base == 0 {
            let b = UInt16.random(in: 20_000...60_000) & ~1
            let probe = (0..<4).compactMap { try? UDPBatchSocket(bind: TransportAddress(.v4(0x7F00_0001), b + UInt16($0)), maxBatch: 64) }
            if probe.count == 4 { base = b; collector = probe[2] }
        }
        XCTAssertNotEqual(base, 0, "no free ports")
        let yaml = TestGateway.header + """

              - { name: s0, kind: rtp, destination: 127.0.0.1:\(base), output: 127.0.0.1:\(base + 2), keyGroup: 1, source: 127.0.0.2, protection: { auth: hmac-sha1-80 } }
            """
        let gw = try TestGateway(yaml: yaml)
        try gw.manager.initialize(at: Date())
        var logger = Logger(label: "test.live.hardening")
        logger.logLevel = .critical
        let metrics = GatewayMetrics()
        let gateway = try LiveGateway(sessions: gw.sessions, keySource: try KeySource(manager: gw.manager),
                                      options: LiveOptions(configPath: gw.path("gateway.yaml")), metrics: metrics, logger: logger)
        let server = try MetricsHTTPServer(host: "127.0.0.1", port: 0, metrics: metrics)
        server.start()
        defer { server.stop() }
        XCTAssertEqual(try LiveHarness.httpStatus(host: "127.0.0.1", port: server.port, path: "/healthz"), 200)
        XCTAssertTrue(try LiveHarness.httpGet(host: "127.0.0.1", port: server.port, path: "/healthz").hasPrefix("ok"))

        let done = DispatchSemaphore(value: 0)
        final class Box: @unchecked Sendable { var report: LiveReport? }
        let box = Box()
        Thread { box.report = gateway.run(duration: 60); done.signal() }.start()

        let input = TransportAddress(.v4(0x7F00_0001), base), rtcpInput = TransportAddress(.v4(0x7F00_0001), base + 1)
        let trusted = try UDPBatchSocket(bind: TransportAddress(.v4(0x7F00_0002), 0), maxBatch: 64)
        let stranger = try UDPBatchSocket(bind: TransportAddress(.v4(0x7F00_0003), 0), maxBatch: 64)
        func send(_ socket: UDPBatchSocket, _ payload: [UInt8], to: TransportAddress) throws {
            var copy = payload
            try copy.withUnsafeMutableBytes { b in
                var slot = DatagramSlot(bytes: b.baseAddress!, capacity: b.count)
                slot.length = b.count
                slot.peer = to
                _ = try withUnsafeMutablePointer(to: &slot) { try socket.send(UnsafeMutableBufferPointer(start: $0, count: 1)) }
            }
        }
        for k in 0..<1000 {
            try send(trusted, Self.rtpPacket(ssrc: 0x5000_0000 + UInt32(k), seq: 1, payload: [UInt8](repeating: 3, count: 60)), to: input)
            if k % 32 == 31 { usleep(3000) }
        }
        for k in 0..<10 { try send(stranger, Self.rtpPacket(ssrc: 0x77, seq: UInt16(k), payload: [1, 2, 3]), to: input) }
        try send(trusted, Self.rtpPacket(ssrc: 0x5000_0000, seq: 2, payload: [UInt8](repeating: 1, count: 8988)), to: input)
        try send(trusted, Self.rtpPacket(ssrc: 0x5000_0000, seq: 3, payload: []), to: input)
        var sr = Self.senderReport(ssrc: 0x5000_0000, fill: 9)
        sr[2] = 0xFF; sr[3] = 0xFF
        try send(trusted, sr, to: rtcpInput)

        // Until the counters have everything (bounded).
        func scrape() throws -> String { try LiveHarness.httpGet(host: "127.0.0.1", port: server.port, path: "/metrics") }
        func value(_ text: String, _ series: String) -> Double? {
            for line in text.split(separator: "\n") where line.hasPrefix(series + " ") { return Double(line.dropFirst(series.count + 1)) }
            return nil
        }
        var text = try scrape()
        let deadline = Date().addingTimeInterval(20)
        while (value(text, #"mbms_packets_in_total{session="s0",kind="rtp"}"#) ?? 0) < 1012, Date() < deadline {
            usleep(50_000)
            text = try scrape()
        }
        XCTAssertEqual(value(text, #"mbms_packets_in_total{session="s0",kind="rtp"}"#), 1012, text)
        XCTAssertEqual(value(text, #"mbms_flows{session="s0",kind="rtp"}"#), 64, text)
        XCTAssertEqual(value(text, #"mbms_flows_evicted_total{session="s0",kind="rtp"}"#), 936, text)
        XCTAssertEqual(value(text, #"mbms_drops_total{session="s0",kind="rtp",reason="source_filtered"}"#), 10, text)
        XCTAssertEqual(value(text, #"mbms_drops_total{session="s0",kind="rtp",reason="too_large"}"#), 1, text)
        XCTAssertEqual(value(text, #"mbms_drops_total{session="s0",kind="rtp",reason="empty_payload"}"#), 1, text)
        XCTAssertEqual(value(text, #"mbms_drops_total{session="s0",kind="rtcp",reason="bad_rtcp_length"}"#), 1, text)
        Self.assertEveryTypeHasHelp(text)

        // Keys that no longer cover now (the control loop could not refresh them): 503, with why.
        let health = metrics.health.register("s0")
        let now = Int64(Date().timeIntervalSince1970)
        health.publishWindow(from: now - 7200, until: now - 3600)
        let unhealthy = try LiveHarness.httpRaw(host: "127.0.0.1", port: server.port, path: "/healthz")
        XCTAssertTrue(unhealthy.hasPrefix("HTTP/1.1 503"), unhealthy)
        XCTAssertTrue(unhealthy.contains("session s0: keys are not current"), unhealthy)

        gateway.stop()
        done.wait()
        let report = try XCTUnwrap(box.report)
        XCTAssertEqual(report.statistics.sessions[0].flowsEvicted, 936)
        XCTAssertEqual(report.rollover.count, 64)
        let stopped = try LiveHarness.httpRaw(host: "127.0.0.1", port: server.port, path: "/healthz")
        XCTAssertTrue(stopped.hasPrefix("HTTP/1.1 503") && stopped.contains("stopping"), stopped)
        // What came out: 1000 SRTP packets, nothing else on the RTP output.
        var got = 0
        let pool = UnsafeMutableRawPointer.allocate(byteCount: 64 * 2048, alignment: 64)
        let slots = UnsafeMutableBufferPointer<DatagramSlot>.allocate(capacity: 64)
        defer { slots.deallocate(); pool.deallocate() }
        for k in 0..<64 { slots.initializeElement(at: k, to: DatagramSlot(bytes: pool + k * 2048, capacity: 2048)) }
        while let c = collector, case let n = try c.receive(into: slots, timeoutMilliseconds: 200), n > 0 { got += n }
        XCTAssertEqual(got, 1000)
    }

    /// `GatewayHealth` on its own: not bound, no keys, keys current, keys stale, a session
    /// retired by a reload (no longer counted) and bound again, stopping.
    func testHealthStates() {
        let health = GatewayHealth()
        let now: Int64 = 1_800_000_000
        let a = health.register("a"), b = health.register("b")
        XCTAssertTrue(health.register("a") === a)
        XCTAssertEqual(health.check(now: now).reason, "session a: receive sockets are not bound")
        a.socketsBound(true)
        b.socketsBound(true)
        XCTAssertEqual(health.check(now: now).reason, "session a: no key epoch published")
        a.publishWindow(from: now - 5, until: now + 5)
        b.publishWindow(from: now - 20, until: now - 10)
        XCTAssertFalse(health.check(now: now).healthy)
        XCTAssertTrue(health.check(now: now).reason.hasPrefix("session b: keys are not current"), health.check(now: now).reason)
        b.retire()
        XCTAssertTrue(health.check(now: now).healthy, health.check(now: now).reason)
        XCTAssertFalse(health.check(now: now + 5).healthy, "a's keys end at now + 5")
        b.socketsBound(true)
        XCTAssertFalse(health.check(now: now).healthy)
        b.publishWindow(from: now, until: now + 1)
        XCTAssertEqual(health.check(now: now).reason, "ok: 2 sessions, sockets bound, keys current")
        health.markStopping()
        XCTAssertEqual(health.check(now: now).healthy, false)
    }

    /// The text exposition: every family announced with `# TYPE` has a `# HELP` before it, with
    /// a real description.
    static func assertEveryTypeHasHelp(_ text: String, file: StaticString = #filePath, line: UInt = #line) {
        var help: [String: String] = [:]
        var types: [String] = []
        for l in text.split(separator: "\n") {
            let parts = l.split(separator: " ", maxSplits: 3)
            guard parts.count >= 3, parts[0] == "#" else { continue }
            if parts[1] == "HELP" { help[String(parts[2])] = parts.count > 3 ? String(parts[3]) : "" }
            if parts[1] == "TYPE" { types.append(String(parts[2])) }
        }
        XCTAssertGreaterThan(types.count, 5, text, file: file, line: line)
        for t in types {
            guard let h = help[t] else { XCTFail("# TYPE \(t) without # HELP", file: file, line: line); continue }
            XCTAssertFalse(h.isEmpty || h == GatewayMetrics.missingHelp, "\(t): no description", file: file, line: line)
        }
    }

    // MARK: - Logs

    /// logfmt quotes values with spaces (and escapes quotes); JSON lines parse, nested metadata
    /// included. Before, swift-log's stream handler wrote `error=no such file`.
    func testLogLinesQuoteValuesAndParseAsJSON() throws {
        let meta: Logger.Metadata = ["error": "no such file or directory", "session": "video", "quote": "say \"hi\"",
                                     "empty": "", "nested": ["a": "1 2", "b": ["x", "y"]], "msg": "clash"]
        let t = Date(timeIntervalSince1970: 1_795_000_000.25)
        let logfmt = GatewayLogHandler.line(format: .logfmt, time: t, level: .warning, label: "mbms-gateway", message: "send failed twice",
                                            metadata: meta)
        XCTAssertEqual(logfmt, #"ts=2026-11-18T11:06:40.250Z level=warning logger=mbms-gateway msg="send failed twice" _msg=clash empty="" "#
                       + #"error="no such file or directory" nested="[a: 1 2, b: [x, y]]" quote="say \"hi\"" session=video"# + "\n")
        let json = GatewayLogHandler.line(format: .json, time: t, level: .info, label: "mbms-gateway", message: "line\nbreak", metadata: meta)
        XCTAssertTrue(json.hasSuffix("}\n") && json.filter { $0 == "\n" }.count == 1, json)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["msg"] as? String, "line\nbreak")
        XCTAssertEqual(object["error"] as? String, "no such file or directory")
        XCTAssertEqual(object["quote"] as? String, "say \"hi\"")
        XCTAssertEqual(object["_msg"] as? String, "clash")
        XCTAssertEqual((object["nested"] as? [String: Any])?["b"] as? [String], ["x", "y"])
        XCTAssertEqual(object["level"] as? String, "info")
        XCTAssertEqual(object["ts"] as? String, "2026-11-18T11:06:40.250Z")
    }

    /// `run --log-format json`: every stderr line is a JSON object; the default logfmt quotes a
    /// configuration path with a space in it.
    func testRunLogFormats() throws {
        let h = try LiveHarness(test: "logformat")
        defer { h.shutdown() }
        var (status, _, stderr) = try h.runToEnd(["run", "--config", h.configPath, "--duration", "1", "--log-format", "json"])
        XCTAssertEqual(status, 0, stderr)
        let lines = stderr.split(separator: "\n")
        XCTAssertGreaterThan(lines.count, 2, stderr)
        for l in lines {
            let o = try JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any]
            XCTAssertNotNil(o?["msg"] as? String, "not a JSON log line: \(l)")
        }
        XCTAssertTrue(lines.contains { $0.contains(#""msg":"gateway stopped""#) }, stderr)

        // logfmt (default), with the configuration in a folder whose name has a space.
        let spaced = h.path("conf dir")
        try FileManager.default.createDirectory(atPath: spaced, withIntermediateDirectories: true)
        let yaml = try String(contentsOfFile: h.configPath, encoding: .utf8)
            .replacingOccurrences(of: "keyStore: { path: keys.sqlite, kekFile: kek.hex }",
                                  with: "keyStore: { path: \"\(h.path("keys.sqlite"))\", kekFile: \"\(h.path("kek.hex"))\" }")
        try yaml.write(toFile: spaced + "/gateway.yaml", atomically: true, encoding: .utf8)
        (status, _, stderr) = try h.runToEnd(["run", "--config", spaced + "/gateway.yaml", "--duration", "1"])
        XCTAssertEqual(status, 0, stderr)
        XCTAssertTrue(stderr.contains(#"config="\#(spaced)/gateway.yaml""#), stderr)
        XCTAssertTrue(stderr.contains(#"msg="gateway stopped""#), stderr)
        XCTAssertFalse(stderr.contains("--log-format"), stderr)
        let bad = try h.runToEnd(["run", "--config", h.configPath, "--log-format", "xml"])
        XCTAssertNotEqual(bad.0, 0)
        XCTAssertTrue(bad.2.contains("--log-format must be logfmt or json"), bad.2)
    }
}
