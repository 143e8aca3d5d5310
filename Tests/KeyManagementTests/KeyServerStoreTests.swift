import CryptoCore
import Foundation
import GRDB
import XCTest
@testable import KeyManagement

/// The key server's durable state in the SQLite store (migration v5): what a restart must keep
/// (bootstrapping table, MUKs, registrations, grants, nonce high-water marks), sealed secrets,
/// authenticated rows.
final class KeyServerStoreTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try Fixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }
    var path: String { dir.appendingPathComponent("keys.sqlite").path }

    func open() throws -> SQLiteKeyStore { try SQLiteKeyStore.openOrCreate(path: path, kek: try Fixtures.kek()) }

    func edit(_ sql: String) throws {
        let q = try DatabaseQueue(path: path)
        try q.write { db in try db.execute(sql: sql) }
        try q.close()
    }

    func assertCorrupt(_ row: String, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            guard case KeyStoreError.corrupt = e else { return XCTFail("not a corrupt-store error: \(e)", file: file, line: line) }
            XCTAssertTrue("\(e)".contains("\(path): \(row) row fails authentication"), "\(e)", file: file, line: line)
        }
    }

    let ks = SecretBytes(Array(repeating: 0x11, count: 32)), ksInt = SecretBytes(Array(repeating: 0x22, count: 32))

    func testEverythingSurvivesAReopenAndSecretsAreSealed() throws {
        var store = try open()
        try store.apply([
            .putBootstrap(BootstrapRecord(btid: "b1@bsf", impi: "alice@ims", gbaType: "me", ksNAF: ks, ksIntNAF: nil, expiresAt: 2_000, createdAt: 1_000)),
            .putBootstrap(BootstrapRecord(btid: "b2@bsf", impi: "bob@ims", gbaType: "u", ksNAF: ks, ksIntNAF: ksInt, expiresAt: 3_000, createdAt: 1_000)),
            .putUserKey(UserKeyRow(btid: "b1@bsf", impi: "alice@ims", location: "me", muk: ksInt, expiresAt: 2_000)),
            .register(impi: "alice@ims", btid: "b1@bsf", ueAddress: "127.0.0.77", serviceIDs: ["urn:svc:a"], at: 1_100),
            .register(impi: "alice@ims", btid: "b1@bsf", ueAddress: "127.0.0.78", serviceIDs: ["urn:svc:b"], at: 1_200),
            .putGrant(GrantRow(impu: "sip:alice@ims", serviceIDs: ["urn:svc:a"], ueAddress: "127.0.0.77", scfAddress: "127.0.0.5", grantedAt: 1_050)),
        ])
        store = try open()
        XCTAssertEqual(try store.bootstraps().map(\.btid), ["b1@bsf", "b2@bsf"])
        XCTAssertTrue(try XCTUnwrap(store.bootstrap(btid: "b2@bsf")?.ksIntNAF).isEqual(to: ksInt))
        XCTAssertTrue(try XCTUnwrap(store.userKey(btid: "b1@bsf")).muk.isEqual(to: ksInt))
        XCTAssertEqual(try store.registration(impi: "alice@ims"),
                       RegistrationRow(impi: "alice@ims", btid: "b1@bsf", ueAddress: "127.0.0.78", serviceIDs: ["urn:svc:a", "urn:svc:b"], updatedAt: 1_200),
                       "re-registration adds services and moves the UE address")
        XCTAssertEqual(try store.grant(impu: "sip:alice@ims")?.scfAddress, "127.0.0.5")

        try store.apply([.deregister(impi: "alice@ims", serviceIDs: ["urn:svc:a"])])
        XCTAssertEqual(try store.registration(impi: "alice@ims")?.serviceIDs, ["urn:svc:b"])
        try store.apply([.deregister(impi: "alice@ims", serviceIDs: ["urn:svc:b"])])
        XCTAssertNil(try store.registration(impi: "alice@ims"), "no services left: the registration goes")
        try store.apply([.removeBootstrap(btid: "b1@bsf")])
        XCTAssertNil(try store.bootstrap(btid: "b1@bsf"))
        XCTAssertNil(try store.userKey(btid: "b1@bsf"), "the MUK goes with its B-TID")

        // No key in clear in the file.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)) + ((try? Data(contentsOf: URL(fileURLWithPath: path + "-wal"))) ?? Data()))
        for secret in [ks, ksInt] {
            let needle = secret.revealedBytes()
            XCTAssertFalse((0...(bytes.count - needle.count)).contains { bytes[$0] == needle[0] && Array(bytes[$0..<$0 + needle.count]) == needle })
        }
    }

    func testNonceNCIsAcceptedOnceAndOnlyUpwards() throws {
        let store = try open()
        try store.storeNonce("n1", issuedAt: 100, purgeBefore: 0)
        XCTAssertEqual(try store.nonce("n1"), NonceRow(nonce: "n1", issuedAt: 100, highestNC: nil))
        XCTAssertTrue(try store.acceptNonce("n1", nc: 1))
        XCTAssertFalse(try store.acceptNonce("n1", nc: 1), "replayed nonce/nc")
        XCTAssertTrue(try store.acceptNonce("n1", nc: 3))
        XCTAssertFalse(try store.acceptNonce("n1", nc: 2), "an older nc")
        XCTAssertFalse(try store.acceptNonce("unknown", nc: 1))
        try store.storeNonce("n2", issuedAt: 500, purgeBefore: 400)
        XCTAssertNil(try store.nonce("n1"), "expired nonces are purged")
        XCTAssertEqual(try open().nonce("n2")?.issuedAt, 500, "nonces survive a restart")
    }

    func testEditedRowsAreCorrupt() throws {
        let store = try open()
        try store.apply([
            .putBootstrap(BootstrapRecord(btid: "b1@bsf", impi: "alice@ims", gbaType: "me", ksNAF: ks, ksIntNAF: nil, expiresAt: 2_000, createdAt: 1_000)),
            .putUserKey(UserKeyRow(btid: "b1@bsf", impi: "alice@ims", location: "me", muk: ksInt, expiresAt: 2_000)),
            .register(impi: "alice@ims", btid: "b1@bsf", ueAddress: "127.0.0.77", serviceIDs: ["urn:svc:a"], at: 1_100),
            .putGrant(GrantRow(impu: "sip:alice@ims", serviceIDs: ["urn:svc:a"], ueAddress: "127.0.0.77", scfAddress: "127.0.0.5", grantedAt: 1_050)),
        ])
        try edit("UPDATE bootstrap SET expiresAt = 9999999999")
        assertCorrupt("bootstrap of B-TID b1@bsf") { _ = try store.bootstrap(btid: "b1@bsf") }
        try edit("UPDATE userKey SET expiresAt = 9999999999")
        assertCorrupt("MUK of B-TID b1@bsf") { _ = try store.userKey(btid: "b1@bsf") }
        try edit("UPDATE registration SET ueAddress = '10.66.66.66'")
        assertCorrupt("registration of IMPI alice@ims") { _ = try store.registrations() }
        assertCorrupt("registration of IMPI alice@ims") {
            try store.apply([.register(impi: "alice@ims", btid: "b1@bsf", ueAddress: "127.0.0.77", serviceIDs: ["urn:svc:b"], at: 1_300)])
        }
        try edit("UPDATE scfGrant SET serviceIDs = 'urn:svc:a\nurn:svc:premium'")
        assertCorrupt("grant of IMPU sip:alice@ims") { _ = try store.grant(impu: "sip:alice@ims") }
    }
}
