import CryptoCore
import Foundation

// The BM-SC Key Request function's durable state (TS 33.246 6.1, 6.3.2; DESIGN.md §7, §11):
// the embedded bootstrapping table (the Zn answers a BSF would give), the MUK of each B-TID,
// the UEs' registrations, SCF grants and the Digest nonces' nc high-water marks. Times are Unix
// seconds; secrets are sealed under the KEK and every row carries a MAC, like the MSK rows.

/// One bootstrapped UE as the BSF answers over Zn for this NAF (TS 33.220 4.5.3): the NAF keys
/// (already derived for this BM-SC's NAF_Id), the IMPI, the GBA type and the key lifetime.
public struct BootstrapRecord: Sendable, Equatable {
    public var btid: String
    public var impi: String
    /// "me" (GBA_ME) or "u" (GBA_U).
    public var gbaType: String
    /// Ks_NAF (GBA_ME) or Ks_ext_NAF (GBA_U).
    public var ksNAF: SecretBytes
    /// Ks_int_NAF (GBA_U only).
    public var ksIntNAF: SecretBytes?
    public var expiresAt: Int64
    public var createdAt: Int64

    public init(btid: String, impi: String, gbaType: String, ksNAF: SecretBytes, ksIntNAF: SecretBytes?, expiresAt: Int64, createdAt: Int64) {
        self.btid = btid; self.impi = impi; self.gbaType = gbaType; self.ksNAF = ksNAF; self.ksIntNAF = ksIntNAF
        self.expiresAt = expiresAt; self.createdAt = createdAt
    }

    public static func == (a: BootstrapRecord, b: BootstrapRecord) -> Bool {
        a.btid == b.btid && a.impi == b.impi && a.gbaType == b.gbaType && a.ksNAF.isEqual(to: b.ksNAF)
            && a.expiresAt == b.expiresAt && a.createdAt == b.createdAt
            && ((a.ksIntNAF == nil && b.ksIntNAF == nil) || (a.ksIntNAF.map { x in b.ksIntNAF.map { x.isEqual(to: $0) } ?? false } ?? false))
    }
}

/// The MUK of a B-TID (TS 33.246 6.1) and where MBMS key management runs ("me" or "uicc").
public struct UserKeyRow: Sendable {
    public var btid: String
    public var impi: String
    public var location: String
    public var muk: SecretBytes
    public var expiresAt: Int64
    public init(btid: String, impi: String, location: String, muk: SecretBytes, expiresAt: Int64) {
        self.btid = btid; self.impi = impi; self.location = location; self.muk = muk; self.expiresAt = expiresAt
    }
}

/// A UE's registration to user services (TS 33.246 6.3.2.1), keyed by IMPI.
public struct RegistrationRow: Sendable, Equatable {
    public var impi: String
    public var btid: String
    /// Where MSK messages go (the source address of the latest registration).
    public var ueAddress: String
    public var serviceIDs: [String]
    public var updatedAt: Int64
    public init(impi: String, btid: String, ueAddress: String, serviceIDs: [String], updatedAt: Int64) {
        self.impi = impi; self.btid = btid; self.ueAddress = ueAddress; self.serviceIDs = serviceIDs.sorted(); self.updatedAt = updatedAt
    }
}

/// An SCF's authorization of an IMPU for user services (IMS-based MBMS).
public struct GrantRow: Sendable, Equatable {
    public var impu: String
    public var serviceIDs: [String]
    public var ueAddress: String
    public var scfAddress: String
    public var grantedAt: Int64
    public init(impu: String, serviceIDs: [String], ueAddress: String, scfAddress: String, grantedAt: Int64) {
        self.impu = impu; self.serviceIDs = serviceIDs.sorted(); self.ueAddress = ueAddress; self.scfAddress = scfAddress; self.grantedAt = grantedAt
    }
}

/// A Digest nonce the key server issued, and the highest nc accepted with it (RFC 2617 3.2.2:
/// a replayed nonce/nc pair is refused).
public struct NonceRow: Sendable, Equatable {
    public var nonce: String
    public var issuedAt: Int64
    public var highestNC: UInt32?
    public init(nonce: String, issuedAt: Int64, highestNC: UInt32?) {
        self.nonce = nonce; self.issuedAt = issuedAt; self.highestNC = highestNC
    }
}

/// One change to the key server's state; `KeyServerStore.apply` applies a list atomically.
public enum KeyServerStoreChange: Sendable {
    case putBootstrap(BootstrapRecord)
    case removeBootstrap(btid: String)
    case putUserKey(UserKeyRow)
    /// Adds services to the IMPI's registration and sets its B-TID and UE address.
    case register(impi: String, btid: String, ueAddress: String, serviceIDs: [String], at: Int64)
    /// Removes services (the registration goes when none remain).
    case deregister(impi: String, serviceIDs: [String])
    case putGrant(GrantRow)
}

/// The key server's durable state (the SQLite store implements it; a shared PostgreSQL store
/// will too, so several key servers see the same registrations and nonces).
public protocol KeyServerStore: AnyObject, Sendable {
    func bootstrap(btid: String) throws -> BootstrapRecord?
    func bootstraps() throws -> [BootstrapRecord]
    func userKey(btid: String) throws -> UserKeyRow?
    func registration(impi: String) throws -> RegistrationRow?
    func registrations() throws -> [RegistrationRow]
    func grant(impu: String) throws -> GrantRow?
    /// Remembers an issued nonce; nonces issued before `purgeBefore` are forgotten.
    func storeNonce(_ nonce: String, issuedAt: Int64, purgeBefore: Int64) throws
    func nonce(_ nonce: String) throws -> NonceRow?
    /// Records `nc` as the nonce's highest if it is higher than any accepted before; false
    /// (nothing changed) for a replayed or older nc or an unknown nonce. Atomic.
    func acceptNonce(_ nonce: String, nc: UInt32) throws -> Bool
    /// Applies `changes` in one transaction (all or nothing).
    func apply(_ changes: [KeyServerStoreChange]) throws
}
