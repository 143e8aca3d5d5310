import CryptoCore
import Foundation
import MIKEY
import PacketIO
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// MSK delivery end to end (TS 33.246 6.3.2.3, 6.4.5.2, 6.3.2.1B, 6.3.2.2.4): `keyserver` as a
/// child process; each UE registers over HTTP with Tools/keyserver_client.py (bound to the UE's
/// own loopback address, which the key server takes as the UE's IP) and listens on that address,
/// UDP 2269, with the MIKEY module's MGV-F (`UEKeyProcessor`, MUK = Ks_NAF for GBA_ME).
final class MSKDeliveryEndToEndTests: XCTestCase {
    private var harness: KeyServerHarness?
    override func tearDown() {
        harness?.shutdown()
        harness = nil
        super.tearDown()
    }

    /// A UE's MIKEY side: a UDP socket on ip:2269 and its MGV-F.
    final class UDPUE {
        struct Message { var time: Date; var bytes: [UInt8]; var timestamp: UInt32; var outcome: String }
        let ue: KeyServerHarness.UE
        let address: String
        let socket: UDPBatchSocket
        var processor: UEKeyProcessor
        var messages: [Message] = []
        var answer: Bool
        private let pool = UnsafeMutableRawPointer.allocate(byteCount: 8 * 4096, alignment: 16)
        private let slots = UnsafeMutableBufferPointer<DatagramSlot>.allocate(capacity: 8)

        init(_ ue: KeyServerHarness.UE, address: String, answer: Bool) throws {
            self.ue = ue
            self.address = address
            self.answer = answer
            guard let ip = IPAddress(address), let muk = try? Hex.decode(ue.ksNAF) else { throw HarnessError("bad UE \(address)") }
            socket = try UDPBatchSocket(bind: TransportAddress(ip, 2269), maxBatch: 8)
            processor = UEKeyProcessor(muk: SecretBytes(muk), nafID: KeyServerHarness.bmsc, bTID: ue.btid)
        }
        deinit { pool.deallocate(); slots.deallocate() }

        /// Receives for `seconds` (or until `until` holds), processing each message and, when
        /// `answer` is set, sending the verification message back to where it came from.
        func pump(seconds: Double, until: ((UDPUE) -> Bool)? = nil) throws {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let until, until(self) { return }
                for k in 0..<8 { slots[k] = DatagramSlot(bytes: pool + k * 4096, capacity: 4096) }
                let n = try socket.receive(into: slots, timeoutMilliseconds: 50)
                for k in 0..<n {
                    let bytes = Array(UnsafeRawBufferPointer(start: slots[k].bytes, count: slots[k].length))
                    var ts: UInt32 = 0
                    if case .counter(let t)? = try? MIKEYDecoder.decode(bytes).timestamp { ts = t }
                    var reply: [UInt8]?
                    let outcome: String
                    switch processor.process(bytes) {
                    case .success(.msk(let m, let v)): outcome = "msk \(m.mskID.keyNumber)"; reply = v
                    case .success(.mskInvalidated(_, let id, let v)): outcome = "invalidated \(id.keyNumber)"; reply = v
                    case .success(.solicitedPull): outcome = "pull"
                    case .success(let other): outcome = "other \(other)"
                    case .failure(let e): outcome = "rejected \(e)"
                    }
                    messages.append(Message(time: Date(), bytes: bytes, timestamp: ts, outcome: outcome))
                    if answer, var r = reply, let peer = slots[k].peer {
                        try r.withUnsafeMutableBytes { b in
                            var s = DatagramSlot(bytes: b.baseAddress!, capacity: b.count)
                            s.length = b.count
                            s.peer = peer
                            _ = try withUnsafeMutablePointer(to: &s) { try socket.send(UnsafeMutableBufferPointer(start: $0, count: 1)) }
                        }
                    }
                }
            }
        }

        var outcomes: [String] { messages.map(\.outcome) }
    }

    func register(_ h: KeyServerHarness, _ u: UDPUE, type: String = "register", _ arguments: [String] = []) throws -> [String: Any] {
        try h.client(type, ue: u.ue, ["--source", u.address] + arguments)
    }

    /// A registered UE gets the current and the next MSK on 127.0.0.77:2269 within a second,
    /// verifies, and gets nothing more; a UE that never answers gets the configured
    /// retransmissions with increasing TS, then none. Deregistration invalidates the UE's MSKs;
    /// `keys pull` makes the UE ask again (msk-request), and it gets the MSK again.
    func testPushVerificationRetransmissionInvalidationAndPull() throws {
        let h = try KeyServerHarness(test: "delivery", ueCount: 2, tls: false, keyServerLines: "\n  retransmitAfter: 1s\n  maximumAttempts: 3")
        harness = h
        try h.start()
        let good = try UDPUE(h.ues[0], address: "127.0.0.77", answer: true)
        let silent = try UDPUE(h.ues[1], address: "127.0.0.78", answer: false)

        let registered = Date()
        let r = try register(h, good, ["--service", "urn:3gpp:mbms:svc1"])
        XCTAssertEqual(r["status"] as? Int, 200, "\(r)")
        try good.pump(seconds: 2, until: { $0.messages.count >= 2 })
        XCTAssertEqual(good.outcomes, ["msk 1", "msk 2"], "current and next MSK, accepted by the MGV-F")
        XCTAssertLessThan(good.messages.last.map { $0.time.timeIntervalSince(registered) } ?? 99, 1.0 + 0.6,
                          "within a second of the 200 (plus the client's own start-up)")
        try good.pump(seconds: 3)
        XCTAssertEqual(good.messages.count, 2, "no retransmission after the verification messages: \(good.outcomes)")

        XCTAssertEqual(try register(h, silent, ["--service", "urn:3gpp:mbms:svc1"])["status"] as? Int, 200)
        try silent.pump(seconds: 9)
        let stamps = silent.messages.map(\.timestamp)
        XCTAssertEqual(silent.messages.count, 6, "2 deliveries × 3 attempts (1 s, then 2 s back-off), then nothing: \(silent.outcomes)")
        XCTAssertEqual(stamps, stamps.sorted())
        XCTAssertEqual(Set(stamps).count, stamps.count, "every retransmission takes a new TS (6.4.3)")

        // Deregistration: both MSKs invalidated at the UE.
        XCTAssertEqual(try register(h, good, type: "deregister", ["--service", "urn:3gpp:mbms:svc1"])["status"] as? Int, 200)
        try good.pump(seconds: 2, until: { $0.messages.count >= 4 })
        XCTAssertEqual(Array(good.outcomes.dropFirst(2)), ["invalidated 1", "invalidated 2"])

        // keys pull: the registered UE is asked to fetch the key group again; it does.
        let pull = try h.runToEnd(["keys", "pull", "--config", h.configPath, "--key-group", "1"])
        XCTAssertEqual(pull.0, 0, pull.2)
        XCTAssertTrue(pull.1.contains("solicited pull queued for 1 UE(s)"), pull.1)
        let before = silent.messages.count
        try silent.pump(seconds: 2, until: { $0.messages.count > before })
        XCTAssertEqual(silent.outcomes.last, "pull")
        let again = try register(h, silent, type: "msk-request", ["--key", "00F110:00010000"])
        XCTAssertEqual(again["status"] as? Int, 200, "\(again)")
        try silent.pump(seconds: 2, until: { $0.outcomes.dropFirst(before + 1).contains("msk 1") })
        XCTAssertTrue(silent.outcomes.dropFirst(before + 1).contains("msk 1"), "the MSK again after the UE's msk-request: \(silent.outcomes)")

        let (status, stdout, stderr) = try h.stop()
        XCTAssertEqual(status, 0, stderr)
        XCTAssertTrue(stdout.contains("verified: 4"), stdout)
        XCTAssertFalse(stderr.contains(h.ues[0].ksNAF), "no key in the logs")
    }

    /// kill -9 of the key server during a push wave, then a restart: every UE still gets both
    /// MSKs, and no TS value is used twice for a UE (from the captured messages).
    func testKillDuringPushWaveLosesNothingAndReusesNoTimestamp() throws {
        let count = 10
        let h = try KeyServerHarness(test: "killwave", ueCount: count, tls: false, keyServerLines: "\n  pushRate: 2\n  retransmitAfter: 1s")
        harness = h
        try h.start()
        let ues = try (0..<count).map { try UDPUE(h.ues[$0], address: "127.0.0.\(100 + $0)", answer: true) }
        for u in ues { XCTAssertEqual(try register(h, u, ["--service", "urn:3gpp:mbms:svc1"])["status"] as? Int, 200) }
        // 20 MSK messages at 2 a second: kill -9 in the middle of the wave.
        for u in ues { try u.pump(seconds: 0.1) }
        guard let p = h.process else { return XCTFail("not started") }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let beforeKill = ues.map(\.messages.count).reduce(0, +)
        let completeBeforeKill = ues.filter { Set($0.outcomes).isSuperset(of: ["msk 1", "msk 2"]) }.count
        try h.start()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, !ues.allSatisfy({ Set($0.outcomes).isSuperset(of: ["msk 1", "msk 2"]) }) {
            for u in ues { try u.pump(seconds: 0.05) }
        }
        for u in ues {
            XCTAssertTrue(Set(u.outcomes).isSuperset(of: ["msk 1", "msk 2"]), "\(u.address): \(u.outcomes)")
            let stamps = u.messages.map(\.timestamp)
            XCTAssertEqual(Set(stamps).count, stamps.count, "\(u.address): a TS value used twice: \(stamps)")
        }
        print("kill during push wave: \(beforeKill) messages (\(completeBeforeKill) of \(count) UEs complete) before the kill, \(ues.map(\.messages.count).reduce(0, +)) in all")
        XCTAssertLessThan(completeBeforeKill, count, "the kill came during the wave")
    }
}
