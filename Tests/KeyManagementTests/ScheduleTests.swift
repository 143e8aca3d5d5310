import CryptoCore
import MIKEY
import XCTest
@testable import KeyManagement

/// The MTK time grid and MSK lifecycle at and around every boundary. Expected values are
/// hand-computed from the rules (E = 2026-01-01T00:00:00Z, P = 60 s, lead = 10 s, MSK = 600 s
/// unless stated), not read back from the code.
final class ScheduleTests: XCTestCase {
    func manager(_ c: GatewayConfiguration, _ label: String = "a") -> KeyManager {
        KeyManager(configuration: c, store: InMemoryKeyStore(), random: DeterministicRandom(label))
    }

    func testMTKSwitchBoundaries() throws {
        let m = manager(try Fixtures.configuration())
        try m.initialize(at: at(1000))   // floor(1000/60)·60 = 960 → MSK 1 = [960, 1560), SEQ (0, 10]
        let s = try m.schedule()
        let g = try XCTUnwrap(KeyGroup(1))
        let msk1 = try s.msk(keyGroup: g, at: at(1000))
        XCTAssertEqual(msk1.mskID.rawValue, 0x0001_0001)
        XCTAssertEqual(msk1.validFrom, Fixtures.epoch + 960)
        XCTAssertEqual(msk1.validUntil, Fixtures.epoch + 1560)
        XCTAssertEqual(msk1.keyValidity, KeyValidity(seqL: 0, seqU: 10))
        let msk2 = try s.nextMSK(keyGroup: g, at: at(1000))
        XCTAssertEqual(msk2.mskID.rawValue, 0x0001_0002)
        XCTAssertEqual(msk2.validFrom, Fixtures.epoch + 1560)
        XCTAssertEqual(msk2.validUntil, Fixtures.epoch + 2160)
        XCTAssertEqual(msk2.keyValidity, KeyValidity(seqL: 0, seqU: 10))

        // (offset, MSK key number, MTK ID)
        let expected: [(Int64, UInt16, UInt16)] = [
            (960, 1, 1), (1000, 1, 1), (1019, 1, 1), (1020, 1, 2), (1021, 1, 2), (1079, 1, 2), (1080, 1, 3),
            (1499, 1, 9), (1500, 1, 10), (1559, 1, 10),           // last MTK of MSK 1 = SEQu
            (1560, 2, 1), (1619, 2, 1), (1620, 2, 2), (2159, 2, 10), // MSK rollover at the grid boundary
        ]
        for (off, kn, id) in expected {
            let cur = try s.currentMTK(keyGroup: g, at: at(off))
            XCTAssertEqual(cur.mskID.keyNumber, kn, "t = E + \(off)")
            XCTAssertEqual(cur.mtkID.rawValue, id, "t = E + \(off)")
            XCTAssertEqual(cur.validFrom, Fixtures.epoch + (off / 60) * 60, "t = E + \(off)")
            XCTAssertTrue(s.snapshot.msk(cur.mskID)?.keyValidity.contains(cur.mtkID.rawValue) ?? false)
        }
        // Fractional seconds floor to the same slot.
        XCTAssertEqual(try s.currentMTK(keyGroup: g, at: Date(timeIntervalSince1970: TimeInterval(Fixtures.epoch + 1019) + 0.999)).mtkID.rawValue, 1)
        // Past the next MSK: nothing yet (maintenance has not run).
        XCTAssertThrowsError(try s.currentMTK(keyGroup: g, at: at(2160)))
    }

    func testNextMTKAndAnnouncement() throws {
        let m = manager(try Fixtures.configuration())
        try m.initialize(at: at(1000))
        let s = try m.schedule()
        let g = try XCTUnwrap(KeyGroup(1))
        let n = try s.nextMTK(keyGroup: g, at: at(1000))
        XCTAssertEqual(n.mtkID.rawValue, 2)
        XCTAssertEqual(n.validFrom, Fixtures.epoch + 1020)
        XCTAssertEqual(n.announceAt, Fixtures.epoch + 1010)
        // MIKEY TS = NTP seconds of the announcement: 1767225600 + 1010 + 2208988800.
        XCTAssertEqual(n.timestamp, 3_976_215_410)
        XCTAssertEqual(try s.currentMTK(keyGroup: g, at: at(1000)).timestamp, 3_976_215_350)  // announced at 950

        // Lead window: [1010, 1020) sends the current and the next message.
        XCTAssertEqual(try s.transmissions(keyGroup: g, at: at(1009)).map(\.mtkID.rawValue), [1])
        XCTAssertEqual(try s.transmissions(keyGroup: g, at: at(1010)).map(\.mtkID.rawValue), [1, 2])
        XCTAssertEqual(try s.transmissions(keyGroup: g, at: at(1019)).map(\.mtkID.rawValue), [1, 2])
        XCTAssertEqual(try s.transmissions(keyGroup: g, at: at(1020)).map(\.mtkID.rawValue), [2])

        // Across the MSK rollover: at 1550 the next MTK is MTK 1 of MSK 2, switching at 1560.
        let across = try s.transmissions(keyGroup: g, at: at(1550))
        XCTAssertEqual(across.map(\.mskID.keyNumber), [1, 2])
        XCTAssertEqual(across.map(\.mtkID.rawValue), [10, 1])
        XCTAssertEqual(across[1].validFrom, Fixtures.epoch + 1560)
        XCTAssertEqual(across[1].timestamp, 3_976_215_950)
        XCTAssertEqual(try s.nextMTK(keyGroup: g, at: at(1499)).mtkID.rawValue, 10)
        XCTAssertEqual(try s.nextMTK(keyGroup: g, at: at(1549)).mskID.keyNumber, 2)
        XCTAssertEqual(try s.nextMTK(keyGroup: g, at: at(1500)).mskID.keyNumber, 2)
    }

    func testTimeGridFloorAndCeil() {
        let g = TimeGrid(epoch: 100, period: 60)
        XCTAssertEqual(g.index(100), 0); XCTAssertEqual(g.index(159), 0); XCTAssertEqual(g.index(160), 1)
        XCTAssertEqual(g.index(99), -1); XCTAssertEqual(g.index(40), -1); XCTAssertEqual(g.index(39), -2)
        XCTAssertEqual(g.floor(99), 40); XCTAssertEqual(g.floor(160), 160); XCTAssertEqual(g.floor(219), 160)
        XCTAssertEqual(g.ceil(160), 160); XCTAssertEqual(g.ceil(161), 220); XCTAssertEqual(g.ceil(41), 100)
        // NTP seconds: 1970-01-01 is 2208988800 s after 1900-01-01; 2036-02-07T06:28:16Z wraps to 0.
        XCTAssertEqual(ntpSeconds(unixSeconds: 0), 2_208_988_800)
        XCTAssertEqual(ntpSeconds(unixSeconds: 2_085_978_496), 0)
    }

    func testNextTransmissionTime() throws {
        let m = manager(try Fixtures.configuration(repeatInterval: "7s"))
        try m.initialize(at: at(1000))
        let s = try m.schedule()
        let g = try XCTUnwrap(KeyGroup(1))
        // Repeat ticks at E + 7k: …, 1001, 1008, 1015, …; the MTK 2 announcement at 1010.
        XCTAssertEqual(try s.nextTransmissionTime(keyGroup: g, after: at(1000)) - Fixtures.epoch, 1001)
        XCTAssertEqual(try s.nextTransmissionTime(keyGroup: g, after: at(1003)) - Fixtures.epoch, 1008)
        XCTAssertEqual(try s.nextTransmissionTime(keyGroup: g, after: at(1008)) - Fixtures.epoch, 1010)
        XCTAssertEqual(try s.nextTransmissionTime(keyGroup: g, after: at(1010)) - Fixtures.epoch, 1015)
    }

    func testClockBehindStoreIsRefused() throws {
        let m = manager(try Fixtures.configuration())
        try m.initialize(at: at(1000))   // MSK 1 from 960; high-water mark 960 (the slot of MTK 1)
        XCTAssertEqual(try m.store.snapshot().highWater, Fixtures.epoch + 960)
        try m.maintain(at: at(1500))      // slot 1500 (MTK 10)
        XCTAssertEqual(try m.store.snapshot().highWater, Fixtures.epoch + 1500)
        XCTAssertNoThrow(try m.maintain(at: at(1499)))   // within the 2 s skew tolerance
        XCTAssertThrowsError(try m.maintain(at: at(1400))) { e in   // MTK 8 again: refused
            guard case LifecycleError.clockBehindHighWater = e else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try m.rotate(keyGroup: try XCTUnwrap(KeyGroup(1)), at: at(1400)))
        XCTAssertEqual(try m.store.snapshot().highWater, Fixtures.epoch + 1500)   // never goes back
        XCTAssertEqual(try m.store.snapshot().msks.count, 4)
        // A store written by a clock ahead of this one (no high-water mark yet, MSKs in the future).
        let other = manager(try Fixtures.configuration(), "other")
        let snap = try m.store.snapshot()
        try other.store.commit([.setKeyDomain(try XCTUnwrap(snap.keyDomainID))] + snap.keyGroups.map { .addKeyGroup($0) }
                               + snap.msks.map { .addMSK($0) }, expectedRevision: 0)
        XCTAssertThrowsError(try other.maintain(at: at(900))) { e in
            guard case LifecycleError.clockBehindStore = e else { return XCTFail("\(e)") }
        }
    }

    /// MTK IDs strictly increase inside an MSK, stay in (SEQl, SEQu], never 0 or 0xFFFF, and
    /// the TS strictly increases with them, at every second of two MSK lifetimes.
    func testInvariantsEverySecond() throws {
        let m = manager(try Fixtures.configuration(mtkPeriod: "7s", lead: "3s", mskPeriod: "70s"))
        let g = try XCTUnwrap(KeyGroup(2))
        var last: ScheduledMTK? = nil
        try m.initialize(at: at(0))
        for off in Int64(0)..<300 {
            try m.maintain(at: at(off))
            let s = try m.schedule()
            let cur = try s.currentMTK(keyGroup: g, at: at(off))
            let msk = try XCTUnwrap(s.snapshot.msk(cur.mskID))
            XCTAssertTrue(msk.keyValidity.contains(cur.mtkID.rawValue))
            XCTAssertNotEqual(cur.mtkID.rawValue, 0); XCTAssertNotEqual(cur.mtkID.rawValue, 0xFFFF)
            XCTAssertEqual(cur.mtk.count, 32)   // aes-256-cm
            XCTAssertEqual(cur.salt.count, 14)
            if let p = last, p.mskID != cur.mskID || p.mtkID.rawValue != cur.mtkID.rawValue {
                if p.mskID == cur.mskID {
                    XCTAssertEqual(cur.mtkID.rawValue, p.mtkID.rawValue + 1)
                    XCTAssertTrue(RFC1982.isGreater(cur.timestamp, than: p.timestamp))
                } else {
                    XCTAssertEqual(cur.mskID.keyNumber, p.mskID.keyNumber + 1)
                    XCTAssertEqual(cur.mtkID.rawValue, 1)
                }
                XCTAssertEqual(cur.validFrom, p.validUntil)
            }
            last = cur
        }
    }

    /// MTK period 1 s with a 1-day MSK period: only 65534 MTK IDs fit below 0xFFFF, so SEQu
    /// exhaustion forces the rollover after 65534 s, not after 86400 s.
    func testSEQuExhaustionForcesRollover() throws {
        let m = manager(try Fixtures.configuration(mtkPeriod: "1s", lead: "0s", mskPeriod: "1d"))
        try m.initialize(at: at(0))
        let g = try XCTUnwrap(KeyGroup(1))
        var s = try m.schedule()
        let msk1 = try s.msk(keyGroup: g, at: at(0))
        XCTAssertEqual(msk1.keyValidity, KeyValidity(seqL: 0, seqU: 0xFFFE))
        XCTAssertEqual(msk1.validUntil, Fixtures.epoch + 65_534)
        XCTAssertEqual(try s.currentMTK(keyGroup: g, at: at(65_533)).mtkID.rawValue, 0xFFFE)
        XCTAssertEqual(try s.currentMTK(keyGroup: g, at: at(65_533)).mskID.keyNumber, 1)
        let after = try s.currentMTK(keyGroup: g, at: at(65_534))
        XCTAssertEqual(after.mskID.keyNumber, 2)
        XCTAssertEqual(after.mtkID.rawValue, 1)
        XCTAssertEqual(try s.nextMTK(keyGroup: g, at: at(65_533)).mskID.keyNumber, 2)
        // The next MSK is created when the second one becomes current.
        try m.maintain(at: at(65_534))
        s = try m.schedule()
        XCTAssertEqual(try s.nextMSK(keyGroup: g, at: at(65_534)).validFrom, Fixtures.epoch + 131_068)
    }

    func testRotateMovesSwitchToFirstAnnounceableBoundary() throws {
        let m = manager(try Fixtures.configuration())
        let g = try XCTUnwrap(KeyGroup(1))
        try m.initialize(at: at(1000))
        // At 1000 with a 10 s lead: first boundary ≥ 1010 is 1020.
        try m.rotate(keyGroup: g, at: at(1000))
        var s = try m.schedule()
        XCTAssertEqual(try s.currentMTK(keyGroup: g, at: at(1019)).mskID.keyNumber, 1)
        XCTAssertEqual(try s.currentMTK(keyGroup: g, at: at(1019)).mtkID.rawValue, 1)
        let sw = try s.currentMTK(keyGroup: g, at: at(1020))
        XCTAssertEqual(sw.mskID.keyNumber, 2)
        XCTAssertEqual(sw.mtkID.rawValue, 1)
        let msk2 = try XCTUnwrap(s.snapshot.msk(sw.mskID))
        XCTAssertEqual(msk2.validUntil, Fixtures.epoch + 1620)   // keeps its 10 periods
        XCTAssertEqual(try s.nextMSK(keyGroup: g, at: at(1020)).mskID.keyNumber, 3)
        XCTAssertEqual(try s.nextMSK(keyGroup: g, at: at(1020)).validFrom, Fixtures.epoch + 1620)
        // At 1055: 1055 + 10 = 1065 → boundary 1080; MSK 2 (from 1020) runs only its MTK 1.
        try m.rotate(keyGroup: g, at: at(1055), invalidateCurrent: true)
        s = try m.schedule()
        XCTAssertEqual(try s.currentMTK(keyGroup: g, at: at(1079)).mskID.keyNumber, 2)
        XCTAssertEqual(try s.currentMTK(keyGroup: g, at: at(1079)).mtkID.rawValue, 1)
        XCTAssertEqual(try s.currentMTK(keyGroup: g, at: at(1080)).mskID.keyNumber, 3)
        XCTAssertNotNil(s.snapshot.msk(MSKID(keyGroup: g, keyNumber: 2))?.invalidatedAt)
        // The invalidated MSK is purged as soon as its window ended.
        try m.maintain(at: at(1080))
        s = try m.schedule()
        XCTAssertNil(s.snapshot.msk(MSKID(keyGroup: g, keyNumber: 2))?.msk)
        XCTAssertNil(s.snapshot.msk(MSKID(keyGroup: g, keyNumber: 2))?.seed)
        // MSK 1 ended at 1020: retired one MTK period later (1080) → purged too.
        XCTAssertNil(s.snapshot.msk(MSKID(keyGroup: g, keyNumber: 1))?.msk)
        // Key numbers only increase; windows never overlap.
        let ms = s.snapshot.msks(in: g)
        XCTAssertEqual(ms.map(\.mskID.keyNumber), [1, 2, 3, 4])
        for (a, b) in zip(ms, ms.dropFirst()) { XCTAssertLessThanOrEqual(a.validUntil, b.validFrom) }
    }

    func testInitIsIdempotentAndDowntimeStartsFreshMSK() throws {
        let m = manager(try Fixtures.configuration())
        let s1 = try m.initialize(at: at(1000))
        let s2 = try m.initialize(at: at(1000))
        XCTAssertEqual(s1.revision, s2.revision)
        XCTAssertEqual(s2.msks.count, 4)   // 2 key groups × (current + next)
        // Down for a day: the next maintenance starts a new MSK at the boundary ≤ t.
        try m.maintain(at: at(90_030))
        let s = try m.schedule()
        let g = try XCTUnwrap(KeyGroup(1))
        let cur = try s.currentMTK(keyGroup: g, at: at(90_030))
        XCTAssertEqual(cur.mskID.keyNumber, 3)
        XCTAssertEqual(cur.mtkID.rawValue, 1)
        XCTAssertEqual(cur.validFrom, Fixtures.epoch + 90_000)
        XCTAssertNil(s.snapshot.msk(MSKID(keyGroup: g, keyNumber: 1))?.msk)   // purged
    }

    /// DESIGN.md §6: two gateways whose stores share the seed (and MSK, RAND) produce the same
    /// MTKs, salts, CSB IDs, TS and MTK messages at the same t; another seed gives others.
    func testTwoStoresSharingSeedAgree() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try Fixtures.configuration()
        let a = manager(c, "gateway A")
        let snapA = try a.initialize(at: at(1000))
        // Gateway B: its own SQLite file under another KEK, holding the same records.
        let storeB = try SQLiteKeyStore.openOrCreate(path: dir.appendingPathComponent("b.sqlite").path,
                                                     kek: SecretBytes(try SecureRandom.bytes(count: 32)))
        try storeB.commit([.setKeyDomain(c.keyDomainID)] + snapA.keyGroups.map { .addKeyGroup($0) } + snapA.msks.map { .addMSK($0) },
                          expectedRevision: 0)
        let b = KeyManager(configuration: c, store: storeB, random: DeterministicRandom("gateway B"))
        let sa = try a.schedule(), sb = try b.schedule()
        let builder = SerialisingMTKBuilder()
        for g in [KeyGroup(1), KeyGroup(2)].compactMap({ $0 }) {
            for off: Int64 in [960, 1009, 1010, 1019, 1020, 1500, 1550, 1559, 1560, 2000] {
                let x = try sa.transmissions(keyGroup: g, at: at(off)), y = try sb.transmissions(keyGroup: g, at: at(off))
                XCTAssertEqual(x.count, y.count)
                for (p, q) in zip(x, y) {
                    XCTAssertEqual(p.mskID, q.mskID); XCTAssertEqual(p.mtkID.rawValue, q.mtkID.rawValue)
                    XCTAssertTrue(p.mtk.isEqual(to: q.mtk)); XCTAssertTrue(p.salt.isEqual(to: q.salt))
                    XCTAssertEqual(p.csbID.rawValue, q.csbID.rawValue); XCTAssertEqual(p.timestamp, q.timestamp)
                }
                XCTAssertEqual(try sa.mtkMessages(keyGroup: g, at: at(off), builder: builder),
                               try sb.mtkMessages(keyGroup: g, at: at(off), builder: builder))
                // The real MIKEY MTK messages are byte-identical too.
                let real = MIKEYMTKMessageBuilder()
                let ma = try sa.mtkMessages(keyGroup: g, at: at(off), builder: real)
                XCTAssertEqual(ma, try sb.mtkMessages(keyGroup: g, at: at(off), builder: real))
                XCTAssertEqual(ma.count, x.count)
            }
        }
        // Independent recomputation of the derivation rule for one MTK:
        // HMAC-SHA256(seed, "MTK" ‖ 00 ‖ 00f110 ‖ 00010001 ‖ 0002)[0..<16].
        let g1 = try XCTUnwrap(KeyGroup(1))
        let mtk2 = try sa.currentMTK(keyGroup: g1, at: at(1020))
        let seed = try XCTUnwrap(sa.snapshot.msk(mtk2.mskID)?.seed).revealedBytes()
        let expected = try HMACSHA256.authenticate(key: seed, message: Array("MTK".utf8) + [0, 0x00, 0xF1, 0x10, 0, 1, 0, 1, 0, 2])
        XCTAssertEqual(mtk2.mtk.revealedBytes(), Array(expected.prefix(16)))
        let salt = try HMACSHA256.authenticate(key: seed, message: Array("SALT".utf8) + [0, 0x00, 0xF1, 0x10, 0, 1, 0, 1, 0, 2])
        XCTAssertEqual(mtk2.salt.revealedBytes(), Array(salt.prefix(14)))

        // A gateway with another seed derives other keys for the same IDs.
        let other = manager(c, "gateway C")
        let so = try KeySchedule(snapshot: try other.initialize(at: at(1000)), configuration: c.schedule)
        let o = try so.currentMTK(keyGroup: g1, at: at(1020))
        XCTAssertEqual(o.mtkID.rawValue, mtk2.mtkID.rawValue)
        XCTAssertFalse(o.mtk.isEqual(to: mtk2.mtk))
    }

    func testScheduledMTKDescriptionIsRedacted() throws {
        let m = manager(try Fixtures.configuration())
        let s = try KeySchedule(snapshot: try m.initialize(at: at(1000)), configuration: try Fixtures.configuration().schedule)
        let cur = try s.currentMTK(keyGroup: try XCTUnwrap(KeyGroup(1)), at: at(1000))
        let seed = try XCTUnwrap(s.snapshot.msks[0].seed)
        // Whatever a log line might interpolate: the scheduled MTK, a whole MSK record, the snapshot.
        for text in ["\(cur)", "\(cur.mtk)", "\(cur.salt)", "\(s.snapshot.msks[0])", "\(s.snapshot)", String(reflecting: s.snapshot.msks[0])] {
            XCTAssertFalse(text.contains(hex(seed)), text)
            XCTAssertFalse(text.contains(hex(cur.mtk)), text)
            XCTAssertFalse(text.contains(hex(cur.salt)), text)
            if let k = s.snapshot.msks[0].msk { XCTAssertFalse(text.contains(hex(k)), text) }
        }
    }
}

/// RFC 1982 comparison for 32-bit serials (mikey.md 8), written independently for tests.
enum RFC1982 {
    static func isGreater(_ s1: UInt32, than s2: UInt32) -> Bool {
        (s1 < s2 && s2 - s1 > 1 << 31) || (s1 > s2 && s1 - s2 < 1 << 31)
    }
}
