import Foundation
import GRDB

/// The MSK delivery queue in the SQLite store (migration v6). A single key server per SQLite
/// file: claiming needs no lock beyond the write transaction.
extension SQLiteKeyStore: MSKDeliveryQueue {
    static let v6 = "v6 MSK delivery queue"

    static func registerDeliveryMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration(v6) { db in
            try db.execute(sql: """
                CREATE TABLE delivery (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    impi TEXT NOT NULL,
                    btid TEXT NOT NULL,
                    ueAddress TEXT NOT NULL,
                    keyGroup INTEGER NOT NULL CHECK (keyGroup BETWEEN 1 AND 65535),
                    keyNumber INTEGER NOT NULL CHECK (keyNumber BETWEEN 0 AND 65535),
                    kind TEXT NOT NULL CHECK (kind IN ('key', 'invalidation', 'pull')),
                    reason TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'awaiting', 'done', 'gave-up')),
                    attempts INTEGER NOT NULL CHECK (attempts >= 0),
                    nextAttemptAt INTEGER NOT NULL,
                    lastTimestamp INTEGER,
                    lastCSBID INTEGER,
                    lastMSKID INTEGER,
                    createdAt INTEGER NOT NULL,
                    note TEXT
                );
                CREATE INDEX deliveryDue ON delivery (state, nextAttemptAt);
                CREATE INDEX deliveryUE ON delivery (btid);
                CREATE UNIQUE INDEX deliveryOpen ON delivery (btid, keyGroup, keyNumber, kind) WHERE state IN ('pending', 'awaiting');
                """)
        }
    }

    private func decodeDelivery(_ r: Row) throws -> DeliveryRow {
        func int(_ c: String) throws -> Int64 {
            guard let v = Int64.fromDatabaseValue(r[c]) else { throw rowFailure("delivery \(Int64.fromDatabaseValue(r["id"]) ?? -1) (\(c))") }
            return v
        }
        func text(_ c: String) throws -> String {
            guard let v = String.fromDatabaseValue(r[c]) else { throw rowFailure("delivery \(Int64.fromDatabaseValue(r["id"]) ?? -1) (\(c))") }
            return v
        }
        guard let kind = DeliveryRow.Kind(rawValue: try text("kind")), let state = DeliveryRow.State(rawValue: try text("state")) else {
            throw rowFailure("delivery \(try int("id")) (kind/state)")
        }
        return DeliveryRow(id: try int("id"), impi: try text("impi"), btid: try text("btid"), ueAddress: try text("ueAddress"),
                           keyGroup: UInt16(truncatingIfNeeded: try int("keyGroup")), keyNumber: UInt16(truncatingIfNeeded: try int("keyNumber")),
                           kind: kind, reason: try text("reason"), state: state, attempts: Int(try int("attempts")),
                           nextAttemptAt: try int("nextAttemptAt"),
                           lastTimestamp: Int64.fromDatabaseValue(r["lastTimestamp"]).map { UInt32(truncatingIfNeeded: $0) },
                           lastCSBID: Int64.fromDatabaseValue(r["lastCSBID"]).map { UInt32(truncatingIfNeeded: $0) },
                           lastMSKID: Int64.fromDatabaseValue(r["lastMSKID"]).map { UInt32(truncatingIfNeeded: $0) },
                           createdAt: try int("createdAt"), note: String.fromDatabaseValue(r["note"]))
    }

    @discardableResult
    public func enqueue(_ rows: [DeliveryRow]) throws -> Int {
        try pool.write { db in
            var added = 0
            for d in rows {
                try db.execute(sql: """
                    INSERT OR IGNORE INTO delivery (impi, btid, ueAddress, keyGroup, keyNumber, kind, reason, state, attempts, nextAttemptAt, createdAt)
                    VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)
                    """, arguments: [d.impi, d.btid, d.ueAddress, Int64(d.keyGroup), Int64(d.keyNumber), d.kind.rawValue, d.reason,
                                     d.nextAttemptAt, d.createdAt])
                added += db.changesCount
            }
            return added
        }
    }

    public func dueDeliveries(now: Int64, limit: Int) throws -> [DeliveryRow] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM delivery WHERE state IN ('pending', 'awaiting') AND nextAttemptAt <= ? ORDER BY nextAttemptAt, id LIMIT ?",
                             arguments: [now, limit])
        }.map(decodeDelivery)
    }

    public func updateDelivery(_ d: DeliveryRow) throws {
        try pool.write { db in
            try db.execute(sql: """
                UPDATE delivery SET ueAddress = ?, state = ?, attempts = ?, nextAttemptAt = ?, lastTimestamp = ?, lastCSBID = ?, lastMSKID = ?, note = ?
                WHERE id = ?
                """, arguments: [d.ueAddress, d.state.rawValue, d.attempts, d.nextAttemptAt, d.lastTimestamp.map { Int64($0) },
                                 d.lastCSBID.map { Int64($0) }, d.lastMSKID.map { Int64($0) }, d.note, d.id])
        }
    }

    public func awaitingDelivery(btid: String, csbID: UInt32, timestamp: UInt32) throws -> DeliveryRow? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM delivery WHERE btid = ? AND state = 'awaiting' AND lastCSBID = ? AND lastTimestamp = ?",
                             arguments: [btid, Int64(csbID), Int64(timestamp)])
        }.map(decodeDelivery)
    }

    public func deliveries(btid: String) throws -> [DeliveryRow] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM delivery WHERE btid = ? ORDER BY id", arguments: [btid]) }.map(decodeDelivery)
    }

    public func hasDelivery(btid: String, keyGroup: UInt16, keyNumber: UInt16, kind: DeliveryRow.Kind) throws -> Bool {
        try pool.read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM delivery WHERE btid = ? AND keyGroup = ? AND keyNumber = ? AND kind = ?)",
                              arguments: [btid, Int64(keyGroup), Int64(keyNumber), kind.rawValue]) ?? false
        }
    }

    public func deliveryCounts() throws -> [DeliveryRow.State: Int] {
        let rows = try pool.read { db in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM delivery GROUP BY state") }
        var out: [DeliveryRow.State: Int] = [:]
        for r in rows {
            if let s = String.fromDatabaseValue(r["state"]).flatMap(DeliveryRow.State.init(rawValue:)) { out[s] = Int(Int64.fromDatabaseValue(r["n"]) ?? 0) }
        }
        return out
    }
}
