import CryptoCore
import Foundation
import KeyManagement
import MIKEY
import TestSupport
import XCTest
@testable import KeyServer

/// The Key Distribution function against a UE that is not the gateway's code path: the MIKEY
/// module's `UEKeyProcessor` (the MGV-F checks of TS 33.246 6.4.5, 6.5.3), which also writes the
/// verification message the BM-SC must accept.
class DistributionTestCase: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbms-dist-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    let t0: Int64 = 1_790_000_000
    let kek = SecretBytes(Array(repeating: 0x42, count: 32))

    struct Deps {
        let manager: KeyManager
        let store: SQLiteKeyStore
        let distributor: MSKDistributor
    }

    func open(policy: MSKDistributionPolicy = .init(firstRetransmission: 2, maximumAttempts: 3, pushLead: 3600)) throws -> Deps {
        let yaml = TestConfiguration.header + """

              - { name: video, kind: rtp, destination: 239.1.1.1:5000, keyGroup: 1, protection: { auth: rccm2, rocRate: 1 } }
              - { name: files, kind: flute, destination: 239.1.1.2:4000, tsi: 1, keyGroup: 2 }
            keyServer: { listen: 127.0.0.1:18080 }
            userServices:
              - { id: "urn:svc:tv", sessions: [video] }
              - { id: "urn:svc:files", sessions: [files] }
            """
        let path = dir.appendingPathComponent("gateway.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let c = try GatewayConfiguration.load(path: path)
        let store = try SQLiteKeyStore.openOrCreate(path: c.keyStore.path, kek: kek)
        let manager = KeyManager(configuration: c, store: store)
        try manager.initialize(at: Date(timeIntervalSince1970: TimeInterval(t0)))
        return Deps(manager: manager, store: store, distributor: MSKDistributor(manager: manager, keyStore: store, queue: store, policy: policy))
    }

    /// A UE: bootstrapped (MUK in the store), registered to `services` from `address`.
    func addUE(_ d: Deps, btid: String, address: String, services: [String], mukExpires: Int64? = nil) throws -> UEKeyProcessor {
        let muk = SecretBytes(Array(SHA256.hash(Array(btid.utf8))))
        try d.store.apply([
            .putUserKey(UserKeyRow(btid: btid, impi: "impi-\(btid)", location: "me", muk: muk, expiresAt: mukExpires ?? t0 + 86_400)),
            .register(impi: "impi-\(btid)", btid: btid, ueAddress: address, serviceIDs: services, at: t0),
        ])
        return UEKeyProcessor(muk: muk, nafID: d.manager.configuration.bmscFQDN, bTID: btid)
    }

    func delivery(_ btid: String, group: UInt16 = 1) -> MSKDelivery {
        MSKDelivery(impi: "impi-\(btid)", btid: btid, ueAddress: "127.0.0.77", keyGroup: KeyGroupReference(keyDomainID: KeyDomainID(mcc: "001", mnc: "01")!, keyGroup: group),
                    keyNumber: 0, reason: .registration)
    }

    func timestamp(_ bytes: [UInt8]) -> UInt32? {
        guard case .counter(let t)? = try? MIKEYDecoder.decode(bytes).timestamp else { return nil }
        return t
    }

}

final class MSKDistributorTests: DistributionTestCase {
    /// Registration: the current and the next MSK go out with V set; the UE accepts both and
    /// answers; the verification messages close the deliveries; nothing is sent again.
    func testUEGetsCurrentAndNextMSKAndItsVerificationStopsRetransmission() throws {
        let d = try open()
        var ue = try addUE(d, btid: "ue1@bsf", address: "127.0.0.77", services: ["urn:svc:tv"])
        XCTAssertEqual(try d.distributor.enqueue(deliveries: [delivery("ue1@bsf")], invalidations: [], at: t0), 2)
        let sent = try d.distributor.tick(now: t0)
        XCTAssertEqual(sent.map(\.address), ["127.0.0.77", "127.0.0.77"])
        XCTAssertEqual(sent.map(\.timestamp), [1, 2], "one TS counter per UE, +1 per message")
        var keyNumbers: [UInt16] = []
        for m in sent {
            guard case .success(.msk(let msk, let verification?)) = ue.process(m.bytes) else { return XCTFail("the UE rejected the MSK message") }
            keyNumbers.append(msk.mskID.keyNumber)
            XCTAssertEqual(d.distributor.received(verification, now: t0 + 1), .verified(deliveryID: m.deliveryID))
        }
        XCTAssertEqual(keyNumbers, [1, 2])
        for later in [t0 + 2, t0 + 10, t0 + 100] { XCTAssertEqual(try d.distributor.tick(now: later), [], "no retransmission after verification") }
        XCTAssertEqual(try d.store.deliveryCounts(), [.done: 2])
        XCTAssertEqual(d.distributor.statistics.verified, 2)
        // A verification replayed, forged or for another UE is refused.
        XCTAssertEqual(d.distributor.received(Array(repeating: 0, count: 40), now: t0), .rejected("malformed"))
    }

    /// A UE that never answers gets the message again with increasing TS at 2, 4 s … intervals,
    /// `maximumAttempts` in all, then none; the give-up is counted and logged by B-TID only.
    func testSilentUEGetsBoundedRetransmissionsWithNewTimestamps() throws {
        let d = try open()
        _ = try addUE(d, btid: "quiet@bsf", address: "127.0.0.78", services: ["urn:svc:files"])
        try d.distributor.enqueue(deliveries: [MSKDelivery(impi: "impi-quiet@bsf", btid: "quiet@bsf", ueAddress: "127.0.0.78",
                                                           keyGroup: KeyGroupReference(keyDomainID: KeyDomainID(mcc: "001", mnc: "01")!, keyGroup: 2),
                                                           keyNumber: 1, reason: .mskRequest)], invalidations: [], at: t0)
        var times: [Int64] = [], stamps: [UInt32] = []
        for t in t0..<(t0 + 60) {
            for m in try d.distributor.tick(now: t) { times.append(t - t0); stamps.append(m.timestamp); XCTAssertEqual(timestamp(m.bytes), m.timestamp) }
        }
        XCTAssertEqual(times, [0, 2, 6], "first send, then 2 s and 4 s back-off")
        XCTAssertEqual(stamps, [1, 2, 3], "every retransmission takes a new TS (TS 33.246 6.4.3)")
        XCTAssertEqual(d.distributor.statistics.retransmissions, 2)
        XCTAssertEqual(d.distributor.statistics.gaveUp, ["no_verification": 1])
        XCTAssertTrue(d.distributor.log.last?.contains("B-TID quiet@bsf") ?? false)
        XCTAssertEqual(try d.store.deliveryCounts(), [.gaveUp: 1])
    }

    /// Deregistration: the invalidation (SEQl > SEQu) makes the UE drop the MSK; `keys pull`: a
    /// solicited pull (Key Number 0, no key, no V) the UE reports as such.
    func testInvalidationAndSolicitedPullReachTheUE() throws {
        let d = try open(policy: .init(verify: false))
        var ue = try addUE(d, btid: "ue2@bsf", address: "127.0.0.79", services: ["urn:svc:tv"])
        try d.distributor.enqueue(deliveries: [delivery("ue2@bsf")], invalidations: [], at: t0)
        for m in try d.distributor.tick(now: t0) { guard case .success(.msk) = ue.process(m.bytes) else { return XCTFail("MSK rejected") } }
        let group = KeyGroupReference(keyDomainID: KeyDomainID(mcc: "001", mnc: "01")!, keyGroup: 1)
        XCTAssertEqual(ue.mskIDs(in: group).count, 2)

        try d.distributor.enqueue(deliveries: [], invalidations: [MSKInvalidation(impi: "impi-ue2@bsf", btid: "ue2@bsf", ueAddress: "127.0.0.79", keyGroups: [group])], at: t0 + 5)
        let invalidations = try d.distributor.tick(now: t0 + 5)
        XCTAssertEqual(invalidations.count, 2)
        for m in invalidations { guard case .success(.mskInvalidated) = ue.process(m.bytes) else { return XCTFail("invalidation rejected") } }
        XCTAssertEqual(ue.mskIDs(in: group), [], "the UE dropped both MSKs")

        XCTAssertEqual(try d.distributor.enqueuePull(keyGroup: KeyGroup(1)!, at: t0 + 6), 1)
        let pull = try d.distributor.tick(now: t0 + 6)
        XCTAssertEqual(pull.count, 1)
        guard case .success(.solicitedPull(let g)) = ue.process(pull[0].bytes) else { return XCTFail("pull not understood") }
        XCTAssertEqual(g, group)
    }

    /// Deliveries stop when the UE's MUK has expired (GBA key lifetime): nothing is sent.
    func testNoDeliveryUnderAnExpiredMUK() throws {
        let d = try open()
        _ = try addUE(d, btid: "old@bsf", address: "127.0.0.80", services: ["urn:svc:tv"], mukExpires: t0 - 1)
        try d.distributor.enqueue(deliveries: [delivery("old@bsf")], invalidations: [], at: t0)
        XCTAssertEqual(try d.distributor.tick(now: t0), [])
        XCTAssertEqual(d.distributor.statistics.gaveUp, ["muk_expired": 2])
        XCTAssertNil(try d.store.mskMessageCounter(ueID: "old@bsf"), "no TS value used")
    }

    /// Ahead of the rollover every registered UE that does not have the next MSK yet gets it,
    /// spread at the push rate; one that got it at registration is skipped.
    func testRolloverPushReachesEveryRegisteredUE() throws {
        let d = try open(policy: .init(verify: false, pushRate: 2, pushLead: 3600))
        _ = try addUE(d, btid: "a@bsf", address: "127.0.0.81", services: ["urn:svc:tv"])
        try d.distributor.enqueue(deliveries: [delivery("a@bsf")], invalidations: [], at: t0)
        _ = try d.distributor.tick(now: t0)
        for k in 0..<4 { _ = try addUE(d, btid: "b\(k)@bsf", address: "127.0.1.\(k)", services: ["urn:svc:tv", "urn:svc:files"]) }
        let next = try d.manager.schedule().nextMSK(keyGroup: KeyGroup(1)!, at: Date(timeIntervalSince1970: TimeInterval(t0)))
        XCTAssertEqual(try d.distributor.scheduleRollovers(at: next.validFrom - 7200), 0, "not yet: outside the lead")
        let start = next.validFrom - 3000
        // Key group 1 (4 UEs) and key group 2 (the same 4 UEs).
        XCTAssertEqual(try d.distributor.scheduleRollovers(at: start), 8)
        XCTAssertEqual(try d.distributor.scheduleRollovers(at: start + 1), 0, "queued once")
        var perSecond: [Int] = []
        for t in start..<(start + 5) { perSecond.append(try d.distributor.tick(now: t).count) }
        XCTAssertEqual(perSecond, [2, 2, 2, 2, 0], "at most pushRate (2) MSK messages a second, spread over the lead")
        XCTAssertFalse(try d.store.deliveries(btid: "a@bsf").contains { $0.reason == "rollover" }, "a@bsf had it already")
    }

    /// A restart (a new distributor on the reopened store) resends what was not acknowledged,
    /// with new TS values: none is ever used twice for a UE.
    func testRestartResendsUnacknowledgedWithNewTimestamps() throws {
        var d = try open()
        _ = try addUE(d, btid: "r@bsf", address: "127.0.0.82", services: ["urn:svc:tv"])
        try d.distributor.enqueue(deliveries: [delivery("r@bsf")], invalidations: [], at: t0)
        let before = try d.distributor.tick(now: t0).map(\.timestamp)
        d = try open()   // "kill -9" and restart: the same store file
        let after = try d.distributor.tick(now: t0 + 2).map(\.timestamp)
        XCTAssertEqual(before, [1, 2])
        XCTAssertEqual(after, [3, 4])
    }
}
