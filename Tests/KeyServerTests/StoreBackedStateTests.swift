import CryptoCore
import Foundation
import KeyManagement
import MIKEY
import TestSupport
import XCTest
@testable import KeyServer

/// The key server on the SQLite key store (`StoreKeyServerState`, `StoreBootstrapping`): the
/// embedded bootstrapping table answers Zn, and a restart keeps registrations, MUKs and the
/// nonces' nc high-water marks (a request replayed after the restart is still refused).
final class StoreBackedStateTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbms-ks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    let kek = SecretBytes(Array(repeating: 0x5A, count: 32))

    func server() throws -> (KeyRequestHandler, StoreKeyServerState, SQLiteKeyStore) {
        let store = try SQLiteKeyStore.openOrCreate(path: dir.appendingPathComponent("keys.sqlite").path, kek: kek)
        let state = StoreKeyServerState(store: store, nonces: .init(lifetime: 300, staleMemory: 300))
        return (KeyRequestHandler(configuration: Fixture.configuration(), bootstrapping: StoreBootstrapping(store: store), state: state), state, store)
    }

    func testRegistrationsAndNoncesSurviveARestart() throws {
        var rng = SplitMix64.seeded("testRegistrationsAndNoncesSurviveARestart")
        var (handler, state, store) = try server()
        // The BSF's answer for this NAF, as `mbms-gateway ue add --ks-naf` stores it.
        let g = KeyServerVectors.gba
        try store.apply([.putBootstrap(BootstrapRecord(btid: Fixture.btid, impi: g.string("IMPI"), gbaType: "me", ksNAF: SecretBytes(g.hex("Ks_NAF")),
                                                       ksIntNAF: nil, expiresAt: Int64(Fixture.t0.timeIntervalSince1970) + 86_400,
                                                       createdAt: Int64(Fixture.t0.timeIntervalSince1970)))])
        var ue = TestUE()
        let reg = ue.post(handler, "register", body: registerBody([Fixture.news]), random: &rng)
        XCTAssertEqual(reg.response.status, 200, reg.reason)
        XCTAssertEqual(state.takePending().deliveries.map(\.reason), [.registration], "the UE is handed to MSK delivery")
        let body = mskBody([("00F110", "00010000")])
        let msk = ue.post(handler, "msk-request", body: body, random: &rng)
        XCTAssertEqual(msk.response.status, 200, msk.reason)
        let lastAuthorization = ue.client.authorization(uri: TestUE.target("msk-request"), body: body, nonce: ue.nonce ?? "", nc: ue.nc)

        // Restart: a new process on the same store.
        (handler, state, store) = try server()
        XCTAssertEqual(try store.registration(impi: g.string("IMPI"))?.serviceIDs, [Fixture.news])
        XCTAssertEqual(try store.registration(impi: g.string("IMPI"))?.ueAddress, Fixture.ueAddress)
        XCTAssertNotNil(try store.userKey(btid: Fixture.btid), "the MUK of the B-TID is kept")
        let replay = handler.handleAndApply(KeyServerRequest(method: "POST", target: TestUE.target("msk-request"), headers: ["Authorization": lastAuthorization],
                                                             body: body, sourceAddress: Fixture.ueAddress, now: Fixture.t0), random: &rng)
        XCTAssertEqual(replay.response.status, 401, "a nonce/nc pair replayed after a restart")
        XCTAssertTrue(replay.response.headers["WWW-Authenticate"]?.hasSuffix("stale=true") ?? false)
        let next = ue.post(handler, "msk-request", body: body, random: &rng)
        XCTAssertEqual(next.response.status, 200, "the same nonce with the next nc still works after the restart: \(next.reason)")

        // Deregistration removes it for good.
        let dereg = ue.post(handler, "deregister", body: registerBody([Fixture.news]), random: &rng)
        XCTAssertEqual(dereg.response.status, 200, dereg.reason)
        XCTAssertNil(try store.registration(impi: g.string("IMPI")))
        XCTAssertEqual(state.takePending().invalidations.count, 1)
    }

    func testUnknownOrExpiredBTIDIsChallengedAgain() throws {
        var rng = SplitMix64.seeded("testUnknownOrExpiredBTIDIsChallengedAgain")
        let (handler, _, store) = try server()
        var ue = TestUE()
        XCTAssertEqual(ue.post(handler, "register", body: registerBody([Fixture.news]), random: &rng).response.status, 401, "no such B-TID in the table")
        let g = KeyServerVectors.gba
        try store.apply([.putBootstrap(BootstrapRecord(btid: Fixture.btid, impi: g.string("IMPI"), gbaType: "me", ksNAF: SecretBytes(g.hex("Ks_NAF")),
                                                       ksIntNAF: nil, expiresAt: Int64(Fixture.t0.timeIntervalSince1970) - 1,
                                                       createdAt: Int64(Fixture.t0.timeIntervalSince1970) - 100))])
        var again = TestUE()
        XCTAssertEqual(again.post(handler, "register", body: registerBody([Fixture.news]), random: &rng).response.status, 401, "expired GBA keys")
    }

    func testConfigurationFromTheGatewayFile() throws {
        let yaml = TestConfiguration.header + """

              - { name: video, kind: rtp, destination: 239.1.1.1:5000, keyGroup: 7 }
            keyServer: { listen: 127.0.0.1:18080, scfPeers: [192.0.2.10], nonceLifetime: 2m }
            userServices:
              - { id: "urn:3gpp:mbms:svc1", sessions: [video], register: ["*@ims.example.org"] }
            """
        let c = try GatewayConfiguration.parse(yaml: yaml)
        let k = KeyServerConfiguration(gateway: c)
        XCTAssertEqual(k.bmscFQDN, c.bmscFQDN)
        XCTAssertEqual(k.services.map(\.serviceID), ["urn:3gpp:mbms:svc1"])
        XCTAssertEqual(k.services.first?.keyGroups, [KeyGroupReference(keyDomainID: c.keyDomainID, keyGroup: 7)])
        XCTAssertEqual(k.services.first?.admission, .impiPatterns(["*@ims.example.org"]))
        XCTAssertEqual(k.scfPeers, ["192.0.2.10"])
        XCTAssertEqual(KeyServerConfiguration.nonces(gateway: c).lifetime, 120)
        XCTAssertThrowsError(try GatewayConfiguration.parse(yaml: TestConfiguration.header + """

              - { name: video, kind: rtp, destination: 239.1.1.1:5000, keyGroup: 7 }
            keyServer: { tlsListen: 127.0.0.1:18443 }
            userServices: [{ id: "urn:x", sessions: [video] }]
            """)) { XCTAssertTrue("\($0)".contains("tlsListen needs a certificate and key"), "\($0)") }
        XCTAssertThrowsError(try GatewayConfiguration.parse(yaml: TestConfiguration.header + """

              - { name: video, kind: rtp, destination: 239.1.1.1:5000, keyGroup: 7 }
            keyServer: { listen: 127.0.0.1:18080 }
            userServices: [{ id: "urn:x", sessions: [audio] }]
            """)) { XCTAssertTrue("\($0)".contains("no session of that name"), "\($0)") }
    }
}
