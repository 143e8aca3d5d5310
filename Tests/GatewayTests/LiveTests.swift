import CryptoCore
import Foundation
import Gateway
import KeyManagement
import MIKEY
import PacketIO
import SRTP
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `mbms-gateway run` end to end, as a separate process on loopback: plain RTP/RTCP of a
/// fixture in over UDP, everything that comes out captured to a pcap, and a UE holding only
/// the MSK (from a real MIKEY MSK message) decrypts it back to the fixture's payloads using the
/// MTKs from the captured MIKEY messages.
final class LiveTests: XCTestCase {
    private var harness: LiveHarness?

    override func tearDown() {
        harness?.shutdown()
        harness = nil
        super.tearDown()
    }

    func testRunProtectsFixtureOverUDPAndUEDecryptsIt() throws {
        try decryptScenario(multicast: false)
    }

    /// The same over multicast on the loopback interface only (TTL 0, loop on): the gateway joins
    /// the ingress group on `lo`, sends to another group, the collector joins that one.
    func testRunProtectsFixtureOverMulticastOnLoopback() throws {
        try decryptScenario(multicast: true)
    }

    /// The same over IPv6 unicast on ::1.
    func testRunProtectsFixtureOverIPv6Loopback() throws {
        try decryptScenario(multicast: false, ipv6: true)
    }

    private func decryptScenario(multicast: Bool, ipv6: Bool = false) throws {
        let h = try LiveHarness(test: multicast ? "multicast" : ipv6 ? "ipv6" : "decrypt", multicast: multicast, ipv6: ipv6)
        harness = h
        let fixture = try LiveFixture.load()
        try h.start(metrics: nil)
        try h.send(fixture, pacing: 0.020, perBatch: 32)
        h.waitForQuiet(expectedRTP: fixture.rtp.count)
        let (status, stdout, stderr) = try h.interruptAndWait()
        XCTAssertEqual(status, 0, "gateway exit status; stderr:\n\(stderr)")
        XCTAssertTrue(stdout.contains("run stopped (signal)"), "summary missing:\n\(stdout)")
        XCTAssertTrue(stdout.contains("MIKEY sent"), "summary table missing:\n\(stdout)")
        XCTAssertTrue(stdout.contains("live:"), "summary routes missing:\n\(stdout)")
        XCTAssertFalse(stderr.contains("error"), "errors logged:\n\(stderr)")

        // Everything that came out, as a capture, then read back.
        let pcap = h.path("out.pcap")
        try h.collector.writeCapture(to: pcap)
        let frames = try readFrames(pcap)
        let mikey = frames.filter { $0.udp?.destination.port == StreamingSession.mikeyPort }
        let srtp = frames.filter { $0.udp?.destination == h.output }
        let srtcp = frames.filter { $0.udp?.destination == h.rtcpOutput }
        XCTAssertGreaterThan(mikey.count, 0, "no MIKEY MTK messages captured")

        // The UE: the MSK message for the key group, then only what was on the air.
        let configuration = try GatewayConfiguration.load(path: h.configPath)
        let manager = try KeyManager.openSQLite(configuration: configuration, environment: [:], create: false)
        let session = try XCTUnwrap(StreamingSession.sessions(of: configuration).first)
        let muk = try SecretBytes.random(count: 32)
        var ue = UEKeyProcessor(muk: muk, nafID: configuration.bmscFQDN, bTID: "ue-live@example")
        let msk = try manager.mskMessage(keyGroup: session.keyGroup, ueID: "ue-live@example", muk: muk, verify: false,
                                         at: h.startedAt, builder: MIKEYMSKMessageBuilder())
        guard case .success(.msk) = ue.process(msk) else { return XCTFail("MSK message rejected by the UE") }
        // An MSK change during the run (midnight with a 1-day MSK period) is covered by the next MSK.
        if let next = try? manager.mskMessage(keyGroup: session.keyGroup, ueID: "ue-live@example", muk: muk, verify: false, next: true,
                                              at: h.startedAt, builder: MIKEYMSKMessageBuilder()) {
            _ = ue.process(next)
        }
        let receiver = try SRTPReceiver(policy: session.policy, keyCapacity: 16)
        var mkis = Set<[UInt8]>()
        for f in mikey {
            if case .success(.mtk(let m)) = ue.process(f.payload), mkis.insert(m.mki).inserted {
                try receiver.addKey(try SRTPSessionKeys(masterKey: m.key, masterSalt: try XCTUnwrap(m.salt).revealedBytes(),
                                                        mki: MasterKeyIdentifier(bytes: m.mki), cipher: session.policy.cipher))
            }
        }
        XCTAssertGreaterThan(mkis.count, 0, "no MTK delivered to the UE")

        var decrypted = Set<UInt16>(), rocUnknown = 0
        for f in srtp {
            var p = f.payload
            // (A typed-throws `catch SRTPError.x where …` here hangs the 6.3.1 SIL passes: plain Result instead.)
            switch unprotectRTP(receiver, &p) {
            case .success:
                let seq = UInt16(p[2]) << 8 | UInt16(p[3])
                XCTAssertEqual(p, fixture.rtpBySequence[seq], "RTP SEQ \(seq) decrypts to something else")
                decrypted.insert(seq)
            case .failure(let e):
                // RFC 4771 late join: rocUnknown only before the first ROC-carrying packet.
                guard case .rocUnknown = e, decrypted.isEmpty else { throw e }
                rocUnknown += 1
            }
        }
        var rtcpMatched = 0
        for f in srtcp {
            var p = f.payload
            _ = try receiver.unprotectRTCP(&p)
            XCTAssertTrue(fixture.rtcp.contains(p), "SRTCP packet decrypts to no RTCP packet of the fixture")
            rtcpMatched += 1
        }
        let missing = fixture.rtp.count - decrypted.count - rocUnknown
        XCTAssertLessThan(rocUnknown, Int(session.policy.rocTransmissionRate), "late-join drops beyond the first ROC-carrying packet")
        XCTAssertLessThanOrEqual(missing, 3, "RTP packets lost: \(missing) of \(fixture.rtp.count)")
        XCTAssertEqual(rtcpMatched, fixture.rtcp.count)

        // The same capture through `mbms-gateway receive` (the Receiver module, the UE-side
        // oracle), with an MSK message from `keys deliver`: exit 0 means every SRTP/SRTCP packet
        // decrypted and no TS 33.246 rule was broken (MTK used before its MIKEY message, MIKEY to
        // an address other than the SRTP's, ...). Late-join packets are held until the ROC is
        // known, so every RTP packet that came out is in the plaintext capture.
        let plain = try h.receive(pcap, keyGroup: session.keyGroup.rawValue, muk: muk, ueID: "ue-live@example")
        var received = Set<UInt16>(), receivedRTCP = 0
        for f in try readFrames(plain) {
            guard let u = f.udp else { continue }
            let p = f.payload
            if u.destination == h.output {
                let seq = UInt16(p[2]) << 8 | UInt16(p[3])
                XCTAssertEqual(p, fixture.rtpBySequence[seq], "receive: RTP SEQ \(seq) decrypts to something else")
                received.insert(seq)
            } else if u.destination == h.rtcpOutput {
                XCTAssertTrue(fixture.rtcp.contains(p), "receive: RTCP payload not in the fixture")
                receivedRTCP += 1
            }
        }
        XCTAssertEqual(received.count, srtp.count, "receive: every captured SRTP packet decrypted")
        XCTAssertEqual(receivedRTCP, srtcp.count)
        print("live (\(multicast ? "multicast" : ipv6 ? "IPv6 unicast" : "unicast")): \(fixture.rtp.count) RTP sent, \(srtp.count) SRTP captured, \(decrypted.count) decrypted, \(rocUnknown) late-join, \(missing) missing; \(srtcp.count) SRTCP, \(mikey.count) MIKEY, \(mkis.count) MTKs")
    }

    /// /metrics scraped while the gateway runs: packet and MIKEY counters present and non-zero.
    func testMetricsEndpointCountsPacketsDuringRun() throws {
        let h = try LiveHarness(test: "metrics")
        harness = h
        let fixture = try LiveFixture.load(limit: 400)
        let port = try LiveHarness.freeTCPPort()
        try h.start(metrics: "127.0.0.1:\(port)")
        try h.send(fixture, pacing: 0.010, perBatch: 32)
        h.waitForQuiet(expectedRTP: fixture.rtp.count)
        let text = try LiveHarness.httpGet(host: "127.0.0.1", port: port, path: "/metrics")
        func value(_ series: String) -> Double? {
            for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
                return Double(line.dropFirst(series.count + 1))
            }
            return nil
        }
        let rtpIn = try XCTUnwrap(value(#"mbms_packets_in_total{session="live",kind="rtp"}"#), text)
        let rtpOut = try XCTUnwrap(value(#"mbms_packets_out_total{session="live",kind="rtp"}"#), text)
        let bytesOut = try XCTUnwrap(value(#"mbms_bytes_out_total{session="live",kind="rtp"}"#), text)
        let mikey = try XCTUnwrap(value(#"mbms_mikey_messages_sent_total{session="live"}"#), text)
        XCTAssertGreaterThan(rtpIn, 0)
        XCTAssertGreaterThan(rtpOut, 0)
        XCTAssertGreaterThan(bytesOut, 0)
        XCTAssertGreaterThan(mikey, 0)
        XCTAssertNotNil(value(#"mbms_batch_packets_count{session="live",kind="rtp"}"#), text)
        XCTAssertTrue(text.contains("mbms_mtk_switches_total"), text)
        XCTAssertEqual(try LiveHarness.httpStatus(host: "127.0.0.1", port: port, path: "/nope"), 404)
        let (status, stdout, stderr) = try h.interruptAndWait(signal: SIGTERM)
        XCTAssertEqual(status, 0, stderr)
        XCTAssertTrue(stdout.contains("run stopped (signal)"), stdout)
    }

    /// --duration stops the gateway by itself: drain, summary, exit 0.
    func testDurationStopsAndPrintsSummary() throws {
        let h = try LiveHarness(test: "duration")
        harness = h
        let (status, stdout, stderr) = try h.runToEnd(["run", "--config", h.configPath, "--duration", "1"])
        XCTAssertEqual(status, 0, stderr)
        XCTAssertTrue(stdout.contains("run stopped (duration)"), stdout)
        XCTAssertTrue(stderr.contains("gateway stopped"), stderr)
    }

    /// Setup errors name the address or flag and the fix: an unknown --interface, and an input
    /// port another program holds (bound without SO_REUSEADDR).
    func testSetupErrorsNameTheFix() throws {
        let h = try LiveHarness(test: "setup")
        harness = h
        var r = try h.runToEnd(["run", "--config", h.configPath, "--duration", "5", "--interface", "nosuch0"])
        XCTAssertNotEqual(r.0, 0)
        XCTAssertTrue(r.2.contains("--interface nosuch0: no such network interface"), r.2)

        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(s, 0)
        defer { close(s) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = h.input.port.bigEndian
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw XCTSkip("could not occupy \(h.input) for the test") }
        r = try h.runToEnd(["run", "--config", h.configPath, "--duration", "5"])
        XCTAssertNotEqual(r.0, 0)
        XCTAssertTrue(r.2.contains("session live: cannot receive on \(h.input)"), r.2)
        XCTAssertTrue(r.2.contains("Another program holds this address and port"), r.2)
    }

    /// No key store: `run` refuses and names the command that creates it.
    func testMissingKeyStoreNamesKeysInit() throws {
        let h = try LiveHarness(test: "nokeys", keysInit: false)
        harness = h
        let (status, _, stderr) = try h.runToEnd(["run", "--config", h.configPath, "--duration", "5"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(stderr.contains("mbms-gateway keys init --config \(h.configPath)"), stderr)
    }

    /// A unicast destination without `output` would loop: `run` refuses, naming the session and the fix.
    func testUnicastDestinationWithoutOutputIsRefused() throws {
        let h = try LiveHarness(test: "refuse", output: false)
        harness = h
        let (status, _, stderr) = try h.runToEnd(["run", "--config", h.configPath, "--duration", "5"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(stderr.contains("session live"), stderr)
        XCTAssertTrue(stderr.contains("output:"), stderr)
    }
}

func unprotectRTP(_ r: SRTPReceiver, _ p: inout [UInt8]) -> Result<SRTPReceiveInfo, SRTPError> {
    do { return .success(try r.unprotectRTP(&p)) } catch { return .failure(error) }
}

/// The fixture's RTP and RTCP payloads, in capture order.
struct LiveFixture {
    var rtp: [[UInt8]] = []
    var rtcp: [[UInt8]] = []
    var rtpBySequence: [UInt16: [UInt8]] = [:]
    /// (payload, isRTCP) in capture order.
    var order: [([UInt8], Bool)] = []

    static func load(limit: Int = .max) throws -> LiveFixture {
        let frames = try readFrames(try TestGateway.fixture("rtp-seqwrap.pcap"))
        var f = LiveFixture()
        for fr in frames {
            guard let u = fr.udp, f.order.count < limit else { continue }
            let p = fr.payload
            if u.destination.port == 5010 {
                f.rtp.append(p)
                f.rtpBySequence[UInt16(p[2]) << 8 | UInt16(p[3])] = p
                f.order.append((p, false))
            } else if u.destination.port == 5011 {
                f.rtcp.append(p)
                f.order.append((p, true))
            }
        }
        guard !f.rtp.isEmpty else { throw XCTSkip("rtp-seqwrap.pcap has no RTP on port 5010") }
        return f
    }
}

/// Receives what the gateway sends (SRTP, SRTCP, MIKEY) on its own threads.
final class LiveCollector: @unchecked Sendable {
    struct Datagram { var time: UInt64; var source: TransportAddress?; var destination: TransportAddress; var payload: [UInt8] }
    private let lock = NSLock()
    private var datagrams: [Datagram] = []
    private let sockets: [UDPBatchSocket]
    private var stopped = false
    private let done = DispatchGroup()

    init(addresses: [TransportAddress], options: UDPSocketOptions) throws {
        sockets = try addresses.map { try UDPBatchSocket(bind: $0, options: options, maxBatch: 64) }
    }

    func start() {
        for index in sockets.indices {
            let address = sockets[index].localAddress
            done.enter()
            Thread.detachNewThread { [self] in
                let s = sockets[index]
                let capacity = 65_536
                let pool = UnsafeMutableRawPointer.allocate(byteCount: capacity * 64, alignment: 16)
                let slots = UnsafeMutableBufferPointer<DatagramSlot>.allocate(capacity: 64)
                for k in 0..<64 { slots.initializeElement(at: k, to: DatagramSlot(bytes: pool + k * capacity, capacity: capacity)) }
                defer { slots.deallocate(); pool.deallocate(); done.leave() }
                while !isStopped {
                    guard let n = try? s.receive(into: slots, timeoutMilliseconds: 50), n > 0 else { continue }
                    let now = DispatchTime.now().uptimeNanoseconds
                    var got: [Datagram] = []
                    for k in 0..<n {
                        got.append(Datagram(time: now, source: slots[k].peer, destination: address,
                                            payload: Array(UnsafeRawBufferPointer(start: slots[k].bytes, count: slots[k].length))))
                    }
                    lock.lock(); datagrams += got; lock.unlock()
                }
            }
        }
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    func stop() {
        lock.lock(); stopped = true; lock.unlock()
        _ = done.wait(timeout: .now() + 5)
    }

    func count(_ destination: TransportAddress) -> Int {
        lock.lock(); defer { lock.unlock() }
        return datagrams.reduce(0) { $0 + ($1.destination == destination ? 1 : 0) }
    }

    /// The payloads received on `destination`, in arrival order.
    func payloads(_ destination: TransportAddress) -> [[UInt8]] {
        lock.lock(); defer { lock.unlock() }
        return datagrams.sorted { $0.time < $1.time }.filter { $0.destination == destination }.map(\.payload)
    }

    /// Everything received, in arrival order, as Ethernet frames with the wall clock of the test.
    func writeCapture(to path: String) throws {
        lock.lock(); let all = datagrams.sorted { $0.time < $1.time }; lock.unlock()
        let writer = try CaptureWriter(path: path, dataLinkType: LinkType.ethernet.rawValue)
        defer { writer.close() }
        let base = UInt64(Date().timeIntervalSince1970 * 1e9) - DispatchTime.now().uptimeNanoseconds
        for d in all {
            let frame = UDPFrameEditor.buildFrame(linkType: .ethernet, template: nil,
                                                  source: d.source ?? TransportAddress(.v4(0x7F00_0001), 0),
                                                  destination: d.destination, hopLimit: 64, payload: d.payload)
            writer.write(timestampNanoseconds: base &+ d.time, bytes: frame)
        }
    }
}

/// A temporary gateway process: configuration, key store (via `keys init`), ports, collector.
final class LiveHarness {
    let directory: URL
    let configPath: String
    let binary: URL
    let input: TransportAddress
    let output: TransportAddress
    let rtcpOutput: TransportAddress
    let mikey: TransportAddress
    let collector: LiveCollector
    private(set) var process: Process?
    private(set) var startedAt = Date()

    let multicast: Bool
    /// Socket options of the test's own sockets (multicast: loopback interface, TTL 0).
    let socketOptions: UDPSocketOptions
    /// Extra `run` arguments.
    let runArguments: [String]

    init(test: String, output withOutput: Bool = true, multicast: Bool = false, ipv6: Bool = false, keysInit: Bool = true,
         mtk: String = "{ period: 4s, announceLead: 1s, repeat: 1s }",
         protection: String = "{ cipher: aes-256-cm, auth: rccm2, rocRate: 16 }") throws {
        guard let b = LiveHarness.product("mbms-gateway") else {
            throw XCTSkip("mbms-gateway executable not found: build it first (swift build --build-tests)")
        }
        binary = b
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("mbms-live-\(test)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        configPath = directory.appendingPathComponent("gateway.yaml").path
        self.multicast = multicast
        let outIP: IPAddress, inIP: IPAddress
        if multicast {
            // Groups of their own; nothing leaves the host: interface lo, TTL 0.
            outIP = .v4(0xEFFF_4D00 | UInt32.random(in: 1...254))
            inIP = .v4(0xEFFF_4E00 | UInt32.random(in: 1...254))
            socketOptions = UDPSocketOptions(interface: "lo", multicastTTL: 0, multicastLoop: true)
            runArguments = ["--interface", "lo", "--multicast-ttl", "0", "--multicast-loop"]
        } else if ipv6 {
            // ::1 is the only IPv6 loopback address: its port 2269 is shared with other runs.
            outIP = .v6(0, 1)
            inIP = .v6(0, 1)
            socketOptions = UDPSocketOptions()
            runArguments = []
        } else {
            // Output on a loopback address of its own, so its MIKEY port (2269) is ours alone.
            outIP = .v4(0x7F4D_0000 | UInt32.random(in: 0x0101...0xFEFE))
            inIP = .v4(0x7F00_0001)
            socketOptions = UDPSocketOptions()
            runArguments = []
        }
        let (collector, outPort) = try LiveHarness.bindPair(outIP, extra: StreamingSession.mikeyPort, options: socketOptions)
        self.collector = collector
        output = TransportAddress(outIP, outPort)
        rtcpOutput = TransportAddress(outIP, outPort + 1)
        mikey = TransportAddress(outIP, StreamingSession.mikeyPort)
        input = TransportAddress(inIP, try LiveHarness.freeUDPPair(inIP, options: socketOptions))
        let outputLine = withOutput ? ", output: \"\(output)\"" : ""
        let yaml = """
            keyDomain: { mcc: "001", mnc: "01" }
            bmscFQDN: bmsc.example.org
            keyStore: { path: keys.sqlite, kekFile: kek.hex }
            schedule:
              epoch: 2026-01-01T00:00:00Z
              mtk: \(mtk)
              msk: { period: 1d }
            sessions:
              - { name: live, kind: rtp, destination: "\(input)"\(outputLine), keyGroup: 1, protection: \(protection) }
            """
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        guard keysInit else { return }
        let (status, _, stderr) = try runToEnd(["keys", "init", "--config", configPath, "--create-kek"])
        guard status == 0 else { throw XCTSkip("keys init failed (\(status)): \(stderr)") }
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// A file readable by its owner only (secrets for the CLI's --muk-file).
    func writeSecret(_ name: String, _ text: String) throws {
        let fd = open(path(name), O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw LiveTestError("cannot create \(path(name))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else { throw LiveTestError("cannot write \(path(name))") }
    }

    /// Starts `run` and waits (bounded) for its first MIKEY message: the sockets are bound then.
    func start(metrics: String?, startCollector: Bool = true) throws {
        if startCollector { collector.start() }
        let before = collector.count(mikey)
        let p = Process()
        p.executableURL = binary
        var args = ["run", "--config", configPath, "--duration", "40", "--log-level", "info"] + runArguments
        if let m = metrics { args += ["--metrics", m] }
        p.arguments = args
        _ = FileManager.default.createFile(atPath: path("stdout.txt"), contents: nil)
        _ = FileManager.default.createFile(atPath: path("stderr.txt"), contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: path("stdout.txt")))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: path("stderr.txt")))
        startedAt = Date()
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(20)
        while collector.count(mikey) == before {
            guard p.isRunning else {
                throw LiveTestError("gateway exited (\(p.terminationStatus)) before sending MIKEY:\n\(read("stderr.txt"))")
            }
            guard Date() < deadline else { throw LiveTestError("no MIKEY message from the gateway within 20 s:\n\(read("stderr.txt"))") }
            usleep(20_000)
        }
    }

    /// Sends the fixture's payloads to the gateway in capture order, `perBatch` datagrams
    /// per sendmmsg, `pacing` seconds apart.
    func send(_ f: LiveFixture, pacing: Double, perBatch: Int) throws {
        try send(f.order, pacing: pacing, perBatch: perBatch)
    }

    /// Sends (payload, isRTCP) datagrams to the gateway's RTP and RTCP ports, in order.
    func send(_ order: [([UInt8], Bool)], pacing: Double, perBatch: Int) throws {
        let local: IPAddress
        if case .v6 = input.address { local = .v6(0, 1) } else { local = multicast ? .v4(0) : .v4(0x7F00_0001) }
        let socket = try UDPBatchSocket(bind: TransportAddress(local, 0), options: socketOptions, maxBatch: 64)
        let rtcpInput = TransportAddress(input.address, input.port + 1)
        var start = 0
        while start < order.count {
            let chunk = order[start..<min(order.count, start + perBatch)]
            let total = chunk.reduce(0) { $0 + $1.0.count }
            let pool = UnsafeMutableRawPointer.allocate(byteCount: max(1, total), alignment: 16)
            defer { pool.deallocate() }
            var slots: [DatagramSlot] = []
            var offset = 0
            for (payload, isRTCP) in chunk {
                payload.withUnsafeBytes { b in
                    if let base = b.baseAddress { (pool + offset).copyMemory(from: base, byteCount: b.count) }
                }
                var slot = DatagramSlot(bytes: pool + offset, capacity: payload.count)
                slot.length = payload.count
                slot.peer = isRTCP ? rtcpInput : input
                slots.append(slot)
                offset += payload.count
            }
            try slots.withUnsafeMutableBufferPointer { _ = try socket.send($0) }
            start += perBatch
            usleep(UInt32(pacing * 1e6))
        }
    }

    /// Waits until the expected count came out or nothing new arrived for 0.5 s (at most 10 s).
    func waitForQuiet(expectedRTP: Int) {
        let deadline = Date().addingTimeInterval(10)
        var last = -1, stableSince = Date()
        while Date() < deadline {
            let n = collector.count(output)
            if n >= expectedRTP { return }
            if n != last { last = n; stableSince = Date() } else if Date().timeIntervalSince(stableSince) > 0.5 { return }
            usleep(50_000)
        }
    }

    /// The UE side through the binary: `keys deliver` makes the MSK message for this MUK, then
    /// `receive` decrypts `capture` (exit 0: every SRTP/SRTCP packet decrypted, no TS 33.246 rule
    /// broken). Returns the plaintext capture's path.
    func receive(_ capture: String, keyGroup: UInt16, muk: SecretBytes, ueID: String,
                 file: StaticString = #filePath, line: UInt = #line) throws -> String {
        try writeSecret("muk.hex", muk.revealedBytes().map { String(format: "%02x", $0) }.joined())
        var r = try runToEnd(["keys", "deliver", "--config", configPath, "--key-group", "\(keyGroup)",
                              "--muk-file", path("muk.hex"), "--ue-id", ueID, "--output", path("msk.bin")])
        XCTAssertEqual(r.0, 0, "keys deliver: \(r.1)\(r.2)", file: file, line: line)
        let plain = path("plain.pcap")
        r = try runToEnd(["receive", "--input", capture, "--output", plain, "--muk-file", path("muk.hex"), "--ue-id", ueID,
                          "--config", configPath, "--msk-message", path("msk.bin")])
        XCTAssertEqual(r.0, 0, "receive: \(r.1)\(r.2)", file: file, line: line)
        return plain
    }

    /// kill -9 (no drain, no summary), then waits for the exit; the collector keeps running.
    func killHard() {
        guard let p = process else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    /// SIGINT, then waits (bounded) for the exit; the collector stops after a short drain.
    func interruptAndWait(signal: Int32 = SIGINT) throws -> (Int32, String, String) {
        guard let p = process else { throw LiveTestError("not started") }
        kill(p.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(10)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            throw LiveTestError("gateway did not exit within 10 s of SIGINT:\n\(read("stderr.txt"))")
        }
        p.waitUntilExit()
        usleep(200_000)
        collector.stop()
        return (p.terminationStatus, read("stdout.txt"), read("stderr.txt"))
    }

    /// Runs the binary to completion (bounded: 30 s).
    func runToEnd(_ args: [String]) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        p.currentDirectoryURL = directory
        let out = path("cmd-\(UUID().uuidString).out"), err = out + ".err"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try p.run()
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "", (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    func read(_ name: String) -> String { (try? String(contentsOfFile: path(name), encoding: .utf8)) ?? "" }

    /// Kills the child if it still runs, stops the collector, removes the folder.
    func shutdown() {
        if let p = process, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        collector.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: ports

    /// Binds the collector on ip:port, ip:port+1 and ip:extra for a free port pair.
    static func bindPair(_ ip: IPAddress, extra: UInt16, options: UDPSocketOptions) throws -> (LiveCollector, UInt16) {
        for _ in 0..<50 {
            let port = UInt16.random(in: 20_000...59_998) & ~1
            if let c = try? LiveCollector(addresses: [TransportAddress(ip, port), TransportAddress(ip, port + 1), TransportAddress(ip, extra)], options: options) {
                return (c, port)
            }
        }
        throw LiveTestError("no free UDP port pair on \(ip)")
    }

    /// A port p such that p and p + 1 are free on ip now (closed again: the gateway binds them).
    static func freeUDPPair(_ ip: IPAddress, options: UDPSocketOptions) throws -> UInt16 {
        for _ in 0..<50 {
            let port = UInt16.random(in: 20_000...59_998) & ~1
            let ok = (try? [UDPBatchSocket(bind: TransportAddress(ip, port), options: options),
                            UDPBatchSocket(bind: TransportAddress(ip, port + 1), options: options)]) != nil
            if ok { return port }
        }
        throw LiveTestError("no free UDP port pair on \(ip)")
    }

    static func freeTCPPort() throws -> UInt16 {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw LiveTestError("socket: \(errno)") }
        defer { close(s) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &a) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) == 0 && getsockname(s, $0, &len) == 0 }
        }
        guard rc else { throw LiveTestError("bind: \(errno)") }
        return UInt16(bigEndian: a.sin_port)
    }

    /// A one-shot HTTP/1.1 GET on loopback (bounded: 5 s); returns the whole response.
    static func httpRaw(host: String, port: UInt16, path: String) throws -> String {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw LiveTestError("socket: \(errno)") }
        defer { close(s) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        _ = inet_pton(AF_INET, host, &a.sin_addr)
        let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 } }
        guard ok else { throw LiveTestError("connect \(host):\(port): \(String(cString: strerror(errno)))") }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { Glibc.send(s, $0.baseAddress, $0.count, 0) }
        var response: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(s, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buf[0..<n]
        }
        return String(decoding: response, as: UTF8.self)
    }

    static func httpGet(host: String, port: UInt16, path: String) throws -> String {
        let r = try httpRaw(host: host, port: port, path: path)
        guard r.hasPrefix("HTTP/1.1 200"), let body = r.range(of: "\r\n\r\n") else { throw LiveTestError("GET \(path): \(r.prefix(200))") }
        return String(r[body.upperBound...])
    }

    static func httpStatus(host: String, port: UInt16, path: String) throws -> Int {
        let r = try httpRaw(host: host, port: port, path: path)
        let parts = r.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let code = Int(parts[1]) else { throw LiveTestError("bad HTTP response: \(r.prefix(200))") }
        return code
    }

    /// A built executable of this package (next to the test bundle, or .build/debug).
    static func product(_ name: String) -> URL? { Tool.product(name) }
}

struct LiveTestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
