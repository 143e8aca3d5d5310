import CryptoCore
import Foundation
import Gateway
import KeyManagement
import PacketIO
import SRTP
import TestSupport
import XCTest

/// No two packets the gateway sends under one MTK share a keystream (RFC 3711 9.1, DESIGN.md
/// §7), whatever the input does: checked from the bytes alone. AES-CM's keystream for a packet
/// is its ciphertext XOR its plaintext, and the plaintexts are known (the test sent them), so
/// two packets with C₁ ⊕ P₁ = C₂ ⊕ P₂ are two packets under one (MTK, SSRC, index). The check
/// does not parse MKIs, ROCs or indices: it cannot be fooled by a wrong index in a header.
final class KeystreamReuseTests: XCTestCase {
    private var harness: LiveHarness?

    override func tearDown() {
        harness?.shutdown()
        harness = nil
        super.tearDown()
    }

    static let ssrc: UInt32 = 0x5EED_0016

    /// RTP, SEQ `seq`, 48 payload octets unique to (phase, i).
    static func rtp(seq: UInt16, timestamp: UInt32, phase: Int, i: Int) -> [UInt8] {
        var p: [UInt8] = [0x80, 96, UInt8(seq >> 8), UInt8(seq & 0xFF)]
        p += be32(timestamp) + be32(ssrc)
        p += (0..<48).map { UInt8(truncatingIfNeeded: phase &* 89 &+ i &* 7 &+ $0 &* 13 &+ 1) }
        return p
    }

    /// RTCP sender report (28 octets) with contents unique to (phase, i).
    static func rtcp(phase: Int, i: Int) -> [UInt8] {
        var p: [UInt8] = [0x80, 200, 0, 6]
        p += be32(ssrc)
        p += (0..<20).map { UInt8(truncatingIfNeeded: phase &* 53 &+ i &* 11 &+ $0 &* 5 &+ 3) }
        return p
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    /// The keystream of each protected packet over its encrypted part (SRTP: after the 12-octet
    /// header; SRTCP: after the SSRC), and the pairs that share one. Packets with fewer than 8
    /// encrypted octets are left out.
    static func reusedKeystreams(plain: [[UInt8]], protected: [[UInt8]], encryptedFrom: Int) -> [(Int, Int)] {
        var seen: [[UInt8]: Int] = [:]
        var reused: [(Int, Int)] = []
        for (k, (p, c)) in zip(plain, protected).enumerated() {
            // Too short to tell (an empty payload has an empty keystream): not compared.
            guard p.count >= encryptedFrom + 8 else { continue }
            let keystream = (encryptedFrom..<p.count).map { p[$0] ^ c[$0] }
            if let other = seen[keystream] { reused.append((other, k)) }
            seen[keystream] = k
        }
        return reused
    }

    /// `run` on loopback (one RTP session, MTK period 1 h, so one MTK throughout): SEQ 3000–3039
    /// with RTCP, the same SEQs again from "a new encoder" (other payloads and timestamps), then
    /// kill -9 and a restart, and the same SEQs a third time. No SRTP or SRTCP keystream is
    /// used twice; `receive` decrypts all 120 RTP packets back to what was sent.
    func testRunNeverReusesAKeystreamAcrossSEQRegressionAndRestart() throws {
        let h = try LiveHarness(test: "keystream", mtk: "{ period: 1h, announceLead: 2s, repeat: 1s }",
                                protection: "{ cipher: aes-128-cm, auth: rccm2, rocRate: 1 }")
        harness = h
        var sentRTP: [[UInt8]] = [], sentRTCP: [[UInt8]] = []
        func phase(_ n: Int) throws {
            var order: [([UInt8], Bool)] = []
            for i in 0..<40 {
                let p = Self.rtp(seq: UInt16(3000 + i), timestamp: UInt32(n * 1_000_000 + i * 3000), phase: n, i: i)
                order.append((p, false))
                sentRTP.append(p)
                if i % 8 == 7 {
                    let r = Self.rtcp(phase: n, i: i)
                    order.append((r, true))
                    sentRTCP.append(r)
                }
            }
            try h.send(order, pacing: 0.002, perBatch: 1)
            h.waitForQuiet(expectedRTP: sentRTP.count)
        }
        try h.start(metrics: nil)
        try phase(0)
        try phase(1)   // upstream SEQ regression
        h.killHard()   // restart within the MTK period, no clean shutdown
        try h.start(metrics: nil, startCollector: false)
        try phase(2)
        let (status, _, stderr) = try h.interruptAndWait()
        XCTAssertEqual(status, 0, stderr)

        let srtp = h.collector.payloads(h.output), srtcp = h.collector.payloads(h.rtcpOutput)
        XCTAssertEqual(srtp.count, sentRTP.count, "every RTP packet goes out (none is a duplicate)")
        XCTAssertEqual(srtcp.count, sentRTCP.count)
        XCTAssertTrue(Self.reusedKeystreams(plain: sentRTP, protected: srtp, encryptedFrom: 12).isEmpty,
                      "SRTP keystream reused: \(Self.reusedKeystreams(plain: sentRTP, protected: srtp, encryptedFrom: 12))")
        XCTAssertTrue(Self.reusedKeystreams(plain: sentRTCP, protected: srtcp, encryptedFrom: 8).isEmpty,
                      "SRTCP keystream reused: \(Self.reusedKeystreams(plain: sentRTCP, protected: srtcp, encryptedFrom: 8))")
        // One MTK throughout (unless the run crossed an hour boundary): same MKI on every packet.
        let mkis = Set(srtp.map { Array($0[60..<66]) })
        print("keystream (run): \(srtp.count) SRTP, \(srtcp.count) SRTCP, \(mkis.count) MKI(s); ROCs carried: \(Set(srtp.map { $0[66..<70].reduce(0) { $0 << 8 | UInt32($1) } }).sorted())")

        // The UE side: `receive` decrypts the whole capture, across the SEQ regression and the restart.
        let pcap = h.path("out.pcap")
        try h.collector.writeCapture(to: pcap)
        let plain = try h.receive(pcap, keyGroup: 1, muk: try SecretBytes.random(count: 32), ueID: "ue-keystream@example")
        var decrypted: [[UInt8]] = []
        for f in try readFrames(plain) where f.udp?.destination == h.output { decrypted.append(f.payload) }
        XCTAssertEqual(decrypted, sentRTP, "receive: every SRTP packet decrypts to what was sent, in order (no loss at the jump or the restart)")
    }

    /// Two replays on one store with different payloads under the same headers: each reserves
    /// its own index blocks, so the second never reuses a keystream of the first. With
    /// `.unreserved` (`replay --key-store-readonly`) they would — which the same check sees —
    /// and in exchange the same input gives the same bytes on every run.
    func testTwoReplaysOnOneStoreNeverShareAKeystream() throws {
        let gw = try TestGateway()
        let inputA = try TestGateway.fixture("rtp-seqwrap.pcap")
        // B: the same frames with every UDP payload octet after the RTP/RTCP header changed.
        let inputB = gw.path("b.pcap")
        let framesA = try readFrames(inputA)
        do {
            let writer = try CaptureWriter(path: inputB, dataLinkType: try XCTUnwrap(CaptureReader(path: inputA).linkType).rawValue)
            defer { writer.close() }
            for f in framesA {
                var bytes = f.bytes
                if let u = f.udp {
                    // RTCP: only inside the first packet of the compound, so that its length
                    // fields still add up (RFC 3550 A.2; the gateway drops RTCP whose do not).
                    let p = u.payloadOffset
                    let rtcp = u.payloadLength >= 4 && (200...204).contains(bytes[p + 1])
                    let end = rtcp ? min(u.datagramEnd, p + 4 * (Int(bytes[p + 2]) << 8 + Int(bytes[p + 3]) + 1)) : u.datagramEnd
                    for k in (p + 12)..<end { bytes[k] ^= 0x5A }
                    bytes[u.payloadOffset - 2] = 0; bytes[u.payloadOffset - 1] = 0   // no UDP checksum (IPv4)
                }
                writer.write(timestampNanoseconds: f.time, bytes: bytes)
            }
        }
        let framesB = try readFrames(inputB)
        let addresses = Set(gw.sessions.flatMap { [$0.rtp, $0.rtcp] })

        func replay(_ input: String, _ name: String, _ mode: SenderIndexMode) throws -> [Frame] {
            let out = gw.path(name)
            _ = try ReplayJob(sessions: gw.sessions, keySource: try KeySource(manager: gw.manager, senderIndices: mode),
                              options: .init(input: input, output: out)).run()
            return try readFrames(out).filter { $0.udp.map { addresses.contains($0.destination) } ?? false }
        }
        func reuse(_ outA: [Frame], _ outB: [Frame]) -> Int {
            let inA = framesA.filter { $0.udp.map { addresses.contains($0.destination) } ?? false }
            let inB = framesB.filter { $0.udp.map { addresses.contains($0.destination) } ?? false }
            XCTAssertEqual(outA.count, inA.count)
            XCTAssertEqual(outB.count, inB.count)
            var pairs = 0
            for rtcp in [false, true] {
                func pick(_ fs: [Frame]) -> [[UInt8]] {
                    fs.filter { f in gw.sessions.contains { (rtcp ? $0.rtcp : $0.rtp) == f.udp?.destination } }.map(\.payload)
                }
                // RTP headers of the fixture are 12 octets (no CSRC, no extension).
                pairs += Self.reusedKeystreams(plain: pick(inA) + pick(inB), protected: pick(outA) + pick(outB),
                                               encryptedFrom: rtcp ? 8 : 12).count
            }
            return pairs
        }

        let a1 = try replay(inputA, "a1.pcap", .reserve)
        let b1 = try replay(inputB, "b1.pcap", .reserve)
        XCTAssertGreaterThan(a1.count, 1000)
        XCTAssertEqual(reuse(a1, b1), 0, "two replays on one store share keystreams")

        let a2 = try replay(inputA, "a2.pcap", .unreserved)
        let a3 = try replay(inputA, "a3.pcap", .unreserved)
        XCTAssertEqual(a2.map(\.bytes), a3.map(\.bytes), "unreserved: the same input gives the same bytes")
        let b2 = try replay(inputB, "b2.pcap", .unreserved)
        XCTAssertGreaterThan(reuse(a2, b2), 1000, "the check sees the keystream reuse of two unreserved replays")
    }
}

/// `replay --key-store-readonly` writes nothing to the store (not even index reservations or
/// MSKs for a capture beyond the store's), says why its output must stay off the air, and gives
/// the same bytes on every run; a plain replay reserves blocks (the store changes).
final class ReadOnlyReplayTests: XCTestCase {
    func testKeyStoreReadonlyWritesNothingAndRepeatsItsBytes() throws {
        let h = try LiveHarness(test: "readonly")
        defer { h.shutdown() }
        func capture(_ name: String, startingIn seconds: Double) throws -> String {
            let path = h.path(name)
            _ = try SyntheticCapture(source: .v4(0x0A00_0001),
                                     streams: [.init(destination: h.input, ssrc: 0xAB, packetsPerSecond: 50, payloadBytes: 40...200)],
                                     startNanoseconds: UInt64(Date().timeIntervalSince1970 + seconds) * 1_000_000_000,
                                     packetsPerStream: 300).write(to: path)
            return path
        }
        /// What a replay could change: revision (MSKs, high-water mark) and index reservations.
        func storeState() throws -> String {
            let configuration = try GatewayConfiguration.load(path: h.configPath)
            let manager = try KeyManager.openSQLite(configuration: configuration, environment: [:], create: false)
            let store = try XCTUnwrap(manager.store as? SQLiteKeyStore)
            let s = try store.snapshot()
            return "revision \(s.revision), \(s.msks.count) MSKs, high water \(s.highWater ?? -1), reservations \(try store.senderIndexReservations().sorted { "\($0.key)" < "\($1.key)" })"
        }
        let soon = try capture("soon.pcap", startingIn: 60)           // inside the store's MSKs
        let later = try capture("later.pcap", startingIn: 2 * 86_400)  // beyond them: MSKs made in memory
        let before = try storeState()
        var outputs: [Data] = []
        for (k, input) in [soon, soon, later].enumerated() {
            let out = h.path("ro-\(k).pcap")
            let (status, stdout, stderr) = try h.runToEnd(["replay", "--config", h.configPath, "--input", input, "--output", out,
                                                           "--key-store-readonly", "--quiet"])
            XCTAssertEqual(status, 0, stdout + stderr)
            XCTAssertTrue(stderr.contains("shares keystreams"), stderr)
            outputs.append(try Data(contentsOf: URL(fileURLWithPath: out)))
        }
        XCTAssertEqual(try storeState(), before, "--key-store-readonly changed the key store")
        XCTAssertEqual(outputs[0], outputs[1], "the same input gives the same bytes")
        XCTAssertGreaterThan(outputs[0].count, 300 * 40)

        let (status, stdout, stderr) = try h.runToEnd(["replay", "--config", h.configPath, "--input", soon, "--output", h.path("rw.pcap"), "--quiet"])
        XCTAssertEqual(status, 0, stdout + stderr)
        let after = try storeState()
        XCTAssertNotEqual(after, before, "a plain replay reserves index blocks")
        XCTAssertTrue(after.contains("RTP ROC"), after)
    }
}

/// A store whose rows were edited behind the gateway's back stops `run` and `replay` at start
/// with the corrupt-store error (exit 1), and says to restore it — not to run `keys init`,
/// which cannot repair it.
final class CorruptStoreCLITests: XCTestCase {
    func testRunAndReplayRefuseAnEditedStore() throws {
        let sqlite = "/usr/bin/sqlite3"
        guard Tool.isInstalled(sqlite) else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { return XCTFail("sqlite3 is not installed (.ci/run installs it)") }
            throw XCTSkip("sqlite3 not installed")
        }
        let h = try LiveHarness(test: "corrupt")
        defer { h.shutdown() }
        let input = h.path("plain.pcap")
        _ = try SyntheticCapture(source: .v4(0x0A00_0001), streams: [.init(destination: h.input, ssrc: 0xAB, packetsPerSecond: 50, payloadBytes: 40...80)],
                                 startNanoseconds: UInt64(Date().timeIntervalSince1970 + 30) * 1_000_000_000, packetsPerStream: 50).write(to: input)
        let edit = try Tool.run(sqlite, [h.path("keys.sqlite"), "UPDATE msk SET validUntil = validUntil + 60 WHERE keyNumber = 1"])
        XCTAssertEqual(edit.status, 0, edit.stderr)
        for args in [["run", "--config", h.configPath, "--duration", "1"],
                     ["replay", "--config", h.configPath, "--input", input, "--output", h.path("out.pcap"), "--quiet"]] {
            let (status, stdout, stderr) = try h.runToEnd(args)
            XCTAssertEqual(status, 1, "\(args[0]): \(stdout)\(stderr)")
            XCTAssertTrue(stderr.contains("key store corrupt:") && stderr.contains("MSK 00010001 row fails authentication"), "\(args[0]): \(stderr)")
            XCTAssertTrue(stderr.contains("restore the store from a backup"), stderr)
            XCTAssertFalse(stderr.contains("keys init"), "\(args[0]) must not suggest keys init for a corrupt store: \(stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: h.path("out.pcap")))
    }
}

/// A configuration whose Key Domain differs from the store's is refused by `run` and `replay`
/// at start with the real fix (issue 19 finding 9: only `keys init` noticed it before).
final class KeyDomainMismatchCLITests: XCTestCase {
    func testRunAndReplayRefuseAStoreOfAnotherKeyDomain() throws {
        let h = try LiveHarness(test: "keydomain")
        defer { h.shutdown() }
        let yaml = try String(contentsOfFile: h.configPath, encoding: .utf8)
        try yaml.replacingOccurrences(of: "mnc: \"01\"", with: "mnc: \"02\"").write(toFile: h.configPath, atomically: true, encoding: .utf8)
        let input = h.path("plain.pcap")
        _ = try SyntheticCapture(source: .v4(0x0A00_0001), streams: [.init(destination: h.input, ssrc: 0xAB, packetsPerSecond: 50, payloadBytes: 40...80)],
                                 startNanoseconds: UInt64(Date().timeIntervalSince1970 + 30) * 1_000_000_000, packetsPerStream: 50).write(to: input)
        for args in [["run", "--config", h.configPath, "--duration", "1"],
                     ["replay", "--config", h.configPath, "--input", input, "--output", h.path("out.pcap"), "--quiet"]] {
            let (status, stdout, stderr) = try h.runToEnd(args)
            XCTAssertEqual(status, 1, "\(args[0]): \(stdout)\(stderr)")
            XCTAssertTrue(stderr.contains("belongs to Key Domain 00f110 but the configuration says 00f120"), "\(args[0]): \(stderr)")
            XCTAssertFalse(stderr.contains("keys init"), stderr)
        }
    }
}

