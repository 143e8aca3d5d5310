import CryptoCore
import Foundation
import GRDB

/// The key server's tables in the SQLite store (migration v5): bootstrapping table, MUKs,
/// registrations, SCF grants, Digest nonces. Secrets (Ks_NAF, Ks_int_NAF, MUK) are sealed under
/// the KEK with a context binding the row's identity; every row but the nonces carries a MAC
/// over its canonical encoding and the store UUID, so an edited row (a UE address redirected, a
/// lifetime extended) fails as a corrupt store naming the file and row.
extension SQLiteKeyStore: KeyServerStore {
    static let v5 = "v5 key server: bootstrapping, MUKs, registrations, grants, nonces"

    static func registerKeyServerMigration(_ m: inout DatabaseMigrator) {
        m.registerMigration(v5) { db in
            try db.execute(sql: """
                CREATE TABLE bootstrap (
                    btid TEXT PRIMARY KEY,
                    impi TEXT NOT NULL,
                    gbaType TEXT NOT NULL CHECK (gbaType IN ('me', 'u')),
                    sealedKsNAF BLOB NOT NULL,
                    sealedKsIntNAF BLOB,
                    expiresAt INTEGER NOT NULL,
                    createdAt INTEGER NOT NULL,
                    rowMAC BLOB NOT NULL
                );
                CREATE TABLE userKey (
                    btid TEXT PRIMARY KEY,
                    impi TEXT NOT NULL,
                    location TEXT NOT NULL,
                    sealedMUK BLOB NOT NULL,
                    expiresAt INTEGER NOT NULL,
                    rowMAC BLOB NOT NULL
                );
                CREATE TABLE registration (
                    impi TEXT PRIMARY KEY,
                    btid TEXT NOT NULL,
                    ueAddress TEXT NOT NULL,
                    serviceIDs TEXT NOT NULL,
                    updatedAt INTEGER NOT NULL,
                    rowMAC BLOB NOT NULL
                );
                CREATE TABLE scfGrant (
                    impu TEXT PRIMARY KEY,
                    serviceIDs TEXT NOT NULL,
                    ueAddress TEXT NOT NULL,
                    scfAddress TEXT NOT NULL,
                    grantedAt INTEGER NOT NULL,
                    rowMAC BLOB NOT NULL
                );
                CREATE TABLE nonce (
                    nonce TEXT PRIMARY KEY,
                    issuedAt INTEGER NOT NULL,
                    highestNC INTEGER
                );
                CREATE INDEX nonceIssuedAt ON nonce (issuedAt);
                """)
        }
    }

    // MARK: Canonical encodings (row MACs and seal contexts)

    private func encoder(_ label: String, _ strings: [String], _ ints: [Int64]) -> [UInt8] {
        var e = StoreRowEncoding.Encoder(label, storeID: storeID)
        for s in strings { e.blob(Array(s.utf8)) }
        for i in ints { e.int(i) }
        return e.bytes
    }

    private func sealContext(_ kind: String, _ fields: [String]) -> String {
        "v5:\(Hex.encode(storeID)):\(kind):" + fields.map { Hex.encode(Array($0.utf8)) }.joined(separator: ":")
    }

    /// Services as stored: sorted, one per line (service IDs are URIs: no line breaks).
    private static func joined(_ ids: [String]) -> String { ids.sorted().joined(separator: "\n") }
    private static func split(_ s: String) -> [String] { s.isEmpty ? [] : s.components(separatedBy: "\n") }

    private func bootstrapMAC(_ b: BootstrapRecord, sealedKsNAF: [UInt8], sealedKsIntNAF: [UInt8]?) throws -> [UInt8] {
        var e = StoreRowEncoding.Encoder("bootstrap", storeID: storeID)
        for s in [b.btid, b.impi, b.gbaType] { e.blob(Array(s.utf8)) }
        e.blob(sealedKsNAF)
        e.optionalBlob(sealedKsIntNAF)
        e.int(b.expiresAt)
        e.int(b.createdAt)
        return try sealer.rowMAC(e.bytes)
    }

    private func bootstrapContext(_ kind: String, _ b: BootstrapRecord) -> String {
        sealContext(kind, [b.btid, b.impi, b.gbaType, "\(b.expiresAt)", "\(b.createdAt)"])
    }

    private func userKeyContext(_ u: UserKeyRow) -> String { sealContext("muk", [u.btid, u.impi, u.location, "\(u.expiresAt)"]) }

    private func userKeyMAC(_ u: UserKeyRow, sealed: [UInt8]) throws -> [UInt8] {
        var e = StoreRowEncoding.Encoder("userKey", storeID: storeID)
        for s in [u.btid, u.impi, u.location] { e.blob(Array(s.utf8)) }
        e.blob(sealed)
        e.int(u.expiresAt)
        return try sealer.rowMAC(e.bytes)
    }

    private func registrationMAC(_ r: RegistrationRow) throws -> [UInt8] {
        try sealer.rowMAC(encoder("registration", [r.impi, r.btid, r.ueAddress, Self.joined(r.serviceIDs)], [r.updatedAt]))
    }

    private func grantMAC(_ g: GrantRow) throws -> [UInt8] {
        try sealer.rowMAC(encoder("grant", [g.impu, Self.joined(g.serviceIDs), g.ueAddress, g.scfAddress], [g.grantedAt]))
    }

    private func checkMAC(_ r: Row, _ expected: [UInt8], row: String) throws {
        guard let mac = Data.fromDatabaseValue(r["rowMAC"]), constantTimeEquals(expected, [UInt8](mac)) else { throw rowFailure(row) }
    }

    private func text(_ r: Row, _ column: String, row: String) throws -> String {
        guard let s = String.fromDatabaseValue(r[column]) else { throw rowFailure(row) }
        return s
    }

    private func integer(_ r: Row, _ column: String, row: String) throws -> Int64 {
        guard let i = Int64.fromDatabaseValue(r[column]) else { throw rowFailure(row) }
        return i
    }

    private func blob(_ r: Row, _ column: String, row: String) throws -> [UInt8]? {
        let v: DatabaseValue = r[column]
        if v.isNull { return nil }
        guard let d = Data.fromDatabaseValue(v) else { throw rowFailure(row) }
        return [UInt8](d)
    }

    // MARK: Reads

    private func decodeBootstrap(_ r: Row) throws -> BootstrapRecord {
        let name = "bootstrap of B-TID \(String.fromDatabaseValue(r["btid"]) ?? "?")"
        guard let sealedNAF = try blob(r, "sealedKsNAF", row: name) else { throw rowFailure(name) }
        let sealedInt = try blob(r, "sealedKsIntNAF", row: name)
        var b = BootstrapRecord(btid: try text(r, "btid", row: name), impi: try text(r, "impi", row: name), gbaType: try text(r, "gbaType", row: name),
                                ksNAF: SecretBytes([]), ksIntNAF: nil,
                                expiresAt: try integer(r, "expiresAt", row: name), createdAt: try integer(r, "createdAt", row: name))
        try checkMAC(r, try bootstrapMAC(b, sealedKsNAF: sealedNAF, sealedKsIntNAF: sealedInt), row: name)
        do {
            b.ksNAF = try sealer.open(sealedNAF, context: bootstrapContext("ksNAF", b))
            b.ksIntNAF = try sealedInt.map { try sealer.open($0, context: bootstrapContext("ksIntNAF", b)) }
        } catch { throw rowFailure(name) }
        return b
    }

    public func bootstrap(btid: String) throws -> BootstrapRecord? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM bootstrap WHERE btid = ?", arguments: [btid]) }.map(decodeBootstrap)
    }

    public func bootstraps() throws -> [BootstrapRecord] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM bootstrap ORDER BY btid") }.map(decodeBootstrap)
    }

    public func userKey(btid: String) throws -> UserKeyRow? {
        guard let r = try pool.read({ db in try Row.fetchOne(db, sql: "SELECT * FROM userKey WHERE btid = ?", arguments: [btid]) }) else { return nil }
        let name = "MUK of B-TID \(btid)"
        guard let sealed = try blob(r, "sealedMUK", row: name) else { throw rowFailure(name) }
        var u = UserKeyRow(btid: try text(r, "btid", row: name), impi: try text(r, "impi", row: name), location: try text(r, "location", row: name),
                           muk: SecretBytes([]), expiresAt: try integer(r, "expiresAt", row: name))
        try checkMAC(r, try userKeyMAC(u, sealed: sealed), row: name)
        do { u.muk = try sealer.open(sealed, context: userKeyContext(u)) } catch { throw rowFailure(name) }
        return u
    }

    private func decodeRegistration(_ r: Row) throws -> RegistrationRow {
        let name = "registration of IMPI \(String.fromDatabaseValue(r["impi"]) ?? "?")"
        let row = RegistrationRow(impi: try text(r, "impi", row: name), btid: try text(r, "btid", row: name),
                                  ueAddress: try text(r, "ueAddress", row: name), serviceIDs: Self.split(try text(r, "serviceIDs", row: name)),
                                  updatedAt: try integer(r, "updatedAt", row: name))
        try checkMAC(r, try registrationMAC(row), row: name)
        return row
    }

    public func registration(impi: String) throws -> RegistrationRow? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM registration WHERE impi = ?", arguments: [impi]) }.map(decodeRegistration)
    }

    public func registrations() throws -> [RegistrationRow] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM registration ORDER BY impi") }.map(decodeRegistration)
    }

    public func grant(impu: String) throws -> GrantRow? {
        guard let r = try pool.read({ db in try Row.fetchOne(db, sql: "SELECT * FROM scfGrant WHERE impu = ?", arguments: [impu]) }) else { return nil }
        let name = "grant of IMPU \(impu)"
        let g = GrantRow(impu: try text(r, "impu", row: name), serviceIDs: Self.split(try text(r, "serviceIDs", row: name)),
                         ueAddress: try text(r, "ueAddress", row: name), scfAddress: try text(r, "scfAddress", row: name),
                         grantedAt: try integer(r, "grantedAt", row: name))
        try checkMAC(r, try grantMAC(g), row: name)
        return g
    }

    // MARK: Nonces

    public func storeNonce(_ nonce: String, issuedAt: Int64, purgeBefore: Int64) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM nonce WHERE issuedAt < ?", arguments: [purgeBefore])
            try db.execute(sql: "INSERT OR IGNORE INTO nonce (nonce, issuedAt, highestNC) VALUES (?, ?, NULL)", arguments: [nonce, issuedAt])
        }
    }

    public func nonce(_ nonce: String) throws -> NonceRow? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT issuedAt, highestNC FROM nonce WHERE nonce = ?", arguments: [nonce]) }
            .map { r in
                NonceRow(nonce: nonce, issuedAt: Int64.fromDatabaseValue(r["issuedAt"]) ?? 0,
                         highestNC: Int64.fromDatabaseValue(r["highestNC"]).map { UInt32(clamping: $0) })
            }
    }

    public func acceptNonce(_ nonce: String, nc: UInt32) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: "UPDATE nonce SET highestNC = ? WHERE nonce = ? AND (highestNC IS NULL OR highestNC < ?)",
                           arguments: [Int64(nc), nonce, Int64(nc)])
            return db.changesCount == 1
        }
    }

    // MARK: Changes

    public func apply(_ changes: [KeyServerStoreChange]) throws {
        try pool.write { db in
            for change in changes {
                switch change {
                case let .putBootstrap(b):
                    let sealedNAF = try sealer.seal(b.ksNAF, context: bootstrapContext("ksNAF", b))
                    let sealedInt = try b.ksIntNAF.map { try sealer.seal($0, context: bootstrapContext("ksIntNAF", b)) }
                    try db.execute(sql: """
                        INSERT INTO bootstrap (btid, impi, gbaType, sealedKsNAF, sealedKsIntNAF, expiresAt, createdAt, rowMAC)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (btid) DO UPDATE SET impi = excluded.impi, gbaType = excluded.gbaType, sealedKsNAF = excluded.sealedKsNAF,
                            sealedKsIntNAF = excluded.sealedKsIntNAF, expiresAt = excluded.expiresAt, createdAt = excluded.createdAt, rowMAC = excluded.rowMAC
                        """, arguments: [b.btid, b.impi, b.gbaType, Data(sealedNAF), sealedInt.map { Data($0) }, b.expiresAt, b.createdAt,
                                         Data(try bootstrapMAC(b, sealedKsNAF: sealedNAF, sealedKsIntNAF: sealedInt))])
                case let .removeBootstrap(btid):
                    try db.execute(sql: "DELETE FROM bootstrap WHERE btid = ?", arguments: [btid])
                    try db.execute(sql: "DELETE FROM userKey WHERE btid = ?", arguments: [btid])
                case let .putUserKey(u):
                    let sealed = try sealer.seal(u.muk, context: userKeyContext(u))
                    try db.execute(sql: """
                        INSERT INTO userKey (btid, impi, location, sealedMUK, expiresAt, rowMAC) VALUES (?, ?, ?, ?, ?, ?)
                        ON CONFLICT (btid) DO UPDATE SET impi = excluded.impi, location = excluded.location, sealedMUK = excluded.sealedMUK,
                            expiresAt = excluded.expiresAt, rowMAC = excluded.rowMAC
                        """, arguments: [u.btid, u.impi, u.location, Data(sealed), u.expiresAt, Data(try userKeyMAC(u, sealed: sealed))])
                case let .register(impi, btid, address, ids, at):
                    var services = Set(ids)
                    if let r = try Row.fetchOne(db, sql: "SELECT * FROM registration WHERE impi = ?", arguments: [impi]) {
                        services.formUnion(try decodeRegistration(r).serviceIDs)
                    }
                    try putRegistration(db, RegistrationRow(impi: impi, btid: btid, ueAddress: address, serviceIDs: Array(services), updatedAt: at))
                case let .deregister(impi, ids):
                    guard let r = try Row.fetchOne(db, sql: "SELECT * FROM registration WHERE impi = ?", arguments: [impi]) else { continue }
                    var row = try decodeRegistration(r)
                    row.serviceIDs.removeAll { ids.contains($0) }
                    if row.serviceIDs.isEmpty {
                        try db.execute(sql: "DELETE FROM registration WHERE impi = ?", arguments: [impi])
                    } else {
                        try putRegistration(db, row)
                    }
                case let .putGrant(g):
                    try db.execute(sql: """
                        INSERT INTO scfGrant (impu, serviceIDs, ueAddress, scfAddress, grantedAt, rowMAC) VALUES (?, ?, ?, ?, ?, ?)
                        ON CONFLICT (impu) DO UPDATE SET serviceIDs = excluded.serviceIDs, ueAddress = excluded.ueAddress,
                            scfAddress = excluded.scfAddress, grantedAt = excluded.grantedAt, rowMAC = excluded.rowMAC
                        """, arguments: [g.impu, Self.joined(g.serviceIDs), g.ueAddress, g.scfAddress, g.grantedAt, Data(try grantMAC(g))])
                }
            }
        }
    }

    private func putRegistration(_ db: Database, _ r: RegistrationRow) throws {
        try db.execute(sql: """
            INSERT INTO registration (impi, btid, ueAddress, serviceIDs, updatedAt, rowMAC) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (impi) DO UPDATE SET btid = excluded.btid, ueAddress = excluded.ueAddress, serviceIDs = excluded.serviceIDs,
                updatedAt = excluded.updatedAt, rowMAC = excluded.rowMAC
            """, arguments: [r.impi, r.btid, r.ueAddress, Self.joined(r.serviceIDs), r.updatedAt, Data(try registrationMAC(r))])
    }
}
