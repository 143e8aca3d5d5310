import MIKEY
import CryptoCore
import Foundation
import GRDB

/// The default `KeyStore`: one SQLite file through GRDB (WAL, `synchronous = FULL`,
/// migrations), created with mode 0600 (the -wal/-shm files inherit the database file's
/// mode from SQLite). MSKs and seeds are sealed with `SecretSealer` under the KEK.
public final class SQLiteKeyStore: KeyStore, @unchecked Sendable {
    public let path: String
    private let pool: DatabasePool
    private let sealer: SecretSealer

    /// Opens an existing store. `KeyStoreError.notInitialized` when the file does not exist.
    public static func open(path: String, kek: SecretBytes) throws -> SQLiteKeyStore {
        guard FileManager.default.fileExists(atPath: path) else { throw KeyStoreError.notInitialized(path: path) }
        return try SQLiteKeyStore(path: path, kek: kek)
    }

    /// Opens the store, creating the file with mode 0600 first when it does not exist.
    public static func openOrCreate(path: String, kek: SecretBytes) throws -> SQLiteKeyStore {
        let fd = Foundation.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            close(fd)
        } else if errno != EEXIST {
            throw KeyStoreError.io(path: path, reason: "cannot create the key store (\(String(cString: strerror(errno)))); fix: check that the directory exists and is writable")
        }
        return try SQLiteKeyStore(path: path, kek: kek)
    }

    private init(path: String, kek: SecretBytes) throws {
        self.path = path
        var st = stat()
        if stat(path, &st) == 0, st.st_mode & 0o077 != 0 {
            throw KeyStoreError.io(path: path, reason: "the key store has mode \(String(st.st_mode & 0o777, radix: 8)), readable by others; fix: chmod 600 \(path)")
        }
        sealer = try SecretSealer(kek: kek)
        var config = Configuration()
        config.prepareDatabase { db in
            // Durable commits: a committed counter survives power loss, not only a crash.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        config.busyMode = .timeout(10)
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch {
            throw KeyStoreError.io(path: path, reason: "cannot open the key store as SQLite (\(error)); fix: point keyStore.path at a key store file")
        }
        let check = try sealer.checkValue()
        try Self.migrator(kekCheck: check).migrate(pool)
        let stored = try pool.read { db in try Data.fetchOne(db, sql: "SELECT kekCheck FROM meta WHERE id = 1") }
        guard let stored, [UInt8](stored) == check else { throw KeyStoreError.wrongKeyEncryptionKey(path: path) }
    }

    static func migrator(kekCheck: [UInt8]) -> DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1 key groups, MSKs, UE counters") { db in
            try db.execute(sql: """
                CREATE TABLE meta (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    revision INTEGER NOT NULL CHECK (revision >= 0),
                    keyDomainID BLOB CHECK (keyDomainID IS NULL OR length(keyDomainID) = 3),
                    gridEpoch INTEGER,
                    mtkPeriod INTEGER CHECK (mtkPeriod IS NULL OR mtkPeriod > 0),
                    announceLead INTEGER CHECK (announceLead IS NULL OR (announceLead >= 0 AND announceLead < mtkPeriod)),
                    highWater INTEGER,
                    kekCheck BLOB NOT NULL
                );
                CREATE TABLE keyGroup (
                    keyGroup INTEGER PRIMARY KEY CHECK (keyGroup BETWEEN 1 AND 65535),
                    mtkLength INTEGER NOT NULL CHECK (mtkLength IN (16, 24, 32)),
                    createdAt INTEGER NOT NULL
                );
                CREATE TABLE msk (
                    keyGroup INTEGER NOT NULL REFERENCES keyGroup(keyGroup),
                    keyNumber INTEGER NOT NULL CHECK (keyNumber BETWEEN 1 AND 65535),
                    validFrom INTEGER NOT NULL,
                    validUntil INTEGER NOT NULL CHECK (validUntil >= validFrom),
                    seqL INTEGER NOT NULL CHECK (seqL >= 0),
                    seqU INTEGER NOT NULL CHECK (seqU > seqL AND seqU <= 65534),
                    createdAt INTEGER NOT NULL,
                    invalidatedAt INTEGER,
                    sealedMSK BLOB,
                    rand BLOB NOT NULL CHECK (length(rand) = 16),
                    sealedSeed BLOB,
                    PRIMARY KEY (keyGroup, keyNumber)
                );
                CREATE TABLE ueCounter (
                    ueID TEXT PRIMARY KEY,
                    counter INTEGER NOT NULL CHECK (counter >= 1)
                );
                """)
            try db.execute(sql: "INSERT INTO meta (id, revision, keyDomainID, kekCheck) VALUES (1, 0, NULL, ?)",
                           arguments: [Data(kekCheck)])
        }
        m.registerMigration("v2 sender index reservations") { db in
            // DESIGN.md §7: per (MSK, MTK) the next RTP ROC and SRTCP index no one has reserved.
            try db.execute(sql: """
                CREATE TABLE senderIndex (
                    keyGroup INTEGER NOT NULL,
                    keyNumber INTEGER NOT NULL,
                    mtkID INTEGER NOT NULL CHECK (mtkID BETWEEN 1 AND 65534),
                    kind INTEGER NOT NULL CHECK (kind IN (0, 1)),
                    next INTEGER NOT NULL CHECK (next >= 0),
                    PRIMARY KEY (keyGroup, keyNumber, mtkID, kind)
                )
                """)
        }
        return m
    }

    private func context(_ kind: String, _ id: MSKID) -> String { "\(kind):\(id.hex)" }

    public func snapshot() throws -> KeyStoreSnapshot {
        let (meta, groups, rows) = try pool.read { db -> (Row?, [Row], [Row]) in
            (try Row.fetchOne(db, sql: "SELECT revision, keyDomainID, gridEpoch, mtkPeriod, announceLead, highWater FROM meta WHERE id = 1"),
             try Row.fetchAll(db, sql: "SELECT * FROM keyGroup ORDER BY keyGroup"),
             try Row.fetchAll(db, sql: "SELECT * FROM msk ORDER BY keyGroup, keyNumber"))
        }
        guard let meta else { throw KeyStoreError.corrupt("meta row missing") }
        var kd: KeyDomainID? = nil
        if let d: Data = meta["keyDomainID"] {
            guard let k = KeyDomainID(bytes: [UInt8](d)) else { throw KeyStoreError.corrupt("Key Domain ID is not a PLMN identity") }
            kd = k
        }
        let keyGroups = try groups.map { r -> KeyGroupRecord in
            guard let g = KeyGroup(UInt16(truncatingIfNeeded: r["keyGroup"] as Int64)) else { throw KeyStoreError.corrupt("key group 0") }
            return KeyGroupRecord(keyGroup: g, mtkLength: Int(r["mtkLength"] as Int64), createdAt: r["createdAt"])
        }
        let msks = try rows.map { r -> MSKRecord in
            guard let g = KeyGroup(UInt16(truncatingIfNeeded: r["keyGroup"] as Int64)) else { throw KeyStoreError.corrupt("key group 0") }
            let id = MSKID(keyGroup: g, keyNumber: UInt16(truncatingIfNeeded: r["keyNumber"] as Int64))
            func unseal(_ column: String, _ kind: String) throws -> SecretBytes? {
                guard let d: Data = r[column] else { return nil }
                do { return try sealer.open([UInt8](d), context: context(kind, id)) } catch {
                    throw KeyStoreError.corrupt("\(kind) of MSK \(id.hex) fails authentication")
                }
            }
            return MSKRecord(mskID: id, validFrom: r["validFrom"], validUntil: r["validUntil"],
                             keyValidity: KeyValidity(seqL: UInt16(truncatingIfNeeded: r["seqL"] as Int64),
                                                      seqU: UInt16(truncatingIfNeeded: r["seqU"] as Int64)),
                             createdAt: r["createdAt"], invalidatedAt: r["invalidatedAt"],
                             msk: try unseal("sealedMSK", "msk"), rand: [UInt8](r["rand"] as Data),
                             seed: try unseal("sealedSeed", "seed"))
        }
        var grid: GridParameters? = nil
        if let e: Int64 = meta["gridEpoch"], let p: Int64 = meta["mtkPeriod"], let l: Int64 = meta["announceLead"] {
            grid = GridParameters(epoch: e, mtkPeriod: p, announceLead: l)
        }
        return KeyStoreSnapshot(revision: meta["revision"], keyDomainID: kd, grid: grid, highWater: meta["highWater"],
                                keyGroups: keyGroups, msks: msks)
    }

    private enum Prepared {
        case setKeyDomain(Data)
        case setGrid(GridParameters)
        case advanceHighWater(Int64)
        case addKeyGroup(KeyGroupRecord)
        case addMSK(MSKRecord, sealedMSK: Data?, sealedSeed: Data?)
        case setWindow(MSKID, Int64, Int64)
        case invalidate(MSKID, Int64)
        case purge(MSKID)
    }

    @discardableResult
    public func commit(_ changes: [KeyStoreChange], expectedRevision: Int64) throws -> Int64 {
        // Seal outside the write transaction.
        let prepared = try changes.map { c -> Prepared in
            switch c {
            case let .setKeyDomain(k): return .setKeyDomain(Data(k.bytes))
            case let .setGrid(g): return .setGrid(g)
            case let .advanceHighWater(t): return .advanceHighWater(t)
            case let .addKeyGroup(g): return .addKeyGroup(g)
            case let .addMSK(m):
                return .addMSK(m, sealedMSK: try m.msk.map { Data(try sealer.seal($0, context: context("msk", m.mskID))) },
                               sealedSeed: try m.seed.map { Data(try sealer.seal($0, context: context("seed", m.mskID))) })
            case let .setWindow(id, f, u): return .setWindow(id, f, u)
            case let .invalidate(id, t): return .invalidate(id, t)
            case let .purgeSecrets(id): return .purge(id)
            }
        }
        return try pool.write { db -> Int64 in
            let revision = try Int64.fetchOne(db, sql: "SELECT revision FROM meta WHERE id = 1") ?? -1
            guard revision == expectedRevision else { throw KeyStoreError.conflict(expected: expectedRevision, found: revision) }
            for p in prepared {
                switch p {
                case let .setKeyDomain(d):
                    let existing = try Data.fetchOne(db, sql: "SELECT keyDomainID FROM meta WHERE id = 1")
                    if let existing, existing != d { throw KeyStoreError.invalidChange("the Key Domain ID of a store cannot change") }
                    try db.execute(sql: "UPDATE meta SET keyDomainID = ? WHERE id = 1", arguments: [d])
                case let .setGrid(g):
                    let row = try Row.fetchOne(db, sql: "SELECT gridEpoch, mtkPeriod, announceLead FROM meta WHERE id = 1")
                    if let e: Int64 = row?["gridEpoch"], GridParameters(epoch: e, mtkPeriod: row?["mtkPeriod"] ?? 0,
                                                                        announceLead: row?["announceLead"] ?? 0) != g {
                        throw KeyStoreError.invalidChange("the time grid of a store cannot change")
                    }
                    try db.execute(sql: "UPDATE meta SET gridEpoch = ?, mtkPeriod = ?, announceLead = ? WHERE id = 1",
                                   arguments: [g.epoch, g.mtkPeriod, g.announceLead])
                case let .advanceHighWater(t):
                    try db.execute(sql: "UPDATE meta SET highWater = MAX(COALESCE(highWater, ?), ?) WHERE id = 1", arguments: [t, t])
                case let .addKeyGroup(g):
                    try db.execute(sql: "INSERT INTO keyGroup (keyGroup, mtkLength, createdAt) VALUES (?, ?, ?)",
                                   arguments: [Int64(g.keyGroup.rawValue), g.mtkLength, g.createdAt])
                case let .addMSK(m, sm, ss):
                    try db.execute(sql: """
                        INSERT INTO msk (keyGroup, keyNumber, validFrom, validUntil, seqL, seqU, createdAt, invalidatedAt, sealedMSK, rand, sealedSeed)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [Int64(m.mskID.keyGroup), Int64(m.mskID.keyNumber), m.validFrom, m.validUntil,
                                         Int64(m.keyValidity.seqL), Int64(m.keyValidity.seqU), m.createdAt, m.invalidatedAt,
                                         sm, Data(m.rand), ss])
                case let .setWindow(id, f, u):
                    try db.execute(sql: "UPDATE msk SET validFrom = ?, validUntil = ? WHERE keyGroup = ? AND keyNumber = ?",
                                   arguments: [f, u, Int64(id.keyGroup), Int64(id.keyNumber)])
                    guard db.changesCount == 1 else { throw KeyStoreError.invalidChange("no MSK \(id.hex)") }
                case let .invalidate(id, t):
                    try db.execute(sql: "UPDATE msk SET invalidatedAt = ? WHERE keyGroup = ? AND keyNumber = ?",
                                   arguments: [t, Int64(id.keyGroup), Int64(id.keyNumber)])
                case let .purge(id):
                    try db.execute(sql: "UPDATE msk SET sealedMSK = NULL, sealedSeed = NULL WHERE keyGroup = ? AND keyNumber = ?",
                                   arguments: [Int64(id.keyGroup), Int64(id.keyNumber)])
                    // A purged MSK's MTKs can never be derived again: their reservations can go.
                    try db.execute(sql: "DELETE FROM senderIndex WHERE keyGroup = ? AND keyNumber = ?",
                                   arguments: [Int64(id.keyGroup), Int64(id.keyNumber)])
                }
            }
            try db.execute(sql: "UPDATE meta SET revision = ? WHERE id = 1", arguments: [revision + 1])
            return revision + 1
        }
    }

    public func nextMSKMessageCounter(ueID: String) throws -> UInt32 {
        let v = try pool.write { db -> Int64 in
            try db.execute(sql: """
                INSERT INTO ueCounter (ueID, counter) VALUES (?, 1)
                ON CONFLICT (ueID) DO UPDATE SET counter = counter + 1
                """, arguments: [ueID])
            return try Int64.fetchOne(db, sql: "SELECT counter FROM ueCounter WHERE ueID = ?", arguments: [ueID]) ?? 0
        }
        // The transaction is committed (synchronous = FULL) before the value is returned.
        return UInt32(truncatingIfNeeded: v)
    }

    public func reserveSenderIndices(_ counter: SenderIndexCounter, count: UInt64, limit: UInt64) throws -> UInt64 {
        let key: [DatabaseValueConvertible] = [Int64(counter.mskID.keyGroup), Int64(counter.mskID.keyNumber),
                                               Int64(counter.mtkID.rawValue), Int64(counter.kind.rawValue)]
        return try pool.write { db -> UInt64 in
            let first = try Int64.fetchOne(db, sql: "SELECT next FROM senderIndex WHERE keyGroup = ? AND keyNumber = ? AND mtkID = ? AND kind = ?",
                                           arguments: StatementArguments(key)) ?? 0
            guard first >= 0, UInt64(first) <= limit, count <= limit - UInt64(first) else {
                throw KeyStoreError.senderIndicesExhausted("\(counter)")
            }
            try db.execute(sql: """
                INSERT INTO senderIndex (keyGroup, keyNumber, mtkID, kind, next) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (keyGroup, keyNumber, mtkID, kind) DO UPDATE SET next = excluded.next
                """, arguments: StatementArguments(key + [first + Int64(count)]))
            // Committed (synchronous = FULL) when `write` returns, before anyone uses the block.
            return UInt64(first)
        }
    }

    /// Every reserved sender-index counter and the next value no one holds (`keys show`, checks).
    public func senderIndexReservations() throws -> [SenderIndexCounter: UInt64] {
        let rows = try pool.read { db in try Row.fetchAll(db, sql: "SELECT keyGroup, keyNumber, mtkID, kind, next FROM senderIndex") }
        var out: [SenderIndexCounter: UInt64] = [:]
        for r in rows {
            let id = MSKID(keyGroup: UInt16(truncatingIfNeeded: r["keyGroup"] as Int64), keyNumber: UInt16(truncatingIfNeeded: r["keyNumber"] as Int64))
            let kind: SenderIndexCounter.Kind = (r["kind"] as Int64) == 0 ? .rtpROC : .srtcpIndex
            out[SenderIndexCounter(mskID: id, mtkID: MTKID(UInt16(truncatingIfNeeded: r["mtkID"] as Int64)), kind: kind)] = UInt64(r["next"] as Int64)
        }
        return out
    }

    public func mskMessageCounter(ueID: String) throws -> UInt32? {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT counter FROM ueCounter WHERE ueID = ?", arguments: [ueID]) }
            .map { UInt32(truncatingIfNeeded: $0) }
    }

    /// All UE counters (for consistency checks and `keys show`).
    public func allMSKMessageCounters() throws -> [String: Int64] {
        let rows = try pool.read { db in try Row.fetchAll(db, sql: "SELECT ueID, counter FROM ueCounter") }
        var out: [String: Int64] = [:]
        for r in rows { out[r["ueID"]] = r["counter"] }
        return out
    }

    /// `PRAGMA integrity_check` result ("ok" when sound).
    public func integrityCheck() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "no result" }
    }
}
