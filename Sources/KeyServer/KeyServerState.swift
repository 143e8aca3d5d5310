import CryptoCore
import Foundation
import MIKEY

/// A UE's registrations (TS 33.246 6.3.2.1), keyed by IMPI so that a re-bootstrapped UE (new
/// B-TID, same IMPI, 6.1) keeps them.
public struct UERegistration: Equatable, Sendable {
    public var impi: String
    /// The B-TID of the latest registration (names the MUK for MSK delivery).
    public var btid: String
    /// Source address of the latest registration request: where MSKs are pushed (6.3.1).
    public var ueAddress: String
    public var serviceIDs: Set<String>
    public var updatedAt: Date

    public init(impi: String, btid: String, ueAddress: String, serviceIDs: Set<String>, updatedAt: Date) {
        self.impi = impi; self.btid = btid; self.ueAddress = ueAddress; self.serviceIDs = serviceIDs; self.updatedAt = updatedAt
    }
}

/// An SCF authorization of an IMPU for service(s) (CR to TS 26.237, `keyserver.md` §5.5).
public struct AuthorizationGrant: Equatable, Sendable {
    public var impu: String
    public var serviceIDs: Set<String>
    /// UE address from the INVITE's Contact, canonical form.
    public var ueAddress: String
    public var scfAddress: String
    public var grantedAt: Date

    public init(impu: String, serviceIDs: Set<String>, ueAddress: String, scfAddress: String, grantedAt: Date) {
        self.impu = impu; self.serviceIDs = serviceIDs; self.ueAddress = ueAddress; self.scfAddress = scfAddress; self.grantedAt = grantedAt
    }
}

/// The MUK of a B-TID and where key management runs (K1 outcome cached per B-TID).
public struct UserKeyRecord: Sendable, Equatable, CustomStringConvertible {
    public var btid: String
    public var impi: String
    public var location: KeyManagementLocation
    public var muk: SecretBytes
    /// GBA key lifetime end (the MUK expires with it).
    public var expiry: Date

    public init(btid: String, impi: String, location: KeyManagementLocation, muk: SecretBytes, expiry: Date) {
        self.btid = btid; self.impi = impi; self.location = location; self.muk = muk; self.expiry = expiry
    }

    public static func == (a: UserKeyRecord, b: UserKeyRecord) -> Bool {
        a.btid == b.btid && a.impi == b.impi && a.location == b.location && a.expiry == b.expiry && a.muk.isEqual(to: b.muk)
    }

    public var description: String { "MUK of \(btid) (\(impi), \(location.rawValue), until \(expiry))" }
}

/// An MSK push to queue for the Key Distribution function (MIKEY over UDP 2269, `mikey.md`).
public struct MSKDelivery: Hashable, Sendable {
    public enum Reason: String, Sendable { case registration, mskRequest }
    public var impi: String
    /// Names the MUK (MIKEY IDr).
    public var btid: String
    public var ueAddress: String
    public var keyGroup: KeyGroupReference
    /// 0 = the current MSK of the key group (TS 33.246 6.3.2.2).
    public var keyNumber: UInt16
    public var reason: Reason

    public init(impi: String, btid: String, ueAddress: String, keyGroup: KeyGroupReference, keyNumber: UInt16, reason: Reason) {
        self.impi = impi; self.btid = btid; self.ueAddress = ueAddress; self.keyGroup = keyGroup; self.keyNumber = keyNumber; self.reason = reason
    }
}

/// After a deregistration: key groups the UE no longer needs; the BM-SC should push MSK
/// messages with SEQl > SEQu to invalidate them (TS 33.246 6.3.2.1B).
public struct MSKInvalidation: Hashable, Sendable {
    public var impi: String
    public var btid: String
    public var ueAddress: String
    public var keyGroups: Set<KeyGroupReference>
}

/// What a handled request changes; the front applies these (`KeyServerState.apply`) before it
/// sends the response.
public enum KeyServerEffect: Equatable, Sendable {
    /// Cache the MUK and K1 outcome of a B-TID.
    case storeUserKey(UserKeyRecord)
    /// Add services to the IMPI's registration, and set its B-TID and UE address.
    case register(impi: String, btid: String, ueAddress: String, serviceIDs: [String], at: Date)
    /// Remove services from the IMPI's registration (the registration goes when none remain).
    case deregister(impi: String, serviceIDs: [String])
    case storeGrant(AuthorizationGrant)
    case deliverMSK(MSKDelivery)
    case invalidateMSKs(MSKInvalidation)
}

/// The key server's state, as the request state machine needs it. Any method may throw (store
/// unavailable); the handler then answers 503 with Retry-After.
public protocol KeyServerState: AnyObject, Sendable {
    func registration(impi: String) throws -> UERegistration?
    func grant(impu: String) throws -> AuthorizationGrant?
    func userKey(btid: String) throws -> UserKeyRecord?
    /// Remembers a nonce we are about to send in a challenge.
    func storeNonce(_ nonce: String, issuedAt: Date) throws
    /// The nonce's verdict for `nc` without recording it.
    func checkNonce(_ nonce: String, nc: UInt32, now: Date) throws -> NonceVerdict
    /// Atomically re-checks and records `nc` as the nonce's high-water mark when fresh.
    func commitNonce(_ nonce: String, nc: UInt32, now: Date) throws -> NonceVerdict
    /// Applies the effects of one request atomically.
    func apply(_ effects: [KeyServerEffect]) throws
}

/// Reported by `InMemoryKeyServerState` while `failure` is set (tests of the 503 path).
public struct KeyServerStateUnavailable: Error, Equatable, Sendable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

/// `KeyServerState` in memory (tests; a single key server without persistence).
public final class InMemoryKeyServerState: KeyServerState, @unchecked Sendable {
    private let lock = NSLock()
    private var nonces: NonceManager
    private var _registrations: [String: UERegistration] = [:]
    private var _grants: [String: AuthorizationGrant] = [:]
    private var _userKeys: [String: UserKeyRecord] = [:]
    private var _deliveries: [MSKDelivery] = []
    private var _invalidations: [MSKInvalidation] = []
    private var _failure: KeyServerStateUnavailable?

    public init(nonces: NonceManager.Configuration = .init()) {
        self.nonces = NonceManager(configuration: nonces)
    }

    private func locked<T>(_ body: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        if let f = _failure { throw f }
        return try body()
    }

    /// While set, every call throws it.
    public var failure: KeyServerStateUnavailable? {
        get { lock.lock(); defer { lock.unlock() }; return _failure }
        set { lock.lock(); _failure = newValue; lock.unlock() }
    }

    public var registrations: [String: UERegistration] { lock.lock(); defer { lock.unlock() }; return _registrations }
    public var grants: [String: AuthorizationGrant] { lock.lock(); defer { lock.unlock() }; return _grants }
    /// Queued MSK pushes in order.
    public var deliveries: [MSKDelivery] { lock.lock(); defer { lock.unlock() }; return _deliveries }
    public var invalidations: [MSKInvalidation] { lock.lock(); defer { lock.unlock() }; return _invalidations }
    public var nonceCount: Int { lock.lock(); defer { lock.unlock() }; return nonces.count }

    public func registration(impi: String) throws -> UERegistration? { try locked { _registrations[impi] } }
    public func grant(impu: String) throws -> AuthorizationGrant? { try locked { _grants[impu] } }
    public func userKey(btid: String) throws -> UserKeyRecord? { try locked { _userKeys[btid] } }
    public func storeNonce(_ nonce: String, issuedAt: Date) throws { try locked { nonces.insert(nonce, issuedAt: issuedAt) } }
    public func checkNonce(_ nonce: String, nc: UInt32, now: Date) throws -> NonceVerdict { try locked { nonces.check(nonce, nc: nc, now: now) } }
    public func commitNonce(_ nonce: String, nc: UInt32, now: Date) throws -> NonceVerdict { try locked { nonces.commit(nonce, nc: nc, now: now) } }

    public func apply(_ effects: [KeyServerEffect]) throws {
        try locked {
            for effect in effects {
                switch effect {
                case let .storeUserKey(record):
                    _userKeys[record.btid] = record
                case let .register(impi, btid, address, ids, at):
                    var r = _registrations[impi] ?? UERegistration(impi: impi, btid: btid, ueAddress: address, serviceIDs: [], updatedAt: at)
                    r.btid = btid; r.ueAddress = address; r.updatedAt = at
                    r.serviceIDs.formUnion(ids)
                    _registrations[impi] = r
                case let .deregister(impi, ids):
                    guard var r = _registrations[impi] else { continue }
                    r.serviceIDs.subtract(ids)
                    _registrations[impi] = r.serviceIDs.isEmpty ? nil : r
                case let .storeGrant(g):
                    _grants[g.impu] = g
                case let .deliverMSK(d):
                    _deliveries.append(d)
                case let .invalidateMSKs(v):
                    _invalidations.append(v)
                }
            }
        }
    }
}
