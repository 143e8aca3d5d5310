import CryptoCore
import Foundation
import Gateway
import KeyManagement
import Logging
import MIKEY
import PacketIO
import SRTP
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The lifecycle of a live `mbms-gateway run` process (issue 19 findings 3, 4, 5): one owner
/// per input port, key store changes (`keys rotate --invalidate`) reaching a running gateway,
/// and SIGHUP as reload. Each drives `run` as a child process on loopback (`LiveHarness`).
final class LiveLifecycleTests: XCTestCase {
    private var harnesses: [LiveHarness] = []

    override func tearDown() {
        for h in harnesses { h.shutdown() }
        harnesses = []
        super.tearDown()
    }

    private func harness(_ h: LiveHarness) -> LiveHarness {
        harnesses.append(h)
        return h
    }

    // MARK: finding 3 — one owner per input

    /// A second `run` on the same unicast ports must not start (it used to bind them too with
    /// SO_REUSEADDR, exit 0 and take part of the input): non-zero exit, naming the first's PID.
    func testSecondRunOnSameUnicastPortsIsRefusedNamingTheFirst() throws {
        try secondRunIsRefused(multicast: false)
    }

    /// The same on a multicast group, where sharing group:port is normal for receivers but two
    /// gateways would both protect (and send) every packet.
    func testSecondRunOnSameMulticastGroupIsRefusedNamingTheFirst() throws {
        try secondRunIsRefused(multicast: true)
    }

    private func secondRunIsRefused(multicast: Bool) throws {
        let h = harness(try LiveHarness(test: multicast ? "second-mc" : "second-uc", multicast: multicast))
        try h.start(metrics: nil)
        let pid = try XCTUnwrap(h.process).processIdentifier
        let started = Date()
        let (status, _, stderr) = try h.runToEnd(["run", "--config", h.configPath, "--duration", "5"] + h.runArguments)
        XCTAssertNotEqual(status, 0, "a second gateway on \(h.input) started:\n\(stderr)")
        XCTAssertTrue(stderr.contains("PID \(pid)"), "the refusal does not name the running gateway (PID \(pid)):\n\(stderr)")
        XCTAssertTrue(stderr.contains("\(h.input)"), "the refusal does not name the address:\n\(stderr)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 4.5, "refused only after running")
        XCTAssertTrue(try XCTUnwrap(h.process).isRunning, "the first gateway died")
        let (s1, stdout, e1) = try h.interruptAndWait(signal: SIGTERM)
        XCTAssertEqual(s1, 0, e1)
        XCTAssertTrue(stdout.contains("run stopped (signal)"), stdout)
    }

    /// Any other program — with SO_REUSEADDR or SO_REUSEPORT — cannot bind a unicast input of a
    /// running gateway (with SO_REUSEADDR on both sockets Linux lets the later one take the traffic).
    func testOtherProgramCannotShareAUnicastInput() throws {
        let h = harness(try LiveHarness(test: "share"))
        try h.start(metrics: nil)
        for (name, option) in [("SO_REUSEADDR", SO_REUSEADDR), ("SO_REUSEPORT", SO_REUSEPORT)] {
            for port in [h.input.port, h.input.port + 1] {
                let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
                XCTAssertGreaterThanOrEqual(s, 0)
                defer { close(s) }
                var one: Int32 = 1
                XCTAssertEqual(setsockopt(s, SOL_SOCKET, option, &one, 4), 0)
                var a = sockaddr_in()
                a.sin_family = sa_family_t(AF_INET)
                a.sin_port = port.bigEndian
                a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
                let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
                let err = errno
                XCTAssertEqual(rc, -1, "another socket with \(name) could bind the gateway's input 127.0.0.1:\(port)")
                if rc == -1 { XCTAssertEqual(err, EADDRINUSE) }
            }
        }
        let (status, _, stderr) = try h.interruptAndWait(signal: SIGTERM)
        XCTAssertEqual(status, 0, stderr)
    }

    // MARK: finding 4 — store changes reach a running gateway

    /// `keys rotate --invalidate` from another process while `run` protects a stream: from the
    /// boundary the rotation chose, the output is protected under the new MSK (its MTK message
    /// on the air first), and the gateway logs the change (MSK IDs and windows).
    func testRotateInvalidateReachesRunningGatewayAtNextBoundary() throws {
        let h = harness(try LiveHarness(test: "rotate", mtk: "{ period: 2s, announceLead: 1s, repeat: 1s }"))
        try h.start(metrics: nil)
        let configuration = try GatewayConfiguration.load(path: h.configPath)
        let manager = try KeyManager.openSQLite(configuration: configuration, environment: [:], create: false)
        let session = try XCTUnwrap(StreamingSession.sessions(of: configuration).first)
        let group = session.keyGroup

        // The UE: the MSK in use now, before anything changes.
        let muk = try SecretBytes.random(count: 32)
        var ue = UEKeyProcessor(muk: muk, nafID: configuration.bmscFQDN, bTID: "ue-rotate@example")
        let old = try manager.schedule().msk(keyGroup: group, at: Date()).mskID
        let oldMessage = try manager.mskMessage(keyGroup: group, ueID: "ue-rotate@example", muk: muk, verify: false,
                                                at: Date(), builder: MIKEYMSKMessageBuilder())
        guard case .success(.msk) = ue.process(oldMessage) else { return XCTFail("MSK message rejected by the UE") }

        let pump = RTPPump(to: h.input, ssrc: 0x5EED_0004, interval: 0.010)
        pump.start()
        defer { pump.stop() }
        usleep(600_000)

        let (rs, rout, rerr) = try h.runToEnd(["keys", "rotate", "--config", h.configPath, "--key-group", "\(group.rawValue)", "--invalidate"])
        guard rs == 0 else { return XCTFail("keys rotate failed (\(rs)): \(rout)\(rerr)") }
        let rotatedAt = Date()
        // The MSK that now follows the old one (the command may have been slow: the switch can be past).
        let after = try manager.schedule().snapshot
        let oldNow = try XCTUnwrap(after.msk(old))
        let fresh = try XCTUnwrap(after.msks(in: group).first { $0.validFrom == oldNow.validUntil && $0.validUntil > $0.validFrom })
        let switchAt = fresh.validFrom
        guard Double(switchAt) <= rotatedAt.timeIntervalSince1970 + 4 else {
            return XCTFail("the rotation did not move the switch close: next MSK \(fresh.mskID.hex) from \(switchAt), now \(rotatedAt.timeIntervalSince1970); \(rout)")
        }
        let newMessage = try manager.mskMessage(keyGroup: group, ueID: "ue-rotate@example", muk: muk, verify: false,
                                                at: Date(timeIntervalSince1970: TimeInterval(switchAt)), builder: MIKEYMSKMessageBuilder())
        guard case .success(.msk) = ue.process(newMessage) else { return XCTFail("new MSK message rejected by the UE") }

        // Past the switch, and a little more.
        while Date().timeIntervalSince1970 < Double(switchAt) + 1.5 { usleep(50_000) }
        pump.stop()
        usleep(200_000)
        let (status, stdout, stderr) = try h.interruptAndWait(signal: SIGTERM)
        XCTAssertEqual(status, 0, stderr)
        XCTAssertTrue(stdout.contains("run stopped (signal)"), stdout)
        XCTAssertFalse(stdout.contains("no_key"), "packets dropped for want of a key:\n\(stdout)")
        XCTAssertTrue(stderr.contains(fresh.mskID.hex), "the gateway did not log the new MSK \(fresh.mskID.hex):\n\(stderr)")
        XCTAssertTrue(stderr.contains("invalidated"), "the gateway did not log the invalidation:\n\(stderr)")

        // What came out, in arrival order: each SRTP packet decrypts with an MTK whose MIKEY
        // message arrived before it; packets sent after the switch carry the new MSK's ID.
        let pcap = h.path("out.pcap")
        try h.collector.writeCapture(to: pcap)
        let receiver = try SRTPReceiver(policy: session.policy, keyCapacity: 16)
        var known = Set<[UInt8]>(), decrypted = 0, underNew = 0, rocUnknown = 0, stale = 0, early = 0
        var firstStale: String?
        for f in try readFrames(pcap) {
            guard let u = f.udp else { continue }
            if u.destination == h.mikey {
                if case .success(.mtk(let m)) = ue.process(f.payload), known.insert(m.mki).inserted {
                    try receiver.addKey(try SRTPSessionKeys(masterKey: m.key, masterSalt: try XCTUnwrap(m.salt).revealedBytes(),
                                                            mki: MasterKeyIdentifier(bytes: m.mki), cipher: session.policy.cipher))
                }
                continue
            }
            guard u.destination == h.output else { continue }
            var p = f.payload
            let seq = UInt16(p[2]) << 8 | UInt16(p[3])
            switch unprotectRTP(receiver, &p) {
            case .success(let info):
                decrypted += 1
                guard let sent = pump.sentAt(seq) else { continue }
                if info.mki.mskID == fresh.mskID.rawValue { underNew += 1 }
                if sent > Double(switchAt) + 0.3, info.mki.mskID != fresh.mskID.rawValue {
                    stale += 1
                    if firstStale == nil {
                        firstStale = "SEQ \(seq) sent \(String(format: "%.2f", sent - Double(switchAt))) s after the switch is protected under MSK \(String(info.mki.mskID, radix: 16)), not the new \(fresh.mskID.hex)"
                    }
                } else if sent < Double(switchAt) - 0.3, info.mki.mskID != old.rawValue {
                    early += 1
                }
            case .failure(let e):
                guard case .rocUnknown = e, decrypted == 0 else { return XCTFail("SRTP SEQ \(seq) does not decrypt with the keys on the air so far: \(e)") }
                rocUnknown += 1
            }
        }
        XCTAssertEqual(stale, 0, "packets sent after the switch still under the old MSK: \(stale); first: \(firstStale ?? "")")
        XCTAssertEqual(early, 0, "packets sent before the switch not under the old MSK \(old.hex)")
        XCTAssertGreaterThan(underNew, 20, "no output under the new MSK \(fresh.mskID.hex)")
        XCTAssertGreaterThan(decrypted, 100)
        print("rotate: \(decrypted) SRTP decrypted, \(underNew) under the new MSK, \(rocUnknown) late-join; switch at \(switchAt)")
    }

    // MARK: finding 5 — SIGHUP reloads

    /// SIGHUP re-reads the configuration: the process stays up, logs the reload, starts a session
    /// added to the file (bound, keyed, protected), applies a new logLevel, refuses a grid change
    /// naming the setting; a second SIGHUP removes a session and releases its ports; SIGTERM
    /// afterwards still drains and prints the summary with exit 0.
    func testSIGHUPReloadsConfigurationAndKeepsRunning() throws {
        let h = harness(try LiveHarness(test: "reload"))
        try h.start(metrics: nil)
        let p = try XCTUnwrap(h.process)
        let original = try String(contentsOfFile: h.configPath, encoding: .utf8)

        // A second session: its own input pair, its own output pair next to the first's.
        let extraIn = TransportAddress(.v4(0x7F00_0001), try LiveHarness.freeUDPPair(.v4(0x7F00_0001), options: UDPSocketOptions()))
        var extraOut = TransportAddress(h.output.address, 0)
        var collector: LiveCollector?
        for _ in 0..<50 where collector == nil {
            let port = UInt16.random(in: 20_000...59_998) & ~1
            extraOut = TransportAddress(h.output.address, port)
            collector = try? LiveCollector(addresses: [extraOut, TransportAddress(h.output.address, port + 1)], options: UDPSocketOptions())
        }
        let c2 = try XCTUnwrap(collector)
        c2.start()
        defer { c2.stop() }
        var edited = original.replacingOccurrences(of: "period: 4s", with: "period: 8s")
        XCTAssertNotEqual(edited, original)
        edited += "\n  - { name: extra, kind: rtp, destination: \"\(extraIn)\", output: \"\(extraOut)\", keyGroup: 2, protection: { cipher: aes-256-cm, auth: rccm2, rocRate: 16 } }\nlogLevel: debug\n"
        try edited.write(toFile: h.configPath, atomically: true, encoding: .utf8)

        kill(p.processIdentifier, SIGHUP)
        XCTAssertTrue(waitFor(3) { h.read("stderr.txt").contains("reload") && h.read("stderr.txt").contains("extra") },
                      "no reload logged:\n\(h.read("stderr.txt"))")
        usleep(300_000)
        XCTAssertTrue(p.isRunning, "SIGHUP stopped the gateway (status \(p.isRunning ? 0 : p.terminationStatus)):\n\(h.read("stderr.txt"))")
        let log = h.read("stderr.txt")
        XCTAssertTrue(log.contains("schedule.mtk.period"), "the refused grid change is not named:\n\(log)")

        // The added session protects: RTP in on its input, SRTP (longer: MKI + tag) out on its output.
        let pump = RTPPump(to: extraIn, ssrc: 0x5EED_0005, interval: 0.005)
        pump.start()
        XCTAssertTrue(waitFor(3) { c2.count(extraOut) >= 40 }, "the added session protects nothing (\(c2.count(extraOut)) out):\n\(h.read("stderr.txt"))")
        pump.stop()
        for s in c2.payloads(extraOut).prefix(40) {
            let seq = UInt16(s[2]) << 8 | UInt16(s[3])
            XCTAssertGreaterThanOrEqual(s.count, RTPPump.length + MasterKeyIdentifier.mbmsLength + 4, "SEQ \(seq) is not SRTP with MKI and tag")
            XCTAssertNotEqual(Array(s[12..<RTPPump.length]), RTPPump.payload(seq), "SEQ \(seq) left in clear")
        }
        // logLevel: debug applies: per-message MIKEY lines appear.
        XCTAssertTrue(waitFor(3) { h.read("stderr.txt").contains("MIKEY MTK message sent") }, "logLevel: debug not applied")

        // Second reload: the original file back (session `extra` removed, logLevel info).
        try original.write(toFile: h.configPath, atomically: true, encoding: .utf8)
        kill(p.processIdentifier, SIGHUP)
        XCTAssertTrue(waitFor(3) { Self.bindable(extraIn) && Self.bindable(TransportAddress(extraIn.address, extraIn.port + 1)) },
                      "the removed session's ports are still held:\n\(h.read("stderr.txt"))")
        XCTAssertTrue(p.isRunning)

        let (status, stdout, stderr) = try h.interruptAndWait(signal: SIGTERM)
        XCTAssertEqual(status, 0, stderr)
        XCTAssertTrue(stdout.contains("run stopped (signal)"), stdout)
        XCTAssertTrue(stderr.contains("gateway stopped"), stderr)
        // The removed session's traffic is still in the summary.
        let row = stdout.split(separator: "\n").first { $0.hasPrefix("extra") }
        XCTAssertNotNil(row, "session extra missing from the summary:\n\(stdout)")
    }

    /// SIGHUP with a configuration that does not load: logged, the running one stays.
    func testSIGHUPWithBrokenConfigurationKeepsRunning() throws {
        let h = harness(try LiveHarness(test: "reload-bad"))
        try h.start(metrics: nil)
        let p = try XCTUnwrap(h.process)
        try "sessions: [\n".write(toFile: h.configPath, atomically: true, encoding: .utf8)
        kill(p.processIdentifier, SIGHUP)
        XCTAssertTrue(waitFor(3) { h.read("stderr.txt").contains("reload refused") }, "no refusal logged:\n\(h.read("stderr.txt"))")
        XCTAssertTrue(p.isRunning)
        let (status, stdout, stderr) = try h.interruptAndWait(signal: SIGTERM)
        XCTAssertEqual(status, 0, stderr)
        XCTAssertTrue(stdout.contains("run stopped (signal)"), stdout)
    }

    /// A reload that moves a session to another input port keeps its sender state (ROC per
    /// SSRC): an encoder that starts again at SEQ 0 on the new port gets the next ROC, so no
    /// (MTK, SSRC, packet index) goes out twice — a fresh state would start again at the floor of
    /// the MTK's index block and repeat the first 50 indices (keystream reuse). In process, with
    /// RCC (rocRate 1: every packet carries its ROC) so the receiver reads each packet's index.
    func testReloadMovingASessionKeepsItsPacketIndicesUnique() throws {
        let lo = IPAddress.v4(0x7F00_0001)
        let out = try UDPBatchSocket(bind: TransportAddress(lo, 0), options: UDPSocketOptions(), maxBatch: 64)
        let a = try LiveHarness.freeUDPPair(lo, options: UDPSocketOptions())
        var b = a
        while b == a { b = try LiveHarness.freeUDPPair(lo, options: UDPSocketOptions()) }
        let header = TestGateway.header.replacingOccurrences(of: "period: 10s, announceLead: 2s", with: "period: 1h, announceLead: 2s")
        func yaml(_ port: UInt16) -> String {
            header + "\n  - { name: moved, kind: rtp, destination: 127.0.0.1:\(port), output: 127.0.0.1:\(out.boundPort), keyGroup: 9, protection: { cipher: aes-128-cm, auth: rccm2, rocRate: 1 } }\n"
        }
        let gw = try TestGateway(yaml: yaml(a))
        _ = try gw.manager.maintain(at: Date())
        var moved = gw.configuration
        moved.sessions[0].destination = try XCTUnwrap(GatewayConfiguration.parse(yaml: yaml(b)).sessions.first).destination
        let next = moved
        var options = LiveOptions(configPath: gw.path("gateway.yaml"))
        options.reload = LiveReloadOptions(configuration: gw.configuration, load: { next })
        var logger = Logger(label: "test.live.reload")
        logger.logLevel = .error
        let gateway = try LiveGateway(sessions: gw.sessions, keySource: try KeySource(manager: gw.manager), options: options, logger: logger)
        final class Box: @unchecked Sendable { var report: LiveReport? }
        let box = Box(), done = DispatchSemaphore(value: 0)
        Thread { box.report = gateway.run(duration: 20); done.signal() }.start()

        let capacity = 2048
        let pool = UnsafeMutableRawPointer.allocate(byteCount: capacity * 64, alignment: 16)
        let slots = UnsafeMutableBufferPointer<DatagramSlot>.allocate(capacity: 64)
        defer { slots.deallocate(); pool.deallocate() }
        for k in 0..<64 { slots.initializeElement(at: k, to: DatagramSlot(bytes: pool + k * capacity, capacity: capacity)) }
        var received: [[UInt8]] = []
        func collect(_ n: Int) {
            let deadline = Date().addingTimeInterval(5)
            while received.count < n, Date() < deadline {
                guard let got = try? out.receive(into: slots, timeoutMilliseconds: 50), got > 0 else { continue }
                for k in 0..<got { received.append(Array(UnsafeRawBufferPointer(start: slots[k].bytes, count: slots[k].length))) }
            }
        }
        let sender = try UDPBatchSocket(bind: TransportAddress(lo, 0), options: UDPSocketOptions(), maxBatch: 1)
        func send(to port: UInt16) throws {
            for seq in UInt16(0)..<50 {
                var p: [UInt8] = [0x80, 96, UInt8(seq >> 8), UInt8(seq & 0xFF), 0, 0, UInt8(seq >> 8), UInt8(seq & 0xFF), 0x5E, 0xED, 0, 9]
                p += RTPPump.payload(seq)
                try p.withUnsafeMutableBytes { raw in
                    var slot = DatagramSlot(bytes: try XCTUnwrap(raw.baseAddress), capacity: raw.count)
                    slot.length = raw.count
                    slot.peer = TransportAddress(lo, port)
                    _ = try withUnsafeMutablePointer(to: &slot) { try sender.send(UnsafeMutableBufferPointer(start: $0, count: 1)) }
                }
                usleep(1000)
            }
        }
        try send(to: a)
        collect(50)
        XCTAssertEqual(received.count, 50, "before the reload")
        gateway.requestReload()
        // The old port is released once the session moved.
        let deadline = Date().addingTimeInterval(3)
        while !Self.bindable(TransportAddress(lo, a)), Date() < deadline { usleep(20_000) }
        XCTAssertTrue(Self.bindable(TransportAddress(lo, a)), "the old input is still bound after the reload")
        try send(to: b)
        collect(100)
        gateway.stop()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(received.count, 100, "after the reload")

        // Every packet's (MKI, SSRC, index), read by a receiver holding the MTKs of the hour.
        let session = try XCTUnwrap(gw.sessions.first)
        let receiver = try SRTPReceiver(policy: session.policy, keyCapacity: 4)
        let reader = try KeySource(manager: gw.manager, senderIndices: .unreserved, keyState: .extendOnly)
        let now = Int64(Date().timeIntervalSince1970)
        for t in [now, now + 3600] { try receiver.addKey(try reader.epoch(for: session, at: t).keys) }
        var seen = Set<String>()
        for var p in received {
            switch unprotectRTP(receiver, &p) {
            case .success(let info):
                XCTAssertTrue(seen.insert("\(info.mki.value)/\(info.index)").inserted, "packet index \(info.index) under MKI \(info.mki) sent twice")
            case .failure(let e):
                XCTFail("SRTP packet does not decrypt, or repeats a packet index (keystream reuse): \(e)")
            }
        }
        XCTAssertEqual(seen.count, 100)
        let stats = try XCTUnwrap(box.report?.statistics.sessions.first { $0.name == "moved" })
        XCTAssertEqual(stats.rtpPackets, 100, "the session's counters across the reload")
        XCTAssertEqual(box.report?.statistics.sessions.count, 1)
    }

    /// `logLevel` is a configuration key (what a reload applies); a bad value names the fix.
    func testConfigurationLogLevel() throws {
        let base = TestGateway.header + "\n  - { name: s, kind: rtp, destination: 127.0.0.1:5000, output: 127.0.0.2:5000, keyGroup: 1 }\n"
        XCTAssertNil(try GatewayConfiguration.parse(yaml: base).logLevel)
        XCTAssertEqual(try GatewayConfiguration.parse(yaml: base + "logLevel: debug\n").logLevel, "debug")
        XCTAssertThrowsError(try GatewayConfiguration.parse(yaml: base + "logLevel: loud\n")) { e in
            XCTAssertTrue("\(e)".contains("logLevel"), "\(e)")
            XCTAssertTrue("\(e)".contains("critical"), "\(e)")
        }
    }

    // MARK: helpers

    private func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(50_000)
        }
        return condition()
    }

    /// Whether a plain socket (no SO_REUSEADDR) can bind `a` now.
    static func bindable(_ a: TransportAddress) -> Bool {
        (try? UDPBatchSocket(bind: a, options: UDPSocketOptions(), maxBatch: 1)) != nil
    }
}

/// Sends plain RTP (one SSRC, SEQ from 0, fixed-size payload) to an address at a steady pace on
/// its own thread, and remembers when each SEQ went out (wall clock).
final class RTPPump: @unchecked Sendable {
    static let length = 172
    let destination: TransportAddress
    let ssrc: UInt32
    let interval: Double
    private let lock = NSLock()
    private var stopped = false
    private var sent: [UInt16: Double] = [:]
    private let done = DispatchSemaphore(value: 0)
    private var running = false

    init(to destination: TransportAddress, ssrc: UInt32, interval: Double) {
        self.destination = destination
        self.ssrc = ssrc
        self.interval = interval
    }

    static func payload(_ seq: UInt16) -> [UInt8] {
        (0..<(length - 12)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seq)) }
    }

    func start() {
        running = true
        Thread.detachNewThread { [self] in
            defer { done.signal() }
            guard let socket = try? UDPBatchSocket(bind: TransportAddress(.v4(0x7F00_0001), 0), options: UDPSocketOptions(), maxBatch: 1) else { return }
            var seq: UInt16 = 0
            while !isStopped {
                var p: [UInt8] = [0x80, 96, UInt8(seq >> 8), UInt8(seq & 0xFF)]
                let ts = UInt32(seq) &* 160
                p += [UInt8(ts >> 24), UInt8(ts >> 16 & 0xFF), UInt8(ts >> 8 & 0xFF), UInt8(ts & 0xFF)]
                p += [UInt8(ssrc >> 24), UInt8(ssrc >> 16 & 0xFF), UInt8(ssrc >> 8 & 0xFF), UInt8(ssrc & 0xFF)]
                p += Self.payload(seq)
                let now = Date().timeIntervalSince1970
                p.withUnsafeMutableBytes { b in
                    guard let base = b.baseAddress else { return }
                    var slot = DatagramSlot(bytes: base, capacity: b.count)
                    slot.length = b.count
                    slot.peer = destination
                    _ = try? withUnsafeMutablePointer(to: &slot) { try socket.send(UnsafeMutableBufferPointer(start: $0, count: 1)) }
                }
                lock.lock(); sent[seq] = now; lock.unlock()
                seq &+= 1
                usleep(UInt32(interval * 1e6))
            }
        }
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    func stop() {
        lock.lock()
        let wasStopped = stopped
        stopped = true
        lock.unlock()
        if running && !wasStopped { _ = done.wait(timeout: .now() + 2) }
    }

    func sentAt(_ seq: UInt16) -> Double? { lock.lock(); defer { lock.unlock() }; return sent[seq] }
}
