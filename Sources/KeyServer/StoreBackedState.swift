import CryptoCore
import Foundation
import KeyManagement
import MIKEY

// The key server on the key store (DESIGN.md §7, §11): registrations, grants, MUKs and nonce
// high-water marks live in the store, so a restart (or a second key server on a shared store)
// loses no registration and accepts no replayed nonce/nc; the embedded bootstrapping table is
// the default Zn answer.

/// `KeyServerState` over a `KeyServerStore`.
public final class StoreKeyServerState: KeyServerState, @unchecked Sendable {
    public let store: any KeyServerStore
    public let nonces: NonceManager.Configuration
    private let lock = NSLock()
    private var pendingDeliveries: [MSKDelivery] = []
    private var pendingInvalidations: [MSKInvalidation] = []
    /// When set, accepted pushes and invalidations go straight to the Key Distribution
    /// function's durable queue (`MSKDistributor.enqueue`) before the response is sent, so a
    /// UE that got its 200 has its MSK messages queued even if the process dies next; otherwise
    /// they wait in memory for `takePending`.
    public var deliver: (@Sendable ([MSKDelivery], [MSKInvalidation]) throws -> Void)?

    public init(store: any KeyServerStore, nonces: NonceManager.Configuration = .init()) {
        self.store = store
        self.nonces = nonces
    }

    static func seconds(_ d: Date) -> Int64 { Int64(d.timeIntervalSince1970.rounded(.down)) }
    static func date(_ s: Int64) -> Date { Date(timeIntervalSince1970: TimeInterval(s)) }

    public func registration(impi: String) throws -> UERegistration? {
        try store.registration(impi: impi).map {
            UERegistration(impi: $0.impi, btid: $0.btid, ueAddress: $0.ueAddress, serviceIDs: Set($0.serviceIDs), updatedAt: Self.date($0.updatedAt))
        }
    }

    public func grant(impu: String) throws -> AuthorizationGrant? {
        try store.grant(impu: impu).map {
            AuthorizationGrant(impu: $0.impu, serviceIDs: Set($0.serviceIDs), ueAddress: $0.ueAddress, scfAddress: $0.scfAddress,
                               grantedAt: Self.date($0.grantedAt))
        }
    }

    public func userKey(btid: String) throws -> UserKeyRecord? {
        guard let u = try store.userKey(btid: btid) else { return nil }
        guard let location = KeyManagementLocation(rawValue: u.location) else {
            throw KeyStoreError.corrupt("the MUK of \(btid) names no key management location (\(u.location))")
        }
        return UserKeyRecord(btid: u.btid, impi: u.impi, location: location, muk: u.muk, expiry: Self.date(u.expiresAt))
    }

    public func storeNonce(_ nonce: String, issuedAt: Date) throws {
        let t = Self.seconds(issuedAt)
        try store.storeNonce(nonce, issuedAt: t, purgeBefore: t - Int64(nonces.lifetime + nonces.staleMemory))
    }

    private func verdict(_ row: NonceRow?, nc: UInt32, now: Date) -> NonceVerdict {
        guard let row else { return .unknown }
        let age = now.timeIntervalSince1970 - TimeInterval(row.issuedAt)
        if age > nonces.lifetime + nonces.staleMemory { return .unknown }
        if age > nonces.lifetime || age < -60 { return .expired }
        if let h = row.highestNC, nc <= h { return .replayed(highestAccepted: h) }
        return .fresh
    }

    public func checkNonce(_ nonce: String, nc: UInt32, now: Date) throws -> NonceVerdict {
        verdict(try store.nonce(nonce), nc: nc, now: now)
    }

    /// Re-checks, then records nc in one conditional update (two key servers on one store
    /// cannot both accept the same nonce/nc).
    public func commitNonce(_ nonce: String, nc: UInt32, now: Date) throws -> NonceVerdict {
        let v = verdict(try store.nonce(nonce), nc: nc, now: now)
        guard v == .fresh else { return v }
        if try store.acceptNonce(nonce, nc: nc) { return .fresh }
        let again = verdict(try store.nonce(nonce), nc: nc, now: now)
        return again == .fresh ? .unknown : again
    }

    public func apply(_ effects: [KeyServerEffect]) throws {
        var changes: [KeyServerStoreChange] = []
        var deliveries: [MSKDelivery] = [], invalidations: [MSKInvalidation] = []
        for e in effects {
            switch e {
            case let .storeUserKey(u):
                changes.append(.putUserKey(UserKeyRow(btid: u.btid, impi: u.impi, location: u.location.rawValue, muk: u.muk,
                                                      expiresAt: Self.seconds(u.expiry))))
            case let .register(impi, btid, address, ids, at):
                changes.append(.register(impi: impi, btid: btid, ueAddress: address, serviceIDs: ids, at: Self.seconds(at)))
            case let .deregister(impi, ids):
                changes.append(.deregister(impi: impi, serviceIDs: ids))
            case let .storeGrant(g):
                changes.append(.putGrant(GrantRow(impu: g.impu, serviceIDs: Array(g.serviceIDs), ueAddress: g.ueAddress,
                                                  scfAddress: g.scfAddress, grantedAt: Self.seconds(g.grantedAt))))
            case let .deliverMSK(d): deliveries.append(d)
            case let .invalidateMSKs(v): invalidations.append(v)
            }
        }
        if !changes.isEmpty { try store.apply(changes) }
        if let deliver, !deliveries.isEmpty || !invalidations.isEmpty {
            try deliver(deliveries, invalidations)
            return
        }
        lock.lock()
        pendingDeliveries += deliveries
        pendingInvalidations += invalidations
        lock.unlock()
    }

    /// The MSK pushes and invalidations accepted requests asked for, handed over once: the
    /// Key Distribution function (MIKEY over UDP 2269) takes them from here.
    public func takePending() -> (deliveries: [MSKDelivery], invalidations: [MSKInvalidation]) {
        lock.lock(); defer { lock.unlock() }
        defer { pendingDeliveries.removeAll(); pendingInvalidations.removeAll() }
        return (pendingDeliveries, pendingInvalidations)
    }
}

/// The embedded bootstrapping table (`mbms-gateway ue add`) as the Zn answer: the NAF keys are
/// stored already derived for this BM-SC's NAF_Id, as a BSF would hand them out.
public struct StoreBootstrapping: Bootstrapping {
    public let store: any KeyServerStore

    public init(store: any KeyServerStore) { self.store = store }

    public func answer(btid: String, nafID: [UInt8]) throws(BootstrappingError) -> BootstrappingAnswer? {
        let record: BootstrapRecord?
        do { record = try store.bootstrap(btid: btid) } catch { throw .unavailable("\(error)") }
        guard let r = record else { return nil }
        let type: GBAType = r.gbaType == "u" ? .gbaU : .gbaME
        return BootstrappingAnswer(btid: r.btid, impi: r.impi, gbaType: type, ksNAF: r.ksNAF, ksIntNAF: r.ksIntNAF,
                                   keyExpiry: Date(timeIntervalSince1970: TimeInterval(r.expiresAt)))
    }
}

extension KeyServerConfiguration {
    /// The key server's view of the gateway configuration (`keyServer`, `userServices`).
    public init(gateway c: GatewayConfiguration) {
        let services = c.userServices.map { s -> UserServiceConfiguration in
            let admission: RegistrationAdmission
            switch s.admission {
            case .everyone: admission = .everyone
            case let .impiPatterns(p): admission = .impiPatterns(p)
            case .grantsOnly: admission = .grantsOnly
            }
            return UserServiceConfiguration(serviceID: s.serviceID,
                                            keyGroups: s.keyGroups.map { KeyGroupReference(keyDomainID: c.keyDomainID, keyGroup: $0.rawValue) },
                                            admission: admission, requiresUICCKeyManagement: s.requiresUICC)
        }
        self.init(bmscFQDN: c.bmscFQDN, services: services, scfPeers: Set(c.keyServer?.scfPeers ?? []))
    }

    /// Nonce settings from `keyServer.nonceLifetime`.
    public static func nonces(gateway c: GatewayConfiguration) -> NonceManager.Configuration {
        let lifetime = TimeInterval(c.keyServer?.nonceLifetime ?? 300)
        return NonceManager.Configuration(lifetime: lifetime, staleMemory: lifetime)
    }
}
