import MIKEY
import CryptoCore
import Foundation

/// Glue for the CLI and the gateway: plans with `MSKLifecycle` on a fresh snapshot and
/// commits; re-plans when another writer got there first. Time is always a parameter.
public final class KeyManager: @unchecked Sendable {
    public let configuration: GatewayConfiguration
    public let store: any KeyStore
    public let random: any RandomSource
    public var lifecycle: MSKLifecycle { MSKLifecycle(configuration: configuration.schedule) }

    public init(configuration: GatewayConfiguration, store: any KeyStore, random: any RandomSource = SystemRandomSource()) {
        self.configuration = configuration
        self.store = store
        self.random = random
    }

    /// Opens (or with `create`, creates) the SQLite store named by the configuration.
    public static func openSQLite(configuration: GatewayConfiguration, environment: [String: String],
                                  create: Bool) throws -> KeyManager {
        let kek = try KeyEncryptionKey.load(environment: environment, configuredFile: configuration.keyStore.kekFile)
        let path = configuration.keyStore.path
        let store = create ? try SQLiteKeyStore.openOrCreate(path: path, kek: kek) : try SQLiteKeyStore.open(path: path, kek: kek)
        return KeyManager(configuration: configuration, store: store)
    }

    /// `openSQLite` with the process environment, for the CLI: afterwards `MBMS_KEK` is gone
    /// from the environment and its bytes from memory (`ProcessEnvironment.scrub`), whether the
    /// store opened or not, so child processes and /proc/<pid>/environ do not see it.
    public static func openSQLiteFromProcessEnvironment(configuration: GatewayConfiguration, create: Bool) throws -> KeyManager {
        defer { ProcessEnvironment.scrub(KeyEncryptionKey.environmentVariable) }
        return try openSQLite(configuration: configuration, environment: ProcessInfo.processInfo.environment, create: create)
    }

    private func plan(_ planner: (KeyStoreSnapshot) throws -> [KeyStoreChange]) throws -> KeyStoreSnapshot {
        var attempts = 0
        while true {
            let s = try store.snapshot()
            let changes = try planner(s)
            if changes.isEmpty { return s }
            do {
                try store.commit(changes, expectedRevision: s.revision)
                return try store.snapshot()
            } catch KeyStoreError.conflict where attempts < 5 {
                attempts += 1
            }
        }
    }

    /// `keys init`: idempotent.
    @discardableResult
    public func initialize(at t: Date) throws -> KeyStoreSnapshot {
        try plan { try lifecycle.initialization(snapshot: $0, gateway: configuration, at: unixSeconds(t), random: random) }
    }

    /// Current and next MSK for every key group; purge of retired MSKs.
    @discardableResult
    public func maintain(at t: Date) throws -> KeyStoreSnapshot {
        try plan { try lifecycle.maintenance(snapshot: $0, at: unixSeconds(t), random: random) }
    }

    /// `replay`: only the MSKs missing at t (current and next) are added; the high-water mark
    /// is not moved and nothing is retired or purged (`MSKLifecycle.extension`).
    @discardableResult
    public func extend(at t: Date) throws -> KeyStoreSnapshot {
        try plan { try lifecycle.extension(snapshot: $0, at: unixSeconds(t), random: random) }
    }

    /// `keys rotate`.
    @discardableResult
    public func rotate(keyGroup: KeyGroup, at t: Date, invalidateCurrent: Bool = false) throws -> KeyStoreSnapshot {
        try plan { try lifecycle.rotation(snapshot: $0, keyGroup: keyGroup, at: unixSeconds(t), invalidateCurrent: invalidateCurrent, random: random) }
    }

    /// The schedule on the store as it is now. A store made for another Key Domain is refused
    /// (its MSK IDs and MIKEY messages would name the wrong network; TS 33.246 6.3.1).
    public func schedule() throws -> KeySchedule {
        let snapshot = try store.snapshot()
        if let kd = snapshot.keyDomainID, kd != configuration.keyDomainID {
            throw LifecycleError.keyDomainMismatch(store: kd.hex, configuration: configuration.keyDomainID.hex)
        }
        return try KeySchedule(snapshot: snapshot, configuration: configuration.schedule)
    }

    /// The MIKEY MTK messages to send at t for a key group (`KeySchedule.transmissions`), as
    /// TEK+SALT for RTP sessions and TGK for FLUTE channels (TS 33.246 6.4.5.3).
    public func mtkMessages(keyGroup: KeyGroup, at t: Date, schedule: KeySchedule? = nil,
                            builder: any MTKMessageBuilding = MIKEYMTKMessageBuilder()) throws -> [[UInt8]] {
        guard let session = configuration.session(forKeyGroup: keyGroup) else { throw LifecycleError.keyGroupNotConfigured(keyGroup) }
        return try (schedule ?? self.schedule()).mtkMessages(keyGroup: keyGroup, at: t, download: session.kind == .flute, builder: builder)
    }

    /// `keys deliver`: the MIKEY MSK message a UE with this MUK and B-TID would receive for
    /// the MSK in use at t (or the next one). The per-UE counter is committed before the
    /// message is built (TS 33.246 6.4.3).
    public func mskMessage(keyGroup: KeyGroup, ueID: String, muk: SecretBytes, verify: Bool, next: Bool = false,
                           at t: Date, builder: any MSKMessageBuilding) throws -> [UInt8] {
        let schedule = try schedule()
        let m = next ? try schedule.nextMSK(keyGroup: keyGroup, at: t) : try schedule.msk(keyGroup: keyGroup, at: t)
        guard let key = m.msk else { throw ScheduleError.secretsPurged(m.mskID) }
        guard let session = configuration.session(forKeyGroup: keyGroup) else { throw LifecycleError.keyGroupNotConfigured(keyGroup) }
        let counter = try store.nextMSKMessageCounter(ueID: ueID)
        let csb = CSBID(try random.bytes(count: 4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        return try builder.buildMSKMessage(MSKMessageInput(
            keyDomainID: schedule.keyDomainID, mskID: m.mskID, csbID: csb, timestamp: counter, rand: m.rand,
            idi: configuration.bmscFQDN, idr: ueID, muk: muk, msk: key, keyValidity: m.keyValidity, verify: verify,
            policy: session.kind == .rtp ? session.protection : nil))
    }
}
