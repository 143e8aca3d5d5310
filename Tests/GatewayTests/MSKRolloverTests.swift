import CryptoCore
import Foundation
import Gateway
import KeyManagement
import KeyServer
import MIKEY
import PacketIO
import SRTP
import TestSupport
import XCTest

/// Issue 18: the Key Distribution function and the streaming data plane across MSK rollovers.
/// The distributor's clock moves second by second over a capture that spans two MSK rollovers
/// (MSK period 60 s, MTK period 10 s); every registered UE gets each MSK before the first packet
/// protected under it, and then decrypts the whole protected output with MTKs taken only from
/// the output's MIKEY MTK messages, opened with the MSKs the distributor delivered.
final class MSKRolloverTests: XCTestCase {
    var directory: URL!
    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("mbms-rollover-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    static let yaml = """
        keyDomain: { mcc: "001", mnc: "01" }
        bmscFQDN: bmsc.example.org
        keyStore: { path: keys.sqlite }
        schedule:
          epoch: 2026-01-01T00:00:00Z
          mtk: { period: 10s, announceLead: 2s, repeat: 1s }
          msk: { period: 60s }
        sessions:
          - { name: video, kind: rtp, destination: 239.1.1.1:5000, keyGroup: 1, protection: { auth: rccm2, rocRate: 1 } }
        keyServer: { listen: 127.0.0.1:18080 }
        userServices:
          - { id: "urn:svc:tv", sessions: [video] }
        """

    /// A registered UE: its MUK (in the store), the MGV-F that answers the distributor, and the
    /// MSK messages it got, with the distributor's clock at the time.
    struct UE {
        let btid: String
        let muk: SecretBytes
        var mgvf: UEKeyProcessor
        var received: [(time: Int64, bytes: [UInt8])] = []
        /// Key Number → distributor second at which the MGV-F accepted that MSK.
        var mskAcceptedAt: [UInt16: Int64] = [:]
    }

    func testEveryUEGetsTheNextMSKBeforeItsFirstPacketAndDecryptsAcrossTheRollovers() throws {
        var rng = SplitMix64.seeded("MSKRolloverTests")
        let configPath = directory.appendingPathComponent("gateway.yaml").path
        try Self.yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        let configuration = try GatewayConfiguration.load(path: configPath)
        let store = try SQLiteKeyStore.openOrCreate(path: configuration.keyStore.path, kek: SecretBytes(rng.bytes(32)))
        let manager = KeyManager(configuration: configuration, store: store)
        let group = try XCTUnwrap(KeyGroup(1))
        let groupRef = KeyGroupReference(keyDomainID: try XCTUnwrap(KeyDomainID(mcc: "001", mnc: "01")), keyGroup: 1)

        // The start: somewhere inside an MTK period; `keys init` makes the current and next MSK.
        let start: Int64 = 1_790_000_000 + Int64(rng.next() % 10)
        func date(_ t: Int64) -> Date { Date(timeIntervalSince1970: TimeInterval(t)) }
        try manager.initialize(at: date(start))
        let first = try manager.schedule().msk(keyGroup: group, at: date(start))
        let rollover1 = first.validUntil, rollover2 = rollover1 + 60
        // The UEs register at `start`; the stream begins 8 s later (its first MIKEY MTK messages
        // announceLead before that) and lasts 150 s: it crosses two rollovers (MSK 1 → 2 → 3) and
        // ends before the third (MSK 4 is never used).
        let captureStart = start + 8, captureSeconds: Int64 = 150
        let end = captureStart + captureSeconds
        XCTAssertEqual(first.mskID.keyNumber, 1)
        XCTAssertLessThan(start, rollover1)
        XCTAssertLessThan(rollover2, end)
        XCTAssertLessThan(end + Int64(configuration.schedule.announceLead), rollover2 + 60)

        // Three UEs bootstrapped and registered to the service. ue-a registered with Key Number
        // 0 (current and next MSK at once, TS 33.246 6.3.2.3); ue-b and ue-c asked for the
        // current MSK only (msk-request), so the rollover push is what brings them MSK 2.
        var ues: [UE] = []
        for (i, name) in ["ue-a", "ue-b", "ue-c"].enumerated() {
            let btid = "\(name)-\(rng.next() % 1_000_000)@bsf.example.org"
            let muk = SecretBytes(rng.bytes(32))
            try store.apply([
                .putUserKey(UserKeyRow(btid: btid, impi: "impi-\(btid)", location: "me", muk: muk, expiresAt: end + 86_400)),
                .register(impi: "impi-\(btid)", btid: btid, ueAddress: "10.20.0.\(i + 1)", serviceIDs: ["urn:svc:tv"], at: start),
            ])
            ues.append(UE(btid: btid, muk: muk, mgvf: UEKeyProcessor(muk: muk, nafID: configuration.bmscFQDN, bTID: btid)))
        }
        // A short lead (30 s of a 60 s MSK period), one MSK message a second: the wave is spread
        // (and the four registration messages take the first four seconds).
        let distributor = MSKDistributor(manager: manager, keyStore: store, queue: store,
                                         policy: MSKDistributionPolicy(verify: true, firstRetransmission: 2, maximumAttempts: 5,
                                                                       pushRate: 1, pushLead: 30))
        try distributor.enqueue(deliveries: ues.enumerated().map { i, ue in
            MSKDelivery(impi: "impi-\(ue.btid)", btid: ue.btid, ueAddress: "10.20.0.\(i + 1)", keyGroup: groupRef,
                        keyNumber: i == 0 ? 0 : first.mskID.keyNumber, reason: i == 0 ? .registration : .mskRequest)
        }, invalidations: [], at: start)

        /// One second of the Key Distribution function: maintenance when the schedule has no
        /// next MSK (at each rollover: `keys maintain`), the rollover push, due MSK messages to
        /// the UEs, whose verification messages go straight back.
        func step(_ t: Int64) throws -> Int {
            if (try? manager.schedule().nextMSK(keyGroup: group, at: date(t))) == nil { try manager.maintain(at: date(t)) }
            try distributor.scheduleRollovers(at: t)
            let out = try distributor.tick(now: t)
            for m in out {
                let i = try XCTUnwrap(ues.firstIndex { $0.btid == m.btid }, "message for an unknown B-TID")
                XCTAssertEqual(m.address, "10.20.0.\(i + 1)")
                ues[i].received.append((t, m.bytes))
                guard case .success(.msk(let msk, let verification?)) = ues[i].mgvf.process(m.bytes) else {
                    XCTFail("\(m.btid) rejected the MSK message sent at \(t)"); continue
                }
                XCTAssertEqual(msk.keyDomainID, groupRef.keyDomainID)
                XCTAssertEqual(msk.mskID.keyGroup, 1)
                ues[i].mskAcceptedAt[msk.mskID.keyNumber] = ues[i].mskAcceptedAt[msk.mskID.keyNumber] ?? t
                XCTAssertEqual(distributor.received(verification, now: t), .verified(deliveryID: m.deliveryID))
            }
            return out.count
        }

        // The distributor's clock up to the second rollover. Maintenance runs only where the
        // schedule needs it (at the first rollover: MSK 3), so MSK 1's secrets are still in the
        // store when the replay below protects the capture's first minute; maintenance past the
        // second rollover purges them (after the replay).
        for t in start..<rollover2 { _ = try step(t) }

        // The stream: 150 s of one RTP stream (and its RTCP) to the session's destination.
        let session = try XCTUnwrap(StreamingSession.sessions(of: configuration).first)
        let input = directory.appendingPathComponent("in.pcap").path
        let output = directory.appendingPathComponent("out.pcap").path
        let packetsPerSecond = 50
        let startNanoseconds = UInt64(captureStart) * 1_000_000_000 + 100_000_000 + rng.next() % 800_000_000
        try SyntheticCapture(source: .v4(0x0A00_000A),
                             streams: [.init(destination: session.rtp, ssrc: UInt32(truncatingIfNeeded: rng.next()),
                                             firstSequence: UInt16(truncatingIfNeeded: rng.next()), packetsPerSecond: packetsPerSecond,
                                             payloadBytes: 60...300)],
                             startNanoseconds: startNanoseconds, packetsPerStream: Int(captureSeconds) * packetsPerSecond).write(to: input)
        let report = try ReplayJob(sessions: [session], keySource: try KeySource(manager: manager),
                                   options: .init(input: input, output: output)).run()
        XCTAssertEqual(report.statistics.totalDrops, 0)

        // The rest of the capture's time: nothing is resent (every delivery was verified); the
        // third wave (MSK 4, 30 s before the third rollover) goes out to the three UEs.
        var sentAfter: [Int64] = []
        for t in rollover2...end where try step(t) > 0 { sentAfter.append(t - (rollover2 + 60)) }
        XCTAssertEqual(sentAfter, [-30, -29, -28], "only the MSK 4 wave, one a second")
        XCTAssertEqual(try store.deliveryCounts(), [.done: 12], "4 MSKs to each of 3 UEs, each verified once")
        XCTAssertEqual(distributor.statistics.verified, 12)
        XCTAssertEqual(distributor.statistics.retransmissions, 0)
        XCTAssertEqual(distributor.statistics.sentByReason, ["registration": 2, "msk-request": 2, "rollover": 8])
        for ue in ues {
            let rows = try store.deliveries(btid: ue.btid)
            for k: UInt16 in [3, 4] {
                XCTAssertEqual(rows.filter { $0.keyNumber == k }.map(\.reason), ["rollover"], "\(ue.btid): MSK \(k) came with the rollover push")
            }
        }

        // The protected output: first use of each MSK, by the MKI of the SRTP packets and by the
        // MIKEY MTK messages on UDP 2269.
        let inFrames = try readFrames(input)
        let outFrames = try readFrames(output)
        var firstPacket: [UInt16: UInt64] = [:], firstMTKMessage: [UInt16: UInt64] = [:]
        for f in outFrames {
            guard let u = f.udp else { continue }
            if u.destination.port == 2269 {
                let ids = try XCTUnwrap(try MIKEYDecoder.decode(f.payload).keyIDInformation)
                if let m = ids.mskID, firstMTKMessage[m.keyNumber] == nil { firstMTKMessage[m.keyNumber] = f.time }
            } else if u.destination == session.rtp {
                let p = f.payload
                let tag = session.policy.tagLength(sequenceNumber: UInt16(p[2]) << 8 | UInt16(p[3]))
                let mki = Array(p[(p.count - tag - 6)..<(p.count - tag)])
                let mskID = MIKEY.MSKID(rawValue: UInt32(mki[0]) << 24 | UInt32(mki[1]) << 16 | UInt32(mki[2]) << 8 | UInt32(mki[3]))
                XCTAssertEqual(mskID.keyGroup, 1)
                if firstPacket[mskID.keyNumber] == nil { firstPacket[mskID.keyNumber] = f.time }
            }
        }
        XCTAssertEqual(firstPacket.keys.sorted(), [1, 2, 3], "the output crosses two MSK rollovers")
        XCTAssertEqual(firstMTKMessage.keys.sorted(), [1, 2, 3])
        // The switch to MSK n+1 happens on the rollover's grid boundary.
        XCTAssertEqual(try XCTUnwrap(firstPacket[2]) / 1_000_000_000, UInt64(rollover1))
        XCTAssertEqual(try XCTUnwrap(firstPacket[3]) / 1_000_000_000, UInt64(rollover2))

        for ue in ues {
            for k: UInt16 in [1, 2, 3] {
                let got = try XCTUnwrap(ue.mskAcceptedAt[k], "\(ue.btid) never got MSK \(k)")
                let gotNanoseconds = UInt64(got) * 1_000_000_000
                XCTAssertLessThan(gotNanoseconds, try XCTUnwrap(firstPacket[k]), "\(ue.btid): MSK \(k) at \(got), first packet under it later")
                XCTAssertLessThan(gotNanoseconds, try XCTUnwrap(firstMTKMessage[k]), "\(ue.btid): MSK \(k) before its first MTK message")
            }
            // The rollover MSKs arrived within the push lead, not at the last moment.
            for (k, rollover) in [(UInt16(2), rollover1), (3, rollover2)] where !(ue.btid.hasPrefix("ue-a") && k == 2) {
                let got = try XCTUnwrap(ue.mskAcceptedAt[k])
                XCTAssertTrue((rollover - 30)..<(rollover - 25) ~= got, "\(ue.btid): MSK \(k) pushed at \(got - rollover) s from the rollover")
            }
        }

        // Each UE on its own: a fresh MGV-F with its MUK that sees, in time order, the MSK
        // messages the distributor sent it and the protected output; SRTP keys only from the
        // output's MIKEY MTK messages.
        let rtpTotal = inFrames.filter { $0.udp.map { $0.destination == session.rtp } ?? false }.count
        let rtcpTotal = inFrames.filter { $0.udp.map { $0.destination == session.rtcp } ?? false }.count
        XCTAssertEqual(rtpTotal, Int(captureSeconds) * packetsPerSecond)
        XCTAssertGreaterThan(rtcpTotal, 20)
        for ue in ues {
            var processor = UEKeyProcessor(muk: ue.muk, nafID: configuration.bmscFQDN, bTID: ue.btid)
            let receiver = try SRTPReceiver(policy: session.policy, keyCapacity: 2)
            var pending = ue.received[...]
            var plainIndex = 0, decryptedRTP = 0, decryptedRTCP = 0, mtks: Set<String> = []
            for f in outFrames {
                while let m = pending.first, UInt64(m.time) * 1_000_000_000 <= f.time {
                    pending = pending.dropFirst()
                    guard case .success(.msk) = processor.process(m.bytes) else { XCTFail("\(ue.btid): MSK message refused on replay"); continue }
                }
                guard let u = f.udp else { plainIndex += 1; continue }
                if u.destination.port == 2269 {
                    switch processor.process(f.payload) {
                    case .success(.mtk(let m)):
                        XCTAssertEqual(m.mskID.keyGroup, 1)
                        mtks.insert("\(m.mskID.keyNumber)/\(m.mtkID)")
                        try receiver.addKey(try SRTPSessionKeys(masterKey: m.key, masterSalt: try XCTUnwrap(m.salt).revealedBytes(),
                                                                mki: MasterKeyIdentifier(bytes: m.mki), cipher: session.policy.cipher))
                    case .success(let other):
                        XCTFail("\(ue.btid): unexpected \(other) on the broadcast")
                    case .failure(.unknownMSK(_, let id)):
                        XCTFail("\(ue.btid): MTK message under MSK \(id) at \(f.time), which it does not hold")
                    case .failure:
                        break   // the once-a-second repeats of an MTK it already holds (same TS)
                    }
                    continue
                }
                let original = inFrames[plainIndex]
                plainIndex += 1
                var p = f.payload
                do {
                    if u.destination == session.rtcp {
                        try receiver.unprotectRTCP(&p)
                        decryptedRTCP += 1
                    } else {
                        XCTAssertEqual(u.destination, session.rtp)
                        try receiver.unprotectRTP(&p)
                        decryptedRTP += 1
                    }
                    XCTAssertEqual(p, original.payload, "\(ue.btid): frame \(plainIndex - 1) at \(f.time)")
                } catch {
                    XCTFail("\(ue.btid): frame \(plainIndex - 1) at \(f.time) does not decrypt: \(error)")
                }
            }
            XCTAssertTrue(pending.isEmpty)
            XCTAssertEqual(plainIndex, inFrames.count)
            XCTAssertEqual(decryptedRTP, rtpTotal, ue.btid)
            XCTAssertEqual(decryptedRTCP, rtcpTotal, ue.btid)
            // 150 s on a 10 s grid: 15 or 16 MTKs, under all three MSKs.
            XCTAssertGreaterThanOrEqual(mtks.count, 15, ue.btid)
            XCTAssertEqual(Set(mtks.map { $0.prefix(1) }), ["1", "2", "3"], ue.btid)
        }
    }
}
