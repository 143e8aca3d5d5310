import CryptoCore
import Foundation
import Gateway
import KeyManagement
import MIKEY
import PacketIO
import SRTP
import XCTest

final class ReplayTests: XCTestCase {
    /// Replay each RTP fixture; a UE that holds the MSK (from a real MIKEY MSK message, MUK
    /// protected) takes the MTKs from the MIKEY messages in the output only, and decrypts every
    /// SRTP/SRTCP packet back to the input's UDP payload, byte for byte.
    func testFixturesReplayAndDecryptBackToTheInput() throws {
        for name in ["rtp-h264-aac.pcap", "rtp-seqwrap.pcap", "rtp-multicast.pcap"] {
            let gw = try TestGateway()
            let input = try TestGateway.fixture(name)
            let output = gw.path("out.pcap")
            let report = try gw.replay(input, output: output)
            XCTAssertEqual(report.statistics.totalDrops, 0, name)

            let inFrames = try readFrames(input)
            let outFrames = try readFrames(output)
            let mikey = outFrames.filter { $0.udp?.destination.port == 2269 }
            XCTAssertEqual(outFrames.count, inFrames.count + mikey.count, name)

            // The UE: MSK messages for each key group, then only what is on the air.
            let muk = try SecretBytes.random(count: 32)
            var ue = UEKeyProcessor(muk: muk, nafID: gw.configuration.bmscFQDN, bTID: "ue-1@example")
            let t0 = Date(timeIntervalSince1970: TimeInterval(inFrames[0].time / 1_000_000_000))
            for s in gw.sessions {
                let msg = try gw.manager.mskMessage(keyGroup: s.keyGroup, ueID: "ue-1@example", muk: muk, verify: false, at: t0,
                                                    builder: MIKEYMSKMessageBuilder())
                guard case .success(.msk) = ue.process(msg) else { return XCTFail("MSK message for \(s.name) rejected") }
            }
            var receivers: [Int: SRTPReceiver] = [:]
            for s in gw.sessions { receivers[s.index] = try SRTPReceiver(policy: s.policy, keyCapacity: 2) }
            func session(_ d: TransportAddress) -> (StreamingSession, Bool)? {
                for s in gw.sessions { if s.rtp == d { return (s, false) }; if s.rtcp == d { return (s, true) } }
                return nil
            }
            var plainIndex = 0, decrypted = 0, rocDrops = 0, mtksDelivered = 0
            for f in outFrames {
                guard let u = f.udp else { plainIndex += 1; continue }
                if u.destination.port == 2269 {
                    if case .success(.mtk(let m)) = ue.process(f.payload), let (s, _) = session(TransportAddress(u.destination.address, gw.sessions.first { $0.rtp.address == u.destination.address }?.rtp.port ?? 0)) {
                        mtksDelivered += 1
                        // Several sessions can share a destination IP: the MSK ID names the key group.
                        let target = gw.sessions.first { $0.keyGroup.rawValue == m.mskID.keyGroup } ?? s
                        try receivers[target.index]?.addKey(try SRTPSessionKeys(masterKey: m.key, masterSalt: try XCTUnwrap(m.salt).revealedBytes(),
                                                                                 mki: MasterKeyIdentifier(bytes: m.mki), cipher: target.policy.cipher))
                    }
                    continue
                }
                let original = inFrames[plainIndex]
                plainIndex += 1
                guard let (s, rtcp) = session(u.destination), let r = receivers[s.index] else {
                    XCTAssertEqual(f.bytes, original.bytes); continue
                }
                var p = f.payload
                do {
                    if rtcp { try r.unprotectRTCP(&p) } else { try r.unprotectRTP(&p) }
                    XCTAssertEqual(p, original.payload, "\(name) frame \(plainIndex)")
                    decrypted += 1
                } catch SRTPError.rocUnknown {
                    rocDrops += 1   // RFC 4771 late join: only before the first ROC-carrying packet
                }
            }
            XCTAssertEqual(plainIndex, inFrames.count)
            XCTAssertGreaterThan(mtksDelivered, 1, name)
            XCTAssertEqual(decrypted + rocDrops, inFrames.filter { $0.udp.map { session($0.destination) != nil } ?? false }.count, name)
            XCTAssertLessThan(rocDrops, 64, name)
        }
    }

    /// Same input, same bytes: on a fresh store, or without index reservations on a used one
    /// (`replay --key-store-readonly`; by default a second replay on a store gets index blocks of
    /// its own: KeystreamReuseTests).
    func testReplayIsDeterministic() throws {
        let gw = try TestGateway()
        let input = try TestGateway.fixture("rtp-seqwrap.pcap")
        _ = try gw.replay(input, output: gw.path("a.pcap"))
        _ = try gw.replay(input, output: gw.path("b.pcap"), senderIndices: .unreserved)
        let a = try Data(contentsOf: URL(fileURLWithPath: gw.path("a.pcap")))
        let b = try Data(contentsOf: URL(fileURLWithPath: gw.path("b.pcap")))
        XCTAssertGreaterThan(a.count, 1_000_000)
        XCTAssertEqual(a, b)
    }

    /// tshark dissects every injected MIKEY packet cleanly, and each MTK's first MIKEY message
    /// precedes its first use on that destination by at least announceLead.
    func testMIKEYInOutputIsCleanAndAnnouncedAhead() throws {
        let gw = try TestGateway()
        let output = gw.path("out.pcap")
        _ = try gw.replay(try TestGateway.fixture("rtp-multicast.pcap"), output: output)
        let fields = try runTshark(["-r", output, "-Y", "udp.dstport == 2269", "-T", "fields", "-E", "separator=|",
                                    "-e", "frame.number", "-e", "mikey.type", "-e", "_ws.malformed", "-e", "_ws.expert"])
        let lines = fields.split(separator: "\n")
        let frames = try readFrames(output)
        let mikeyFrames = frames.filter { $0.udp?.destination.port == 2269 }
        XCTAssertEqual(lines.count, mikeyFrames.count)
        XCTAssertGreaterThan(lines.count, 10)
        for l in lines {
            let f = l.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            XCTAssertEqual(f.count, 4, String(l))
            XCTAssertEqual(f[1], "0", "pre-shared-key data type: \(l)")
            XCTAssertEqual(f[2], "", "malformed: \(l)")
            XCTAssertEqual(f[3], "", "expert: \(l)")
        }
        // Announce lead: first MIKEY time per (destination IP, MTK ID) vs first SRTP use.
        let lead = UInt64(gw.configuration.schedule.announceLead) * 1_000_000_000
        var announced: [String: UInt64] = [:], used: [String: UInt64] = [:]
        for f in frames {
            guard let u = f.udp else { continue }
            if u.destination.port == 2269 {
                let m = try MIKEYDecoder.decode(f.payload)
                let ids = try XCTUnwrap(m.keyIDInformation)
                let key = "\(u.destination.address)/\(ids.mskID.map { "\($0)" } ?? "?")/\(ids.mtkID.map { "\($0)" } ?? "?")"
                if announced[key] == nil { announced[key] = f.time }
            } else if let s = gw.sessions.first(where: { $0.rtp == u.destination }) {
                // MKI: the 6 octets before the RCC tag of this packet.
                let p = f.payload
                let seq = UInt16(p[2]) << 8 | UInt16(p[3])
                let tag = s.policy.tagLength(sequenceNumber: seq)
                let mki = Array(p[(p.count - tag - 6)..<(p.count - tag)])
                let mskID = MIKEY.MSKID(rawValue: UInt32(mki[0]) << 24 | UInt32(mki[1]) << 16 | UInt32(mki[2]) << 8 | UInt32(mki[3]))
                let key = "\(u.destination.address)/\(mskID)/\(MIKEY.MTKID(UInt16(mki[4]) << 8 | UInt16(mki[5])))"
                if used[key] == nil { used[key] = f.time }
            }
        }
        XCTAssertGreaterThan(used.count, 2)
        for (key, t) in used {
            let a = try XCTUnwrap(announced[key], "MTK \(key) used but never announced; announced: \(announced.keys.sorted())")
            XCTAssertLessThanOrEqual(a + lead, t, "MTK \(key) announced at \(a), used at \(t)")
        }
    }
}

final class ReplayRetimingTests: XCTestCase {
    /// --start-time: every input frame keeps its spacing and the first lands on the start time.
    func testStartTimeShiftsEveryFrame() throws {
        let gw = try TestGateway()
        let input = try TestGateway.fixture("rtp-seqwrap.pcap")
        var options = ReplayJob.Options(input: input, output: gw.path("shifted.pcap"))
        let start: UInt64 = 1_800_000_000_000_000_000
        options.startNanoseconds = start
        _ = try ReplayJob(sessions: gw.sessions, keySource: try KeySource(manager: gw.manager), options: options).run()
        let original = try readFrames(input)
        let shifted = try readFrames(gw.path("shifted.pcap")).filter { $0.udp?.destination.port != 2269 }
        XCTAssertEqual(shifted.count, original.count)
        XCTAssertEqual(shifted.first?.time, start)
        for (a, b) in zip(original, shifted) {
            XCTAssertEqual(b.time - start, (a.time - original[0].time) / 1000 * 1000)
        }
    }
}
