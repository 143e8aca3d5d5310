import CryptoCore
import Foundation
import GRDB
import MIKEY
import XCTest
@testable import KeyManagement

/// The counters that must never go back (DESIGN.md §7) — per-UE MIKEY TS counters and per-MTK
/// sender index reservations — are authenticated rows too: a counter edited down by hand would
/// hand out a TS value or a packet index (a keystream) again, so it is reported as a corrupt
/// store instead. Reservations never overlap, also between two stores open on one file.
final class CounterAuthenticationTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try Fixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func edit(_ name: String, _ sql: String) throws {
        let q = try DatabaseQueue(path: path(name))
        try q.write { db in try db.execute(sql: sql) }
        try q.close()
    }

    func assertCorrupt(_ what: String, row: String, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), what, file: file, line: line) { e in
            guard case KeyStoreError.corrupt = e else { return XCTFail("\(what): not a corrupt-store error: \(e)", file: file, line: line) }
            XCTAssertTrue("\(e)".contains("\(row) row fails authentication"), "\(e)", file: file, line: line)
            XCTAssertTrue("\(e)".contains(self.path("keys.sqlite")), "names the file: \(e)", file: file, line: line)
        }
    }

    let counter = SenderIndexCounter(mskID: MSKID(keyGroup: 1, keyNumber: 1), mtkID: MTKID(3), kind: .rtpROC)

    func testReservationsFollowOneAnotherAndAnEditedOneIsCorrupt() throws {
        let store = try SQLiteKeyStore.openOrCreate(path: path("keys.sqlite"), kek: try Fixtures.kek())
        XCTAssertEqual(try (0..<3).map { _ in try store.reserveSenderIndices(counter, count: 100, limit: 1 << 32) }, [0, 100, 200])
        XCTAssertThrowsError(try store.reserveSenderIndices(counter, count: 100, limit: 350)) {
            XCTAssertTrue("\($0)".contains("every block of the RTP ROC of MSK 00010001 MTK 3 is reserved"), "\($0)")
        }
        XCTAssertEqual(try store.senderIndexReservations()[counter], 300)

        try edit("keys.sqlite", "UPDATE senderIndex SET next = 0")   // "give the indices back"
        assertCorrupt("reserve", row: "\(counter)") { _ = try store.reserveSenderIndices(counter, count: 100, limit: 1 << 32) }
        assertCorrupt("list", row: "\(counter)") { _ = try store.senderIndexReservations() }
        try edit("keys.sqlite", "UPDATE senderIndex SET next = 300")
        XCTAssertEqual(try store.reserveSenderIndices(counter, count: 100, limit: 1 << 32), 300, "restoring the row heals it")
    }

    func testEditedUECounterIsCorrupt() throws {
        let store = try SQLiteKeyStore.openOrCreate(path: path("keys.sqlite"), kek: try Fixtures.kek())
        XCTAssertEqual(try (0..<3).map { _ in try store.nextMSKMessageCounter(ueID: "ue1@bsf") }, [1, 2, 3])
        try edit("keys.sqlite", "UPDATE ueCounter SET counter = 1 WHERE ueID = 'ue1@bsf'")
        assertCorrupt("next", row: "MIKEY counter of UE ue1@bsf") { _ = try store.nextMSKMessageCounter(ueID: "ue1@bsf") }
        assertCorrupt("read", row: "MIKEY counter of UE ue1@bsf") { _ = try store.mskMessageCounter(ueID: "ue1@bsf") }
        assertCorrupt("all", row: "MIKEY counter of UE ue1@bsf") { _ = try store.allMSKMessageCounters() }
        XCTAssertEqual(try store.nextMSKMessageCounter(ueID: "ue2@bsf"), 1, "other UEs are not affected")
    }

    /// Two stores open on one file (two gateways, or a replay beside `run`), reserving from
    /// four threads at once: every block is distinct and they tile the range.
    func testConcurrentReservationsNeverOverlap() throws {
        let kek = try Fixtures.kek()
        let a = try SQLiteKeyStore.openOrCreate(path: path("keys.sqlite"), kek: kek)
        let b = try SQLiteKeyStore.open(path: path("keys.sqlite"), kek: kek)
        final class Results: @unchecked Sendable {
            let lock = NSLock()
            var firsts: [UInt64] = []
            var failures: [String] = []
            func add(_ r: Result<UInt64, any Error>) {
                lock.lock(); defer { lock.unlock() }
                switch r {
                case .success(let f): firsts.append(f)
                case .failure(let e): failures.append("\(e)")
                }
            }
        }
        let results = Results()
        let counter = self.counter
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            let store = t % 2 == 0 ? a : b
            for _ in 0..<25 { results.add(Result { try store.reserveSenderIndices(counter, count: 16, limit: 1 << 32) }) }
        }
        XCTAssertEqual(results.failures, [])
        XCTAssertEqual(results.firsts.sorted(), (0..<100).map { UInt64($0 * 16) })
    }

    /// A store from before counter MACs (migrator stopped at v3) with counters in it migrates:
    /// values kept, rows authenticated from then on.
    func testVersion3CountersMigrate() throws {
        let kek = try Fixtures.kek()
        let sealer = try SecretSealer(kek: kek)
        let fd = open(path("keys.sqlite"), O_RDWR | O_CREAT | O_EXCL, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0); close(fd)
        let pool = try DatabasePool(path: path("keys.sqlite"))
        try SQLiteKeyStore.migrator(kekCheck: try sealer.checkValue(), sealer: sealer, path: path("keys.sqlite"))
            .migrate(pool, upTo: SQLiteKeyStore.v3)
        try pool.write { db in
            try db.execute(sql: "INSERT INTO senderIndex (keyGroup, keyNumber, mtkID, kind, next) VALUES (1, 1, 3, 0, 4096)")
            try db.execute(sql: "INSERT INTO ueCounter (ueID, counter) VALUES ('ue1@bsf', 41)")
        }
        try pool.close()
        let store = try SQLiteKeyStore.open(path: path("keys.sqlite"), kek: kek)
        XCTAssertEqual(try store.senderIndexReservations(), [counter: 4096])
        XCTAssertEqual(try store.mskMessageCounter(ueID: "ue1@bsf"), 41)
        XCTAssertEqual(try store.nextMSKMessageCounter(ueID: "ue1@bsf"), 42)
        XCTAssertEqual(try store.reserveSenderIndices(counter, count: 1, limit: 1 << 32), 4096)
    }
}
