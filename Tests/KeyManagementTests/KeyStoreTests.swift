import CryptoCore
import MIKEY
import XCTest
@testable import KeyManagement

final class KeyStoreTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try Fixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func testStoreAndKEKFilesAreCreatedWithMode0600() throws {
        let old = umask(0o022)   // a permissive umask must not matter
        defer { umask(old) }
        let kek = try KeyEncryptionKey.createFile(at: path("kek.hex"))
        XCTAssertEqual(fileMode(path("kek.hex")), 0o600)
        XCTAssertThrowsError(try KeyEncryptionKey.createFile(at: path("kek.hex")))   // never overwritten
        XCTAssertTrue(try KeyEncryptionKey.loadFile(path("kek.hex")).isEqual(to: kek))
        let store = try SQLiteKeyStore.openOrCreate(path: path("keys.sqlite"), kek: kek)
        let m = KeyManager(configuration: try Fixtures.configuration(), store: store)
        try m.initialize(at: at(0))
        XCTAssertEqual(fileMode(path("keys.sqlite")), 0o600)
        XCTAssertEqual(fileMode(path("keys.sqlite-wal")), 0o600)
        XCTAssertEqual(try store.integrityCheck(), "ok")
    }

    func testKEKSourcesAndErrors() throws {
        let hex = Fixtures.kekHex
        XCTAssertEqual(try KeyEncryptionKey.load(environment: ["MBMS_KEK": hex], configuredFile: nil).count, 32)
        try Data((hex + "\n").utf8).write(to: URL(fileURLWithPath: path("open.hex")))
        chmod(path("open.hex"), 0o644)
        XCTAssertThrowsError(try KeyEncryptionKey.load(environment: ["MBMS_KEK_FILE": path("open.hex")], configuredFile: nil)) {
            XCTAssertEqual($0 as? KeyEncryptionKeyError, .tooOpen(path: self.path("open.hex"), mode: "644"))
        }
        chmod(path("open.hex"), 0o600)
        XCTAssertEqual(try KeyEncryptionKey.load(environment: [:], configuredFile: path("open.hex")).count, 32)
        XCTAssertThrowsError(try KeyEncryptionKey.load(environment: [:], configuredFile: nil)) {
            XCTAssertEqual($0 as? KeyEncryptionKeyError, .notConfigured)
        }
        XCTAssertThrowsError(try KeyEncryptionKey.load(environment: ["MBMS_KEK": "abcd"], configuredFile: nil)) { e in
            XCTAssertFalse("\(e)".contains("abcd"), "error must not echo key material")
        }
    }

    func testSecretsAreEncryptedAtRestAndWrongKEKIsRefused() throws {
        let store = try SQLiteKeyStore.openOrCreate(path: path("keys.sqlite"), kek: try Fixtures.kek())
        let snap = try KeyManager(configuration: try Fixtures.configuration(), store: store).initialize(at: at(0))
        let secrets = try snap.msks.flatMap { m -> [[UInt8]] in
            [try XCTUnwrap(m.msk).revealedBytes(), try XCTUnwrap(m.seed).revealedBytes()]
        }
        XCTAssertEqual(secrets.count, 8)
        var onDisk: [UInt8] = []
        for f in ["keys.sqlite", "keys.sqlite-wal"] {
            if let d = FileManager.default.contents(atPath: path(f)) { onDisk += [UInt8](d) }
        }
        XCTAssertGreaterThan(onDisk.count, 0)
        for s in secrets {
            // No 8-byte window of any MSK or seed appears in the files.
            XCTAssertFalse(contains(onDisk, Array(s.prefix(8))))
        }
        // The RAND is public and stored in clear (sanity check that the scan works).
        XCTAssertTrue(contains(onDisk, snap.msks[0].rand))

        XCTAssertThrowsError(try SQLiteKeyStore.open(path: path("keys.sqlite"), kek: SecretBytes([UInt8](repeating: 7, count: 32)))) {
            guard case KeyStoreError.wrongKeyEncryptionKey = $0 else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try SQLiteKeyStore.open(path: path("missing.sqlite"), kek: try Fixtures.kek())) {
            guard case KeyStoreError.notInitialized = $0 else { return XCTFail("\($0)") }
        }
        // Reopened with the right KEK: identical secrets.
        let again = try SQLiteKeyStore.open(path: path("keys.sqlite"), kek: try Fixtures.kek()).snapshot()
        for (a, b) in zip(snap.msks, again.msks) {
            XCTAssertTrue(try XCTUnwrap(a.msk).isEqual(to: try XCTUnwrap(b.msk)))
            XCTAssertTrue(try XCTUnwrap(a.seed).isEqual(to: try XCTUnwrap(b.seed)))
            XCTAssertEqual(a.validFrom, b.validFrom); XCTAssertEqual(a.keyValidity, b.keyValidity)
        }
    }

    func testSealerDetectsTamperingAndRowSwaps() throws {
        let sealer = try SecretSealer(kek: try Fixtures.kek())
        let secret = SecretBytes([UInt8](0..<16))
        var sealed = try sealer.seal(secret, context: "msk:00010001")
        XCTAssertEqual(sealed.count, 16 + 49)
        XCTAssertTrue(try sealer.open(sealed, context: "msk:00010001").isEqual(to: secret))
        XCTAssertThrowsError(try sealer.open(sealed, context: "msk:00010002"))   // moved to another row
        sealed[20] ^= 1
        XCTAssertThrowsError(try sealer.open(sealed, context: "msk:00010001"))
        // Two sealings of the same value differ (random IV).
        XCTAssertNotEqual(try sealer.seal(secret, context: "x"), try sealer.seal(secret, context: "x"))
    }

    func testUECountersIncreaseAndPersist() throws {
        var store: SQLiteKeyStore? = try SQLiteKeyStore.openOrCreate(path: path("keys.sqlite"), kek: try Fixtures.kek())
        XCTAssertNil(try store?.mskMessageCounter(ueID: "btid-1@bsf"))
        XCTAssertEqual(try store?.nextMSKMessageCounter(ueID: "btid-1@bsf"), 1)
        XCTAssertEqual(try store?.nextMSKMessageCounter(ueID: "btid-1@bsf"), 2)
        XCTAssertEqual(try store?.nextMSKMessageCounter(ueID: "btid-2@bsf"), 1)
        store = nil
        let reopened = try SQLiteKeyStore.open(path: path("keys.sqlite"), kek: try Fixtures.kek())
        XCTAssertEqual(try reopened.mskMessageCounter(ueID: "btid-1@bsf"), 2)
        XCTAssertEqual(try reopened.nextMSKMessageCounter(ueID: "btid-1@bsf"), 3)
    }

    func testOptimisticCommitConflict() throws {
        let store = try SQLiteKeyStore.openOrCreate(path: path("keys.sqlite"), kek: try Fixtures.kek())
        let c = try Fixtures.configuration()
        XCTAssertEqual(try store.commit([.setKeyDomain(c.keyDomainID)], expectedRevision: 0), 1)
        XCTAssertThrowsError(try store.commit([.setKeyDomain(c.keyDomainID)], expectedRevision: 0)) {
            guard case KeyStoreError.conflict(0, 1) = $0 else { return XCTFail("\($0)") }
        }
        // A store never changes key domain.
        XCTAssertThrowsError(try store.commit([.setKeyDomain(try KeyDomainID.parse(mcc: "262", mnc: "01"))], expectedRevision: 1))
        // Two managers on one store: both plans land (the loser re-plans), nothing duplicated.
        let a = KeyManager(configuration: c, store: store, random: DeterministicRandom("a"))
        let b = KeyManager(configuration: c, store: try SQLiteKeyStore.open(path: path("keys.sqlite"), kek: try Fixtures.kek()),
                           random: DeterministicRandom("b"))
        try a.initialize(at: at(0))
        let s = try b.initialize(at: at(0))
        XCTAssertEqual(s.msks.count, 4)
    }

    func testConfigurationMismatchWithStoreIsReported() throws {
        let m = KeyManager(configuration: try Fixtures.configuration(), store: InMemoryKeyStore())
        try m.initialize(at: at(0))
        let other = try GatewayConfiguration.parse(yaml: Fixtures.yaml().replacingOccurrences(of: "mnc: \"01\"", with: "mnc: \"02\""))
        XCTAssertThrowsError(try KeyManager(configuration: other, store: m.store).initialize(at: at(0))) {
            XCTAssertTrue("\($0)".contains("fix:"), "\($0)")
        }
        let cipher = try GatewayConfiguration.parse(yaml: Fixtures.yaml().replacingOccurrences(of: "aes-256-cm", with: "aes-128-cm"))
        XCTAssertThrowsError(try KeyManager(configuration: cipher, store: m.store).initialize(at: at(0)))
        // Gateways sharing a store must share the grid: another MTK period or lead is refused
        // by init, maintenance, rotation and the schedule alike.
        for other in [try Fixtures.configuration(mtkPeriod: "30s"), try Fixtures.configuration(lead: "5s")] {
            let o = KeyManager(configuration: other, store: m.store)
            XCTAssertThrowsError(try o.initialize(at: at(0))) { XCTAssertTrue("\($0)".contains("schedule.mtk.period"), "\($0)") }
            XCTAssertThrowsError(try o.maintain(at: at(0)))
            XCTAssertThrowsError(try o.rotate(keyGroup: try XCTUnwrap(KeyGroup(1)), at: at(0)))
            XCTAssertThrowsError(try o.schedule())
        }
        // The MSK period may change (it shapes only MSKs created later).
        XCTAssertNoThrow(try KeyManager(configuration: try Fixtures.configuration(mskPeriod: "1200s"), store: m.store).maintain(at: at(0)))
    }

    private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return true }
        }
        return false
    }
}
