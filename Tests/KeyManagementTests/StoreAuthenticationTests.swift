import CryptoCore
import Foundation
import GRDB
import MIKEY
import XCTest
@testable import KeyManagement

/// Issue 16 (4): every row of the SQLite store is authenticated (row MAC over the whole row and
/// the store UUID), so rows edited by hand and blobs copied from another store are reported as
/// a corrupt store naming the file and the row.
final class StoreAuthenticationTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try Fixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// A store with the fixture configuration's key groups and MSKs (two per group).
    func makeStore(_ name: String) throws -> SQLiteKeyStore {
        let store = try SQLiteKeyStore.openOrCreate(path: path(name), kek: try Fixtures.kek())
        try KeyManager(configuration: try Fixtures.configuration(storePath: path(name)), store: store).initialize(at: at(0))
        return store
    }

    /// Runs SQL on the store file behind the gateway's back (as `sqlite3` would).
    func edit(_ name: String, _ sql: String, _ arguments: StatementArguments = StatementArguments()) throws {
        let q = try DatabaseQueue(path: path(name))
        try q.write { db in try db.execute(sql: sql, arguments: arguments) }
        try q.close()
    }

    func assertCorrupt(_ store: SQLiteKeyStore, row: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try store.snapshot(), file: file, line: line) { e in
            let text = "\(e)"
            guard case KeyStoreError.corrupt = e else { return XCTFail("not a corrupt-store error: \(text)", file: file, line: line) }
            XCTAssertTrue(text.hasPrefix("key store corrupt: \(store.path): \(row) row fails authentication"), text, file: file, line: line)
            XCTAssertTrue(text.contains("edited outside mbms-gateway, or copied from another store"), text, file: file, line: line)
        }
    }

    func testEditedValidityFieldsAreDetectedAndRestoringThemHeals() throws {
        let store = try makeStore("keys.sqlite")
        XCTAssertEqual(try store.snapshot().msks.count, 4)
        let row = "keyGroup = 1 AND keyNumber = 1"
        let edits: [(String, String)] = [
            ("UPDATE msk SET validUntil = validUntil + 60 WHERE \(row)", "UPDATE msk SET validUntil = validUntil - 60 WHERE \(row)"),
            ("UPDATE msk SET validFrom = validFrom - 60 WHERE \(row)", "UPDATE msk SET validFrom = validFrom + 60 WHERE \(row)"),
            ("UPDATE msk SET invalidatedAt = 1 WHERE \(row)", "UPDATE msk SET invalidatedAt = NULL WHERE \(row)"),
            ("UPDATE msk SET seqU = seqU + 1 WHERE \(row)", "UPDATE msk SET seqU = seqU - 1 WHERE \(row)"),
            ("UPDATE msk SET seqL = seqL + 1 WHERE \(row)", "UPDATE msk SET seqL = seqL - 1 WHERE \(row)"),
            ("UPDATE msk SET createdAt = createdAt + 1 WHERE \(row)", "UPDATE msk SET createdAt = createdAt - 1 WHERE \(row)"),
        ]
        let revision = try store.snapshot().revision
        for (change, undo) in edits {
            try edit("keys.sqlite", change)
            assertCorrupt(store, row: "MSK 00010001")
            try edit("keys.sqlite", undo)
            XCTAssertNoThrow(try store.snapshot(), "restoring \(change) must pass again")
        }
        // RAND (no undo: the original is gone).
        try edit("keys.sqlite", "UPDATE msk SET rand = zeroblob(16) WHERE \(row)")
        assertCorrupt(store, row: "MSK 00010001")
        // A commit does not launder an edited row by re-MACing it.
        XCTAssertThrowsError(try store.commit([.invalidate(MSKID(keyGroup: 1, keyNumber: 1), at: 5)], expectedRevision: revision))
    }

    func testEditedPurgedRowIsDetected() throws {
        let store = try makeStore("keys.sqlite")
        let id = MSKID(keyGroup: 2, keyNumber: 1)
        let revision = try store.snapshot().revision
        try store.commit([.invalidate(id, at: Fixtures.epoch + 10), .purgeSecrets(id)], expectedRevision: revision)
        let purged = try XCTUnwrap(try store.snapshot().msk(id))
        XCTAssertTrue(purged.isPurged)
        XCTAssertEqual(purged.invalidatedAt, Fixtures.epoch + 10)
        // Clearing the invalidation of a retired MSK by hand.
        try edit("keys.sqlite", "UPDATE msk SET invalidatedAt = NULL WHERE keyGroup = 2 AND keyNumber = 1")
        assertCorrupt(store, row: "MSK 00020001")
        try edit("keys.sqlite", "UPDATE msk SET invalidatedAt = ? WHERE keyGroup = 2 AND keyNumber = 1", [Fixtures.epoch + 10])
        XCTAssertNoThrow(try store.snapshot())
        // A wrongly typed value is a corrupt row too, never a crash.
        try edit("keys.sqlite", "UPDATE msk SET validUntil = 'soon' WHERE keyGroup = 2 AND keyNumber = 1")
        assertCorrupt(store, row: "MSK 00020001 (validUntil)")
    }

    func testCopiedBlobsAndRowsFromAnotherStoreAreDetected() throws {
        let a = try makeStore("a.sqlite")
        _ = try makeStore("b.sqlite")   // same KEK, same configuration: same MSK IDs
        let b = try DatabaseQueue(path: path("b.sqlite"))
        let other = try XCTUnwrap(try b.read { db in try Row.fetchOne(db, sql: "SELECT * FROM msk WHERE keyGroup = 1 AND keyNumber = 1") })
        try b.close()
        // The sealed MSK alone.
        try edit("a.sqlite", "UPDATE msk SET sealedMSK = ? WHERE keyGroup = 1 AND keyNumber = 1", [other["sealedMSK"] as Data])
        assertCorrupt(a, row: "MSK 00010001")
        // The whole row, its MAC included: bound to the other store's UUID.
        let columns = ["validFrom", "validUntil", "seqL", "seqU", "createdAt", "invalidatedAt", "sealedMSK", "rand", "sealedSeed", "rowMAC"]
        try edit("a.sqlite", "UPDATE msk SET " + columns.map { "\($0) = ?" }.joined(separator: ", ") + " WHERE keyGroup = 1 AND keyNumber = 1",
                 StatementArguments(columns.map { other[$0] as DatabaseValue }))
        assertCorrupt(a, row: "MSK 00010001")
        // The meta row (Key Domain ID, grid) and key-group rows are authenticated too.
        let c = try makeStore("c.sqlite")
        try edit("c.sqlite", "UPDATE meta SET mtkPeriod = 30")
        assertCorrupt(c, row: "meta (Key Domain ID, time grid, high-water mark)")
        try edit("c.sqlite", "UPDATE meta SET mtkPeriod = 60")
        XCTAssertNoThrow(try c.snapshot())
        try edit("c.sqlite", "UPDATE keyGroup SET mtkLength = 16 WHERE keyGroup = 2")
        assertCorrupt(c, row: "key group 2")
    }

    /// A store written by the v2 schema (legacy seals `msk:<id>`, no row MACs) migrates: store
    /// UUID created, seals re-made under the new context, rows MACed; the keys are unchanged.
    func testVersion2StoreMigratesAndKeepsItsKeys() throws {
        let kek = try Fixtures.kek()
        let memory = InMemoryKeyStore()
        let configuration = try Fixtures.configuration(storePath: path("old.sqlite"))
        let expected = try KeyManager(configuration: configuration, store: memory, random: DeterministicRandom("migration")).initialize(at: at(0))
        try writeVersion2Store("old.sqlite", kek: kek, snapshot: expected)

        let store = try SQLiteKeyStore.open(path: path("old.sqlite"), kek: kek)
        let s = try store.snapshot()
        XCTAssertEqual(s.revision, expected.revision)
        XCTAssertEqual(s.keyDomainID, expected.keyDomainID)
        XCTAssertEqual(s.grid, expected.grid)
        XCTAssertEqual(s.keyGroups, expected.keyGroups)
        XCTAssertEqual(s.msks.map(\.mskID), expected.msks.map(\.mskID))
        for (m, e) in zip(s.msks, expected.msks) {
            XCTAssertEqual(m.validFrom, e.validFrom); XCTAssertEqual(m.validUntil, e.validUntil)
            XCTAssertEqual(m.keyValidity, e.keyValidity); XCTAssertEqual(m.rand, e.rand)
            XCTAssertTrue(try XCTUnwrap(m.msk).isEqual(to: try XCTUnwrap(e.msk)))
            XCTAssertTrue(try XCTUnwrap(m.seed).isEqual(to: try XCTUnwrap(e.seed)))
        }
        // Same MTKs as before the migration, and the store keeps working.
        let manager = KeyManager(configuration: configuration, store: store)
        XCTAssertNoThrow(try manager.schedule())
        XCTAssertNoThrow(try manager.rotate(keyGroup: try XCTUnwrap(KeyGroup(1)), at: at(30)))
        XCTAssertEqual(try store.integrityCheck(), "ok")
        // No legacy seal is left anywhere in the files (re-sealed, secure_delete, WAL truncated).
        let legacy = writtenLegacySeals
        var onDisk: [UInt8] = []
        for f in ["old.sqlite", "old.sqlite-wal"] { if let d = FileManager.default.contents(atPath: path(f)) { onDisk += [UInt8](d) } }
        for l in legacy { XCTAssertFalse(contains(onDisk, Array(l[1..<33])), "a legacy sealed blob survived the migration on disk") }
        // Reopening does not migrate again (same UUID: the rows still authenticate).
        XCTAssertNoThrow(try SQLiteKeyStore.open(path: path("old.sqlite"), kek: kek).snapshot())
    }

    func testVersion2StoreWithWrongKEKOrTamperedSealFailsToMigrateClearly() throws {
        let kek = try Fixtures.kek()
        let expected = try KeyManager(configuration: try Fixtures.configuration(), store: InMemoryKeyStore(),
                                      random: DeterministicRandom("migration")).initialize(at: at(0))
        try writeVersion2Store("old.sqlite", kek: kek, snapshot: expected)
        XCTAssertThrowsError(try SQLiteKeyStore.open(path: path("old.sqlite"), kek: SecretBytes([UInt8](repeating: 7, count: 32)))) {
            guard case KeyStoreError.wrongKeyEncryptionKey = $0 else { return XCTFail("\($0)") }
        }
        try edit("old.sqlite", "UPDATE msk SET sealedSeed = (SELECT sealedSeed FROM msk WHERE keyGroup = 1 AND keyNumber = 2) WHERE keyGroup = 1 AND keyNumber = 1")
        XCTAssertThrowsError(try SQLiteKeyStore.open(path: path("old.sqlite"), kek: kek)) { e in
            XCTAssertTrue("\(e)".hasPrefix("key store corrupt: \(self.path("old.sqlite")): MSK 00010001 (seed) row fails authentication"), "\(e)")
        }
    }

    func testPurgeLeavesNoSealedSecretOnDisk() throws {
        let store = try makeStore("keys.sqlite")
        let id = MSKID(keyGroup: 1, keyNumber: 1)
        let sealed: [[UInt8]] = try DatabaseQueue(path: path("keys.sqlite")).read { db in
            let r = try Row.fetchOne(db, sql: "SELECT sealedMSK, sealedSeed FROM msk WHERE keyGroup = 1 AND keyNumber = 1")
            return [[UInt8](try XCTUnwrap(r?["sealedMSK"] as Data?)), [UInt8](try XCTUnwrap(r?["sealedSeed"] as Data?))]
        }
        try store.commit([.purgeSecrets(id)], expectedRevision: try store.snapshot().revision)
        var onDisk: [UInt8] = []
        for f in ["keys.sqlite", "keys.sqlite-wal"] { if let d = FileManager.default.contents(atPath: path(f)) { onDisk += [UInt8](d) } }
        for s in sealed { XCTAssertFalse(contains(onDisk, Array(s[1..<33])), "purged sealed secret still on disk") }
        XCTAssertTrue(try XCTUnwrap(try store.snapshot().msk(id)).isPurged)
    }

    // MARK: helpers

    private var writtenLegacySeals: [[UInt8]] = []

    private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return true }
        }
        return false
    }

    /// The v1+v2 schema (the migrator stopped at v2) with rows as the v2 code wrote them.
    func writeVersion2Store(_ name: String, kek: SecretBytes, snapshot s: KeyStoreSnapshot) throws {
        let sealer = try SecretSealer(kek: kek)
        let fd = open(path(name), O_RDWR | O_CREAT | O_EXCL, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0); close(fd)
        let pool = try DatabasePool(path: path(name))
        try SQLiteKeyStore.migrator(kekCheck: try sealer.checkValue(), sealer: sealer, path: path(name))
            .migrate(pool, upTo: "v2 sender index reservations")
        try pool.write { db in
            try db.execute(sql: "UPDATE meta SET revision = ?, keyDomainID = ?, gridEpoch = ?, mtkPeriod = ?, announceLead = ?, highWater = ? WHERE id = 1",
                           arguments: [s.revision, s.keyDomainID.map { Data($0.bytes) }, s.grid?.epoch, s.grid?.mtkPeriod, s.grid?.announceLead, s.highWater])
            for g in s.keyGroups {
                try db.execute(sql: "INSERT INTO keyGroup (keyGroup, mtkLength, createdAt) VALUES (?, ?, ?)",
                               arguments: [Int64(g.keyGroup.rawValue), g.mtkLength, g.createdAt])
            }
            for m in s.msks {
                let sm = try sealer.seal(try XCTUnwrap(m.msk), context: "msk:\(m.mskID.hex)")
                let ss = try sealer.seal(try XCTUnwrap(m.seed), context: "seed:\(m.mskID.hex)")
                writtenLegacySeals += [sm, ss]
                try db.execute(sql: """
                    INSERT INTO msk (keyGroup, keyNumber, validFrom, validUntil, seqL, seqU, createdAt, invalidatedAt, sealedMSK, rand, sealedSeed)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [Int64(m.mskID.keyGroup), Int64(m.mskID.keyNumber), m.validFrom, m.validUntil,
                                     Int64(m.keyValidity.seqL), Int64(m.keyValidity.seqU), m.createdAt, m.invalidatedAt,
                                     Data(sm), Data(m.rand), Data(ss)])
            }
        }
        let applied = try pool.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") }
        XCTAssertEqual(applied, ["v1 key groups, MSKs, UE counters", "v2 sender index reservations"])
        try pool.close()
    }
}
