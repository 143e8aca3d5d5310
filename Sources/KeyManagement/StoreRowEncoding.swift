import MIKEY
import CryptoCore
import Foundation
import GRDB

/// Canonical bytes of the key store's rows, for the row MACs and seal contexts of
/// `SQLiteKeyStore` (issue 16, part 4).
///
/// Encoding: a label and 0x00, the 16-byte store UUID, then each field in a fixed order:
/// integers as 8 bytes big-endian; NULL-able values behind a 0x00 (NULL) / 0x01 (present)
/// marker; blobs as a 4-byte big-endian length and the bytes. Every field has a fixed width or
/// a length, so two different rows never encode alike.
enum StoreRowEncoding {
    static let storeIDLength = 16

    /// The corrupt-store message: names the file and the row, says what happened.
    static func failure(path: String, row: String) -> String {
        "\(path): \(row) row fails authentication (edited outside mbms-gateway, or copied from another store); fix: restore the store from a backup"
    }

    struct Encoder {
        private(set) var bytes: [UInt8]
        init(_ label: String, storeID: [UInt8]) {
            bytes = Array("mbms-gateway key store \(label) v3".utf8) + [0] + storeID
        }
        mutating func int(_ v: Int64) { bytes += withUnsafeBytes(of: v.bigEndian, Array.init) }
        mutating func optionalInt(_ v: Int64?) {
            if let v { bytes.append(1); int(v) } else { bytes.append(0) }
        }
        mutating func blob(_ b: [UInt8]) {
            bytes += withUnsafeBytes(of: UInt32(truncatingIfNeeded: b.count).bigEndian, Array.init) + b
        }
        mutating func optionalBlob(_ b: [UInt8]?) {
            if let b { bytes.append(1); blob(b) } else { bytes.append(0) }
        }
        /// A NULL-able integer column as stored; false when it holds something else.
        mutating func optionalInt(_ v: DatabaseValue) -> Bool {
            if v.isNull { optionalInt(nil as Int64?); return true }
            guard case .int64(let i) = v.storage else { return false }
            optionalInt(i)
            return true
        }
        /// A NULL-able blob column as stored; false when it holds something else.
        mutating func optionalBlob(_ v: DatabaseValue) -> Bool {
            if v.isNull { optionalBlob(nil as [UInt8]?); return true }
            guard case .blob(let d) = v.storage else { return false }
            optionalBlob([UInt8](d))
            return true
        }
    }

    /// One `msk` row, read strictly: a column of the wrong type is a corrupt row, never a crash.
    struct MSKRow {
        var id: MSKID
        var validFrom: Int64, validUntil: Int64
        var seqL: Int64, seqU: Int64
        var createdAt: Int64
        var invalidatedAt: Int64?
        var rand: [UInt8]
        var sealedMSK: [UInt8]?
        var sealedSeed: [UInt8]?

        init(_ m: MSKRecord) {
            id = m.mskID
            validFrom = m.validFrom
            validUntil = m.validUntil
            seqL = Int64(m.keyValidity.seqL)
            seqU = Int64(m.keyValidity.seqU)
            createdAt = m.createdAt
            invalidatedAt = m.invalidatedAt
            rand = m.rand
        }

        init(_ r: Row, path: String) throws {
            let keyGroup = Int64.fromDatabaseValue(r["keyGroup"]), keyNumber = Int64.fromDatabaseValue(r["keyNumber"])
            guard let keyGroup, let keyNumber, (1...0xFFFF).contains(keyGroup), (1...0xFFFF).contains(keyNumber) else {
                throw KeyStoreError.corrupt(failure(path: path, row: "MSK (key group \(keyGroup.map(String.init) ?? "?"), key number \(keyNumber.map(String.init) ?? "?"))"))
            }
            id = MSKID(keyGroup: UInt16(keyGroup), keyNumber: UInt16(keyNumber))
            let name = "MSK \(id.hex)"
            func int(_ c: String) throws -> Int64 {
                guard let v = Int64.fromDatabaseValue(r[c]), case .int64 = (r[c] as DatabaseValue).storage else {
                    throw KeyStoreError.corrupt(failure(path: path, row: "\(name) (\(c))"))
                }
                return v
            }
            func optionalBlob(_ c: String) throws -> [UInt8]? {
                let v: DatabaseValue = r[c]
                if v.isNull { return nil }
                guard case .blob(let d) = v.storage else { throw KeyStoreError.corrupt(failure(path: path, row: "\(name) (\(c))")) }
                return [UInt8](d)
            }
            validFrom = try int("validFrom")
            validUntil = try int("validUntil")
            seqL = try int("seqL")
            seqU = try int("seqU")
            createdAt = try int("createdAt")
            let inv: DatabaseValue = r["invalidatedAt"]
            invalidatedAt = inv.isNull ? nil : try int("invalidatedAt")
            guard let rand = try optionalBlob("rand") else { throw KeyStoreError.corrupt(failure(path: path, row: "\(name) (rand)")) }
            self.rand = rand
            sealedMSK = try optionalBlob("sealedMSK")
            sealedSeed = try optionalBlob("sealedSeed")
            guard (0...Int64(UInt16.max)).contains(seqL), (0...Int64(UInt16.max)).contains(seqU) else {
                throw KeyStoreError.corrupt(failure(path: path, row: "\(name) (SEQl/SEQu)"))
            }
        }

        /// The whole row (sealed blobs included), for the row MAC.
        func encoding(storeID: [UInt8]) -> [UInt8] {
            var e = Encoder("msk row", storeID: storeID)
            e.int(Int64(id.keyGroup)); e.int(Int64(id.keyNumber))
            e.int(validFrom); e.int(validUntil)
            e.int(seqL); e.int(seqU)
            e.int(createdAt)
            e.optionalInt(invalidatedAt)
            e.blob(rand)
            e.optionalBlob(sealedMSK)
            e.optionalBlob(sealedSeed)
            return e.bytes
        }

        /// The seal context of the MSK or seed: the fields of the row that never change after
        /// it is written (the window and invalidation change by rotation: the row MAC covers
        /// those, and the sealed blobs with them).
        func sealContext(_ kind: String, storeID: [UInt8]) -> String {
            "v3:\(Hex.encode(storeID)):\(kind):\(id.hex):\(seqL):\(seqU):\(createdAt):\(Hex.encode(rand))"
        }
    }

    struct KeyGroupRow {
        var keyGroup: Int64, mtkLength: Int64, createdAt: Int64

        init(keyGroup: Int64, mtkLength: Int64, createdAt: Int64) {
            self.keyGroup = keyGroup
            self.mtkLength = mtkLength
            self.createdAt = createdAt
        }

        init(_ r: Row, path: String) throws {
            let g = Int64.fromDatabaseValue(r["keyGroup"])
            let name = "key group \(g.map(String.init) ?? "?")"
            func int(_ c: String) throws -> Int64 {
                guard let v = Int64.fromDatabaseValue(r[c]), case .int64 = (r[c] as DatabaseValue).storage else {
                    throw KeyStoreError.corrupt(failure(path: path, row: "\(name) (\(c))"))
                }
                return v
            }
            keyGroup = try int("keyGroup")
            mtkLength = try int("mtkLength")
            createdAt = try int("createdAt")
        }

        func encoding(storeID: [UInt8]) -> [UInt8] {
            var e = Encoder("key group row", storeID: storeID)
            e.int(keyGroup); e.int(mtkLength); e.int(createdAt)
            return e.bytes
        }
    }
}
