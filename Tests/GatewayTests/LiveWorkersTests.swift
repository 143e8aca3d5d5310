import Foundation
import Gateway
import KeyManagement
import Logging
import PacketIO
import SRTP
import XCTest

/// `run --workers 2` in process: three sessions sharded over two worker threads (session i on
/// worker i mod 2). Every RTP packet of every session comes out once, decrypts (with the key
/// epochs the key store gives for the run) to what was sent, with per-session counters intact.
final class LiveWorkersTests: XCTestCase {
    func testTwoWorkersProtectThreeSessions() throws {
        // Twelve consecutive free ports: inputs base, +2, +4 (RTCP +1 each), outputs +6, +8, +10.
        var base: UInt16 = 0
        var outputs: [UDPBatchSocket] = []
        for _ in 0..<50 where base == 0 {
            let b = UInt16.random(in: 20_000...60_000) & ~1
            let probe = (0..<12).compactMap { try? UDPBatchSocket(bind: TransportAddress(.v4(0x7F00_0001), b + UInt16($0)), maxBatch: 64) }
            if probe.count == 12 {
                base = b
                outputs = [probe[6], probe[8], probe[10]]   // kept open: the collectors
            }
        }
        XCTAssertNotEqual(base, 0, "no free ports")
        let ports = (0..<3).map { base + 2 * UInt16($0) }
        let out = TransportAddress(.v4(0x7F00_0001), base + 4)   // output of session i: out.port + 2i + 2
        let yaml = TestGateway.header + "\n" + """
            \(ports.enumerated().map { "  - { name: s\($0.offset), kind: rtp, destination: 127.0.0.1:\($0.element), output: \(out.address):\(out.port + 2 * UInt16($0.offset) + 2), keyGroup: \($0.offset + 1), protection: { auth: hmac-sha1-80 } }" }.joined(separator: "\n"))
            """
        let gw = try TestGateway(yaml: yaml)
        let started = Int64(Date().timeIntervalSince1970)
        try gw.manager.initialize(at: Date())
        var logger = Logger(label: "test.live.workers")
        logger.logLevel = .error
        let gateway = try LiveGateway(sessions: gw.sessions, keySource: try KeySource(manager: gw.manager),
                                      options: LiveOptions(configPath: gw.path("gateway.yaml"), workers: 2), logger: logger)
        let done = DispatchSemaphore(value: 0)
        final class Box: @unchecked Sendable { var report: LiveReport? }
        let box = Box()
        Thread { box.report = gateway.run(duration: 30); done.signal() }.start()

        // Send 300 RTP packets per session, interleaved.
        let sender = try UDPBatchSocket(bind: TransportAddress(.v4(0x7F00_0001), 0), maxBatch: 1)
        var sent: [[UInt8]] = []
        for n in 0..<900 {
            let s = n % 3, seq = UInt16(n / 3)
            var p: [UInt8] = [0x80, 96, UInt8(seq >> 8), UInt8(seq & 0xFF), 0, 0, 0, UInt8(n / 3 & 0xFF), 0xAB, 0xCD, 0, UInt8(s)]
            p += (0..<(160 + n % 900)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ n) }
            sent.append(p)
            var copy = p
            try copy.withUnsafeMutableBytes { b in
                var slot = DatagramSlot(bytes: b.baseAddress!, capacity: b.count)
                slot.length = b.count
                slot.peer = TransportAddress(.v4(0x7F00_0001), ports[s])
                _ = try withUnsafeMutablePointer(to: &slot) { try sender.send(UnsafeMutableBufferPointer(start: $0, count: 1)) }
            }
            if n % 32 == 31 { usleep(2000) }
        }
        // Collect until every session's 300 arrived (or 20 s).
        let pool = UnsafeMutableRawPointer.allocate(byteCount: 64 * 2048, alignment: 64)
        let slots = UnsafeMutableBufferPointer<DatagramSlot>.allocate(capacity: 64)
        defer { slots.deallocate(); pool.deallocate() }
        for k in 0..<64 { slots.initializeElement(at: k, to: DatagramSlot(bytes: pool + k * 2048, capacity: 2048)) }
        var received: [[[UInt8]]] = [[], [], []]
        let deadline = Date().addingTimeInterval(20)
        while received.map(\.count).reduce(0, +) < 900, Date() < deadline {
            for (s, o) in outputs.enumerated() {
                let n = try o.receive(into: slots, timeoutMilliseconds: 20)
                for k in 0..<n { received[s].append(Array(UnsafeRawBufferPointer(start: slots[k].bytes, count: slots[k].length))) }
            }
        }
        gateway.stop()
        done.wait()
        let report = try XCTUnwrap(box.report)

        // Decrypt with the MTKs of the run (current and the one after it, should a switch fall inside).
        let source = try KeySource(manager: gw.manager)
        let now = Int64(Date().timeIntervalSince1970)
        for (s, session) in gw.sessions.enumerated() {
            XCTAssertEqual(received[s].count, 300, "session \(s)")
            let receiver = try SRTPReceiver(policy: session.policy, keyCapacity: 8)
            var added = Set<UInt16>()
            for t in stride(from: started, through: now + 10, by: 10) {
                let e = try source.epoch(for: session, at: t)
                if added.insert(e.mtkID.rawValue).inserted { try receiver.addKey(e.keys) }
            }
            var seen = Set<[UInt8]>()
            for var p in received[s] {
                _ = try receiver.unprotectRTP(&p)
                seen.insert(p)
            }
            let expected = Set(sent.enumerated().filter { $0.offset % 3 == s }.map(\.element))
            XCTAssertEqual(seen, expected, "session \(s): decrypted packets differ from those sent")
            XCTAssertEqual(report.statistics.sessions[s].packetsOut, 300)
            XCTAssertEqual(report.statistics.sessions[s].rtpPackets, 300)
            XCTAssertGreaterThan(report.statistics.sessions[s].mikeySent, 0)
        }
    }
}
