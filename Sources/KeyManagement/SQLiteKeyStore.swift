import MIKEY
import CryptoCore
import Foundation
import GRDB

/// The default `KeyStore`: one SQLite file through GRDB (WAL, `synchronous = FULL`,
/// migrations), created with mode 0600 (the -wal/-shm files inherit the database file's
/// mode from SQLite). MSKs and seeds are sealed with `SecretSealer` under the KEK.
///
/// Authenticated rows (migration v3): every MSK row, key-group row and the meta row carry an
/// HMAC (`SecretSealer.rowMAC`) over a canonical encoding of the whole row and the store's
/// random UUID (`StoreRowEncoding`); the sealed MSK and seed are bound by their context to the
/// store UUID, kind, MSK ID, SEQl/SEQu, creation time and RAND, and by the row MAC to the rest.
/// A row edited by hand or a blob copied from another store fails with `KeyStoreError.corrupt`
/// naming the file and the row. `secure_delete` is on, and a commit that purges secrets
/// checkpoints and truncates the WAL.
public final class SQLiteKeyStore: KeyStore, @unchecked Sendable {
    public let path: String
    let pool: DatabasePool
    let sealer: SecretSealer
    /// The store's random identity (16 bytes, `meta.storeID`), bound into every seal and row MAC.
    let storeID: [UInt8]
    static let v3 = "v3 authenticated rows"

    /// Opens an existing store. `KeyStoreError.notInitialized` when the file does not exist.
    public static func open(path: String, kek: SecretBytes) throws -> SQLiteKeyStore {
        try refuseSymbolicLink(path)
        guard FileManager.default.fileExists(atPath: path) else { throw KeyStoreError.notInitialized(path: path) }
        return try SQLiteKeyStore(path: path, kek: kek)
    }

    /// Opens the store, creating the file with mode 0600 first when it does not exist.
    public static func openOrCreate(path: String, kek: SecretBytes) throws -> SQLiteKeyStore {
        try refuseSymbolicLink(path)
        let fd = Foundation.open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd >= 0 {
            close(fd)
        } else if errno == ELOOP {
            try refuseSymbolicLink(path)
        } else if errno != EEXIST {
            throw KeyStoreError.io(path: path, reason: "cannot create the key store (\(String(cString: strerror(errno)))); fix: check that the directory exists and is writable")
        }
        return try SQLiteKeyStore(path: path, kek: kek)
    }

    /// SQLite follows symbolic links: a store path that is one is refused (whoever can
    /// repoint it chooses which file the gateway trusts).
    static func refuseSymbolicLink(_ path: String) throws {
        var st = stat()
        if lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFLNK {
            throw KeyStoreError.io(path: path, reason: "the key store path is a symbolic link; fix: point keyStore.path at the file itself")
        }
    }

    private init(path: String, kek: SecretBytes) throws {
        self.path = path
        try Self.refuseSymbolicLink(path)
        var st = stat()
        if lstat(path, &st) == 0, st.st_mode & 0o077 != 0 {
            throw KeyStoreError.io(path: path, reason: "the key store has mode \(String(st.st_mode & 0o777, radix: 8)), readable by others; fix: chmod 600 \(path)")
        }
        sealer = try SecretSealer(kek: kek)
        var config = Configuration()
        config.prepareDatabase { db in
            // Durable commits: a committed counter survives power loss, not only a crash.
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // Freed space (purged sealed secrets, re-sealed rows) is overwritten with zeros.
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        config.busyMode = .timeout(10)
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch {
            throw KeyStoreError.io(path: path, reason: "cannot open the key store as SQLite (\(error)); fix: point keyStore.path at a key store file")
        }
        let check = try sealer.checkValue()
        let migrator = Self.migrator(kekCheck: check, sealer: sealer, path: path)
        let applied = try pool.read { db in try migrator.appliedIdentifiers(db) }
        try migrator.migrate(pool)
        if !applied.isEmpty && !applied.contains(Self.v3) {
            // The legacy seals were overwritten (secure_delete); move that out of the WAL too.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        }
        let meta = try pool.read { db in try Row.fetchOne(db, sql: "SELECT kekCheck, storeID FROM meta WHERE id = 1") }
        guard let meta, let stored = Data.fromDatabaseValue(meta["kekCheck"]), [UInt8](stored) == check else {
            throw KeyStoreError.wrongKeyEncryptionKey(path: path)
        }
        guard let id = Data.fromDatabaseValue(meta["storeID"]), id.count == StoreRowEncoding.storeIDLength else {
            throw KeyStoreError.corrupt("\(path): the store UUID in meta is missing or malformed (edited outside mbms-gateway)")
        }
        storeID = [UInt8](id)
    }

    static func migrator(kekCheck: [UInt8], sealer: SecretSealer, path: String) -> DatabaseMigrator {
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
        m.registerMigration(v3) { db in
            // Issue 16 (4): a random store UUID; every row authenticated; seals re-made under
            // the new context (store UUID, kind, MSK ID, SEQl/SEQu, createdAt, RAND).
            guard let stored = try Data.fetchOne(db, sql: "SELECT kekCheck FROM meta WHERE id = 1"), [UInt8](stored) == kekCheck else {
                throw KeyStoreError.wrongKeyEncryptionKey(path: path)
            }
            try db.execute(sql: """
                ALTER TABLE meta ADD COLUMN storeID BLOB;
                ALTER TABLE meta ADD COLUMN metaMAC BLOB;
                ALTER TABLE keyGroup ADD COLUMN rowMAC BLOB;
                ALTER TABLE msk ADD COLUMN rowMAC BLOB;
                """)
            let storeID = try SecureRandom.bytes(count: StoreRowEncoding.storeIDLength)
            try db.execute(sql: "UPDATE meta SET storeID = ? WHERE id = 1", arguments: [Data(storeID)])
            for r in try Row.fetchAll(db, sql: "SELECT * FROM msk") {
                var row = try StoreRowEncoding.MSKRow(r, path: path)
                func reseal(_ sealed: [UInt8]?, _ kind: String) throws -> [UInt8]? {
                    guard let sealed else { return nil }
                    let secret: SecretBytes
                    do { secret = try sealer.open(sealed, context: "\(kind):\(row.id.hex)") } catch {
                        throw KeyStoreError.corrupt(StoreRowEncoding.failure(path: path, row: "MSK \(row.id.hex) (\(kind))"))
                    }
                    return try sealer.seal(secret, context: row.sealContext(kind, storeID: storeID))
                }
                row.sealedMSK = try reseal(row.sealedMSK, "msk")
                row.sealedSeed = try reseal(row.sealedSeed, "seed")
                try db.execute(sql: "UPDATE msk SET sealedMSK = ?, sealedSeed = ?, rowMAC = ? WHERE keyGroup = ? AND keyNumber = ?",
                               arguments: [row.sealedMSK.map { Data($0) }, row.sealedSeed.map { Data($0) },
                                           Data(try sealer.rowMAC(row.encoding(storeID: storeID))),
                                           Int64(row.id.keyGroup), Int64(row.id.keyNumber)])
            }
            for r in try Row.fetchAll(db, sql: "SELECT * FROM keyGroup") {
                let g = try StoreRowEncoding.KeyGroupRow(r, path: path)
                try db.execute(sql: "UPDATE keyGroup SET rowMAC = ? WHERE keyGroup = ?",
                               arguments: [Data(try sealer.rowMAC(g.encoding(storeID: storeID))), g.keyGroup])
            }
            try Self.refreshMetaMAC(db, sealer: sealer, storeID: storeID, path: path)
        }
        m.registerMigration("v4 counter row MACs") { db in
            // DESIGN.md §7: a counter edited down would hand out a MIKEY TS or a packet index
            // again; each counter row is authenticated like the MSK rows.
            try db.execute(sql: """
                ALTER TABLE senderIndex ADD COLUMN rowMAC BLOB;
                ALTER TABLE ueCounter ADD COLUMN rowMAC BLOB;
                """)
            guard let id = try Data.fetchOne(db, sql: "SELECT storeID FROM meta WHERE id = 1"), id.count == StoreRowEncoding.storeIDLength else {
                throw KeyStoreError.corrupt("\(path): the store UUID in meta is missing or malformed (edited outside mbms-gateway)")
            }
            let storeID = [UInt8](id)
            for r in try Row.fetchAll(db, sql: "SELECT keyGroup, keyNumber, mtkID, kind, next FROM senderIndex") {
                let key: [Int64] = [r["keyGroup"], r["keyNumber"], r["mtkID"], r["kind"]]
                try db.execute(sql: "UPDATE senderIndex SET rowMAC = ? WHERE keyGroup = ? AND keyNumber = ? AND mtkID = ? AND kind = ?",
                               arguments: StatementArguments([Data(try sealer.rowMAC(senderIndexEncoding(key, next: r["next"], storeID: storeID)))] + key))
            }
            for r in try Row.fetchAll(db, sql: "SELECT ueID, counter FROM ueCounter") {
                let ueID: String = r["ueID"]
                try db.execute(sql: "UPDATE ueCounter SET rowMAC = ? WHERE ueID = ?",
                               arguments: [Data(try sealer.rowMAC(ueCounterEncoding(ueID, counter: r["counter"], storeID: storeID))), ueID])
            }
        }
        registerKeyServerMigration(&m)
        registerDeliveryMigration(&m)
        return m
    }

    /// Canonical bytes of a `senderIndex` row: key group, key number, MTK ID, kind, next.
    static func senderIndexEncoding(_ key: [Int64], next: Int64, storeID: [UInt8]) -> [UInt8] {
        var e = StoreRowEncoding.Encoder("senderIndex", storeID: storeID)
        for k in key { e.int(k) }
        e.int(next)
        return e.bytes
    }

    /// Canonical bytes of a `ueCounter` row: the UE ID (UTF-8) and its counter.
    static func ueCounterEncoding(_ ueID: String, counter: Int64, storeID: [UInt8]) -> [UInt8] {
        var e = StoreRowEncoding.Encoder("ueCounter", storeID: storeID)
        e.blob(Array(ueID.utf8))
        e.int(counter)
        return e.bytes
    }

    // MARK: Row authentication

    func rowFailure(_ row: String) -> KeyStoreError { .corrupt(StoreRowEncoding.failure(path: path, row: row)) }

    /// Checks an MSK row's MAC (constant time); the decoded row when it holds.
    private func verifiedMSKRow(_ r: Row) throws -> StoreRowEncoding.MSKRow {
        let row = try StoreRowEncoding.MSKRow(r, path: path)
        guard let mac = Data.fromDatabaseValue(r["rowMAC"]),
              constantTimeEquals(try sealer.rowMAC(row.encoding(storeID: storeID)), [UInt8](mac)) else {
            throw rowFailure("MSK \(row.id.hex)")
        }
        return row
    }

    private func verifiedKeyGroupRow(_ r: Row) throws -> StoreRowEncoding.KeyGroupRow {
        let row = try StoreRowEncoding.KeyGroupRow(r, path: path)
        guard let mac = Data.fromDatabaseValue(r["rowMAC"]),
              constantTimeEquals(try sealer.rowMAC(row.encoding(storeID: storeID)), [UInt8](mac)) else {
            throw rowFailure("key group \(row.keyGroup)")
        }
        return row
    }

    private static func metaEncoding(_ r: Row, storeID: [UInt8], path: String) throws -> [UInt8] {
        guard let id = Data.fromDatabaseValue(r["storeID"]), [UInt8](id) == storeID else {
            throw KeyStoreError.corrupt(StoreRowEncoding.failure(path: path, row: "meta (store UUID)"))
        }
        var e = StoreRowEncoding.Encoder("meta", storeID: storeID)
        guard e.optionalBlob(r["keyDomainID"]) else { throw KeyStoreError.corrupt(StoreRowEncoding.failure(path: path, row: "meta (keyDomainID)")) }
        for c in ["gridEpoch", "mtkPeriod", "announceLead", "highWater"] {
            guard e.optionalInt(r[c]) else { throw KeyStoreError.corrupt(StoreRowEncoding.failure(path: path, row: "meta (\(c))")) }
        }
        return e.bytes
    }

    private static func refreshMetaMAC(_ db: Database, sealer: SecretSealer, storeID: [UInt8], path: String) throws {
        guard let r = try Row.fetchOne(db, sql: "SELECT * FROM meta WHERE id = 1") else { throw KeyStoreError.corrupt("\(path): meta row missing") }
        let mac = try sealer.rowMAC(try metaEncoding(r, storeID: storeID, path: path))
        try db.execute(sql: "UPDATE meta SET metaMAC = ? WHERE id = 1", arguments: [Data(mac)])
    }

    private func verifyMeta(_ r: Row) throws {
        let expected = try sealer.rowMAC(try Self.metaEncoding(r, storeID: storeID, path: path))
        guard let mac = Data.fromDatabaseValue(r["metaMAC"]), constantTimeEquals(expected, [UInt8](mac)) else {
            throw rowFailure("meta (Key Domain ID, time grid, high-water mark)")
        }
    }

    private func fetchMSKRow(_ db: Database, _ id: MSKID) throws -> Row? {
        try Row.fetchOne(db, sql: "SELECT * FROM msk WHERE keyGroup = ? AND keyNumber = ?", arguments: [Int64(id.keyGroup), Int64(id.keyNumber)])
    }

    private func refreshMSKRowMAC(_ db: Database, _ id: MSKID) throws {
        guard let r = try fetchMSKRow(db, id) else { return }
        let row = try StoreRowEncoding.MSKRow(r, path: path)
        try db.execute(sql: "UPDATE msk SET rowMAC = ? WHERE keyGroup = ? AND keyNumber = ?",
                       arguments: [Data(try sealer.rowMAC(row.encoding(storeID: storeID))), Int64(id.keyGroup), Int64(id.keyNumber)])
    }

    public func snapshot() throws -> KeyStoreSnapshot {
        let (meta, groups, rows) = try pool.read { db -> (Row?, [Row], [Row]) in
            (try Row.fetchOne(db, sql: "SELECT * FROM meta WHERE id = 1"),
             try Row.fetchAll(db, sql: "SELECT * FROM keyGroup ORDER BY keyGroup"),
             try Row.fetchAll(db, sql: "SELECT * FROM msk ORDER BY keyGroup, keyNumber"))
        }
        guard let meta else { throw KeyStoreError.corrupt("\(path): meta row missing") }
        try verifyMeta(meta)
        var kd: KeyDomainID? = nil
        if let d = Data.fromDatabaseValue(meta["keyDomainID"]) {
            guard let k = KeyDomainID(bytes: [UInt8](d)) else { throw KeyStoreError.corrupt("\(path): Key Domain ID is not a PLMN identity") }
            kd = k
        }
        let keyGroups = try groups.map { r -> KeyGroupRecord in
            let row = try verifiedKeyGroupRow(r)
            guard let g = KeyGroup(UInt16(truncatingIfNeeded: row.keyGroup)) else { throw rowFailure("key group 0") }
            return KeyGroupRecord(keyGroup: g, mtkLength: Int(row.mtkLength), createdAt: row.createdAt)
        }
        let msks = try rows.map { r -> MSKRecord in
            // Every row, purged or not: its window and invalidation matter as much as its keys.
            let row = try verifiedMSKRow(r)
            func unseal(_ sealed: [UInt8]?, _ kind: String) throws -> SecretBytes? {
                guard let sealed else { return nil }
                do { return try sealer.open(sealed, context: row.sealContext(kind, storeID: storeID)) } catch {
                    throw rowFailure("MSK \(row.id.hex) (\(kind))")
                }
            }
            return MSKRecord(mskID: row.id, validFrom: row.validFrom, validUntil: row.validUntil,
                             keyValidity: KeyValidity(seqL: UInt16(truncatingIfNeeded: row.seqL), seqU: UInt16(truncatingIfNeeded: row.seqU)),
                             createdAt: row.createdAt, invalidatedAt: row.invalidatedAt,
                             msk: try unseal(row.sealedMSK, "msk"), rand: row.rand, seed: try unseal(row.sealedSeed, "seed"))
        }
        var grid: GridParameters? = nil
        if let e = Int64.fromDatabaseValue(meta["gridEpoch"]), let p = Int64.fromDatabaseValue(meta["mtkPeriod"]),
           let l = Int64.fromDatabaseValue(meta["announceLead"]) {
            grid = GridParameters(epoch: e, mtkPeriod: p, announceLead: l)
        }
        guard let revision = Int64.fromDatabaseValue(meta["revision"]) else { throw KeyStoreError.corrupt("\(path): meta revision is not an integer") }
        return KeyStoreSnapshot(revision: revision, keyDomainID: kd, grid: grid, highWater: Int64.fromDatabaseValue(meta["highWater"]),
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
                let row = StoreRowEncoding.MSKRow(m)
                return .addMSK(m, sealedMSK: try m.msk.map { Data(try sealer.seal($0, context: row.sealContext("msk", storeID: storeID))) },
                               sealedSeed: try m.seed.map { Data(try sealer.seal($0, context: row.sealContext("seed", storeID: storeID))) })
            case let .setWindow(id, f, u): return .setWindow(id, f, u)
            case let .invalidate(id, t): return .invalidate(id, t)
            case let .purgeSecrets(id): return .purge(id)
            }
        }
        let newRevision = try pool.write { db -> Int64 in
            let revision = try Int64.fetchOne(db, sql: "SELECT revision FROM meta WHERE id = 1") ?? -1
            guard revision == expectedRevision else { throw KeyStoreError.conflict(expected: expectedRevision, found: revision) }
            // Never re-MAC (launder) a row edited by hand since the planner's snapshot.
            guard let meta = try Row.fetchOne(db, sql: "SELECT * FROM meta WHERE id = 1") else { throw KeyStoreError.corrupt("\(path): meta row missing") }
            try verifyMeta(meta)
            var touched: [MSKID] = []
            for p in prepared {
                switch p {
                case let .setWindow(id, _, _), let .invalidate(id, _), let .purge(id):
                    if let r = try fetchMSKRow(db, id) { _ = try verifiedMSKRow(r) }
                    touched.append(id)
                case let .addMSK(m, _, _): touched.append(m.mskID)
                default: break
                }
            }
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
                    let row = StoreRowEncoding.KeyGroupRow(keyGroup: Int64(g.keyGroup.rawValue), mtkLength: Int64(g.mtkLength), createdAt: g.createdAt)
                    try db.execute(sql: "INSERT INTO keyGroup (keyGroup, mtkLength, createdAt, rowMAC) VALUES (?, ?, ?, ?)",
                                   arguments: [row.keyGroup, row.mtkLength, row.createdAt, Data(try sealer.rowMAC(row.encoding(storeID: storeID)))])
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
            for id in touched { try refreshMSKRowMAC(db, id) }
            try Self.refreshMetaMAC(db, sealer: sealer, storeID: storeID, path: path)
            try db.execute(sql: "UPDATE meta SET revision = ? WHERE id = 1", arguments: [revision + 1])
            return revision + 1
        }
        if prepared.contains(where: { if case .purge = $0 { return true } else { return false } }) {
            // The purged cells were zeroed in the new page images (secure_delete); copy those
            // into the database file and truncate the WAL, whose older frames still hold the
            // sealed secrets. Best effort: the commit stands, and a reader still holding an
            // old snapshot only delays this to the next purge.
            _ = try? pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        }
        return newRevision
    }

    public func nextMSKMessageCounter(ueID: String) throws -> UInt32 {
        let v = try pool.write { db -> Int64 in
            var counter: Int64 = 1
            if let r = try Row.fetchOne(db, sql: "SELECT counter, rowMAC FROM ueCounter WHERE ueID = ?", arguments: [ueID]) {
                let stored = try verifiedCounter(r, "counter", mac: { Self.ueCounterEncoding(ueID, counter: $0, storeID: self.storeID) }, row: "MIKEY counter of UE \(ueID)")
                counter = stored + 1
            }
            try db.execute(sql: """
                INSERT INTO ueCounter (ueID, counter, rowMAC) VALUES (?, ?, ?)
                ON CONFLICT (ueID) DO UPDATE SET counter = excluded.counter, rowMAC = excluded.rowMAC
                """, arguments: [ueID, counter, Data(try sealer.rowMAC(Self.ueCounterEncoding(ueID, counter: counter, storeID: storeID)))])
            return counter
        }
        // The transaction is committed (synchronous = FULL) before the value is returned.
        return UInt32(truncatingIfNeeded: v)
    }

    /// A counter column whose row MAC holds (constant time), else the corrupt-store error naming the row.
    private func verifiedCounter(_ r: Row, _ column: String, mac encoding: (Int64) -> [UInt8], row: String) throws -> Int64 {
        guard case .int64(let value) = (r[column] as DatabaseValue).storage, value >= 0,
              let mac = Data.fromDatabaseValue(r["rowMAC"]),
              constantTimeEquals(try sealer.rowMAC(encoding(value)), [UInt8](mac)) else { throw rowFailure(row) }
        return value
    }

    public func reserveSenderIndices(_ counter: SenderIndexCounter, count: UInt64, limit: UInt64, atLeast: UInt64) throws -> UInt64 {
        let key: [DatabaseValueConvertible] = [Int64(counter.mskID.keyGroup), Int64(counter.mskID.keyNumber),
                                               Int64(counter.mtkID.rawValue), Int64(counter.kind.rawValue)]
        let keyValues = key.compactMap { $0 as? Int64 }
        return try pool.write { db -> UInt64 in
            var first: Int64 = 0
            if let r = try Row.fetchOne(db, sql: "SELECT next, rowMAC FROM senderIndex WHERE keyGroup = ? AND keyNumber = ? AND mtkID = ? AND kind = ?",
                                        arguments: StatementArguments(key)) {
                first = try verifiedCounter(r, "next", mac: { Self.senderIndexEncoding(keyValues, next: $0, storeID: self.storeID) },
                                            row: "\(counter)")
            }
            first = max(first, Int64(clamping: atLeast))
            guard UInt64(first) <= limit, count <= limit - UInt64(first) else {
                throw KeyStoreError.senderIndicesExhausted("\(counter)")
            }
            let next = first + Int64(count)
            try db.execute(sql: """
                INSERT INTO senderIndex (keyGroup, keyNumber, mtkID, kind, next, rowMAC) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (keyGroup, keyNumber, mtkID, kind) DO UPDATE SET next = excluded.next, rowMAC = excluded.rowMAC
                """, arguments: StatementArguments(key + [next, Data(try sealer.rowMAC(Self.senderIndexEncoding(keyValues, next: next, storeID: storeID)))]))
            // Committed (synchronous = FULL) when `write` returns, before anyone uses the block.
            return UInt64(first)
        }
    }

    /// Every reserved sender-index counter and the next value no one holds (`keys show`, checks).
    public func senderIndexReservations() throws -> [SenderIndexCounter: UInt64] {
        let rows = try pool.read { db in try Row.fetchAll(db, sql: "SELECT keyGroup, keyNumber, mtkID, kind, next, rowMAC FROM senderIndex") }
        var out: [SenderIndexCounter: UInt64] = [:]
        for r in rows {
            let key = ["keyGroup", "keyNumber", "mtkID", "kind"].compactMap { Int64.fromDatabaseValue(r[$0]) }
            guard key.count == 4, (0...1).contains(key[3]) else { throw rowFailure("sender index reservation") }
            let id = MSKID(keyGroup: UInt16(truncatingIfNeeded: key[0]), keyNumber: UInt16(truncatingIfNeeded: key[1]))
            let counter = SenderIndexCounter(mskID: id, mtkID: MTKID(UInt16(truncatingIfNeeded: key[2])), kind: key[3] == 0 ? .rtpROC : .srtcpIndex)
            out[counter] = UInt64(try verifiedCounter(r, "next", mac: { Self.senderIndexEncoding(key, next: $0, storeID: self.storeID) },
                                                      row: "\(counter)"))
        }
        return out
    }

    public func mskMessageCounter(ueID: String) throws -> UInt32? {
        guard let r = try pool.read({ db in try Row.fetchOne(db, sql: "SELECT counter, rowMAC FROM ueCounter WHERE ueID = ?", arguments: [ueID]) }) else {
            return nil
        }
        let v = try verifiedCounter(r, "counter", mac: { Self.ueCounterEncoding(ueID, counter: $0, storeID: self.storeID) },
                                    row: "MIKEY counter of UE \(ueID)")
        return UInt32(truncatingIfNeeded: v)
    }

    /// All UE counters (for consistency checks and `keys show`), each row's MAC checked.
    public func allMSKMessageCounters() throws -> [String: Int64] {
        let rows = try pool.read { db in try Row.fetchAll(db, sql: "SELECT ueID, counter, rowMAC FROM ueCounter") }
        var out: [String: Int64] = [:]
        for r in rows {
            guard let ueID = String.fromDatabaseValue(r["ueID"]) else { throw rowFailure("MIKEY counter (UE ID)") }
            out[ueID] = try verifiedCounter(r, "counter", mac: { Self.ueCounterEncoding(ueID, counter: $0, storeID: self.storeID) },
                                            row: "MIKEY counter of UE \(ueID)")
        }
        return out
    }

    /// `PRAGMA integrity_check` result ("ok" when sound).
    public func integrityCheck() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "no result" }
    }
}
