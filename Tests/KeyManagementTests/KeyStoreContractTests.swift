import CryptoCore
import MIKEY
import XCTest
@testable import KeyManagement

/// The `KeyStore` contract, run against every implementation (SQLite and the in-memory test
/// store; a PostgreSQL store adds one line here).
final class KeyStoreContractTests: XCTestCase {
    func testSQLiteStoreHonoursContract() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try checkContract(try SQLiteKeyStore.openOrCreate(path: dir.appendingPathComponent("k.sqlite").path, kek: try Fixtures.kek()))
    }

    func testInMemoryStoreHonoursContract() throws {
        try checkContract(InMemoryKeyStore())
    }

    func checkContract(_ store: any KeyStore, file: StaticString = #filePath, line: UInt = #line) throws {
        let empty = try store.snapshot()
        XCTAssertEqual(empty.revision, 0, file: file, line: line)
        XCTAssertNil(empty.keyDomainID, file: file, line: line)
        XCTAssertTrue(empty.msks.isEmpty && empty.keyGroups.isEmpty, file: file, line: line)

        let c = try Fixtures.configuration()
        let changes = try MSKLifecycle(configuration: c.schedule)
            .initialization(snapshot: empty, gateway: c, at: Fixtures.epoch, random: DeterministicRandom("contract"))
        XCTAssertEqual(try store.commit(changes, expectedRevision: 0), 1, file: file, line: line)
        let s = try store.snapshot()
        XCTAssertEqual(s.revision, 1, file: file, line: line)
        XCTAssertEqual(s.keyDomainID, c.keyDomainID, file: file, line: line)
        XCTAssertEqual(s.grid, GridParameters(c.schedule), file: file, line: line)
        XCTAssertEqual(s.highWater, Fixtures.epoch, file: file, line: line)
        XCTAssertEqual(s.keyGroups.map(\.keyGroup.rawValue), [1, 2], file: file, line: line)
        XCTAssertEqual(s.msks.map(\.mskID.rawValue), [0x0001_0001, 0x0001_0002, 0x0002_0001, 0x0002_0002], file: file, line: line)
        // Secrets come back intact.
        for case let .addMSK(m) in changes {
            let r = try XCTUnwrap(s.msk(m.mskID), file: file, line: line)
            XCTAssertTrue(try XCTUnwrap(r.msk).isEqual(to: try XCTUnwrap(m.msk)), file: file, line: line)
            XCTAssertTrue(try XCTUnwrap(r.seed).isEqual(to: try XCTUnwrap(m.seed)), file: file, line: line)
            XCTAssertEqual(r.rand, m.rand, file: file, line: line)
            XCTAssertEqual(r.keyValidity, m.keyValidity, file: file, line: line)
            XCTAssertEqual(r.validFrom, m.validFrom, file: file, line: line)
            XCTAssertEqual(r.validUntil, m.validUntil, file: file, line: line)
        }
        // Optimistic concurrency: a stale revision applies nothing.
        let id = MSKID(keyGroup: try XCTUnwrap(KeyGroup(1)), keyNumber: 1)
        XCTAssertThrowsError(try store.commit([.purgeSecrets(id)], expectedRevision: 0), file: file, line: line)
        XCTAssertNotNil(try store.snapshot().msk(id)?.msk, file: file, line: line)
        // Atomicity: a change list with a failing change applies nothing.
        let missing = MSKID(keyGroup: try XCTUnwrap(KeyGroup(9)), keyNumber: 1)
        XCTAssertThrowsError(try store.commit([.purgeSecrets(id), .setWindow(missing, validFrom: 0, validUntil: 60)], expectedRevision: 1),
                             file: file, line: line)
        XCTAssertNotNil(try store.snapshot().msk(id)?.msk, "partial commit", file: file, line: line)
        XCTAssertEqual(try store.snapshot().revision, 1, file: file, line: line)
        // Window, invalidation, purge, high-water mark.
        try store.commit([.setWindow(id, validFrom: Fixtures.epoch, validUntil: Fixtures.epoch + 60), .invalidate(id, at: Fixtures.epoch + 1),
                          .purgeSecrets(id), .advanceHighWater(Fixtures.epoch + 60), .advanceHighWater(Fixtures.epoch)],
                         expectedRevision: 1)
        let after = try XCTUnwrap(try store.snapshot().msk(id), file: file, line: line)
        XCTAssertEqual(after.validUntil, Fixtures.epoch + 60, file: file, line: line)
        XCTAssertEqual(after.invalidatedAt, Fixtures.epoch + 1, file: file, line: line)
        XCTAssertNil(after.msk, file: file, line: line)
        XCTAssertNil(after.seed, file: file, line: line)
        XCTAssertEqual(try store.snapshot().highWater, Fixtures.epoch + 60, "high-water mark went back", file: file, line: line)
        // Per-UE counters: 1, 2, … per UE, independent between UEs.
        XCTAssertNil(try store.mskMessageCounter(ueID: "a"), file: file, line: line)
        XCTAssertEqual(try (0..<5).map { _ in try store.nextMSKMessageCounter(ueID: "a") }, [1, 2, 3, 4, 5], file: file, line: line)
        XCTAssertEqual(try store.nextMSKMessageCounter(ueID: "b"), 1, file: file, line: line)
        XCTAssertEqual(try store.mskMessageCounter(ueID: "a"), 5, file: file, line: line)
    }
}
