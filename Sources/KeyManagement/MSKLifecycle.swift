import MIKEY
import CryptoCore

/// Where fresh key material comes from (a parameter, so tests can be deterministic).
public protocol RandomSource: Sendable {
    func bytes(count: Int) throws -> [UInt8]
}

/// The CSPRNG.
public struct SystemRandomSource: RandomSource {
    public init() {}
    public func bytes(count: Int) throws -> [UInt8] { try SecureRandom.bytes(count: count) }
}

public enum LifecycleError: Error, Equatable, Sendable, CustomStringConvertible {
    case keyDomainMismatch(store: String, configuration: String)
    case keyGroupNotConfigured(KeyGroup)
    case keyLengthMismatch(KeyGroup, store: Int, configuration: Int)
    case keyNumbersExhausted(KeyGroup)
    case notInitialized
    case clockBehindStore(KeyGroup, t: Int64, firstMSKAt: Int64)
    case clockBehindHighWater(t: Int64, highWater: Int64)
    case gridMismatch(store: GridParameters, configuration: GridParameters)

    public var description: String {
        switch self {
        case let .keyDomainMismatch(s, c):
            return "the key store belongs to Key Domain \(s) but the configuration says \(c); fix: use the store made for this key domain, or a new keyStore.path"
        case let .keyGroupNotConfigured(g):
            return "key group \(g) is not in the configuration; fix: add a session with keyGroup: \(g)"
        case let .keyLengthMismatch(g, s, c):
            return "key group \(g) has \(s)-octet MTKs in the store but its session's cipher needs \(c); fix: keep the cipher, or use a new key group for the new cipher"
        case let .keyNumbersExhausted(g):
            return "key group \(g) has used all 65535 Key Numbers; fix: move the session to a new key group"
        case .notInitialized:
            return "the key store is not initialised; run `mbms-gateway keys init --config FILE`"
        case let .clockBehindStore(g, t, first):
            return "key group \(g): no MSK covers t = \(t) but one starts at \(first); fix: check this host's clock (NTP) against the gateway that wrote the store"
        case let .clockBehindHighWater(t, h):
            return "t = \(t) is before the MTK period starting at \(h) that this store has already served (an MTK ID or TS could repeat); fix: check this host's clock (NTP)"
        case let .gridMismatch(s, c):
            return "the key store's time grid is \(s) but the configuration says \(c); fix: set schedule.epoch, schedule.mtk.period and schedule.mtk.announceLead as the store has them (every gateway sharing a store must agree), or use a new keyStore.path"
        }
    }
}

/// The MSK lifecycle per key group (TS 33.246 6.3.2, 6.5.4; `DESIGN.md` §6), as a planner:
/// it reads a snapshot and t and returns the store changes to commit. No I/O, no clock.
///
/// Rules:
/// * there is always a current MSK (covering t) and a next one (starting where the current
///   one ends), so the next MSK exists a whole MSK period before it is used;
/// * a new MSK starts on a grid boundary and lasts `msk.period`, or fewer MTK periods when
///   its MTK IDs would pass 0xFFFE (SEQu exhaustion forces the rollover);
/// * Key Numbers increase by one per MSK (never 0, the "current MSK" value);
/// * SEQl = first MTK ID − 1 = 0 and SEQu = SEQl + (number of MTK periods in the window),
///   so the key validity covers exactly the MTK IDs the MSK will use;
/// * `rotation` moves the switch to the first boundary at least `announceLead` ahead (so the
///   first MTK of the next MSK can still be announced); `invalidate` additionally marks the
///   current MSK invalidated so it is purged as soon as its window ends;
/// * MSKs whose window ended at least one MTK period ago are purged (secrets deleted).
public struct MSKLifecycle: Sendable {
    public let configuration: ScheduleConfiguration
    public static let firstMTKID: UInt16 = 1
    public static let randLength = 16
    public static let seedLength = 32

    public init(configuration: ScheduleConfiguration) { self.configuration = configuration }

    var grid: TimeGrid { TimeGrid(epoch: configuration.epoch, period: configuration.mtkPeriod) }

    /// `keys init`: Key Domain ID, key groups of the configured sessions, then maintenance.
    /// Idempotent: a second run on the same snapshot and t returns no changes.
    public func initialization(snapshot: KeyStoreSnapshot, gateway: GatewayConfiguration, at t: Int64,
                               random: any RandomSource) throws -> [KeyStoreChange] {
        var model = Model(snapshot)
        if let kd = snapshot.keyDomainID {
            guard kd == gateway.keyDomainID else {
                throw LifecycleError.keyDomainMismatch(store: kd.hex, configuration: gateway.keyDomainID.hex)
            }
        } else {
            model.changes.append(.setKeyDomain(gateway.keyDomainID))
            model.keyDomainID = gateway.keyDomainID
        }
        if let grid = snapshot.grid {
            guard grid == GridParameters(configuration) else {
                throw LifecycleError.gridMismatch(store: grid, configuration: GridParameters(configuration))
            }
        } else {
            model.changes.append(.setGrid(GridParameters(configuration)))
        }
        for s in gateway.sessions {
            let length = max(16, s.protection.cipher.keyLength)
            if let g = snapshot.keyGroup(s.keyGroup) {
                guard g.mtkLength == length else {
                    throw LifecycleError.keyLengthMismatch(s.keyGroup, store: g.mtkLength, configuration: length)
                }
            } else {
                let r = KeyGroupRecord(keyGroup: s.keyGroup, mtkLength: length, createdAt: t)
                model.groups.append(r)
                model.changes.append(.addKeyGroup(r))
            }
        }
        try maintain(&model, at: t, random: random)
        return model.changes
    }

    /// Ensures current and next MSKs for every key group at t and purges retired ones.
    public func maintenance(snapshot: KeyStoreSnapshot, at t: Int64, random: any RandomSource) throws -> [KeyStoreChange] {
        try checkGrid(snapshot)
        var model = Model(snapshot)
        try maintain(&model, at: t, random: random)
        return model.changes
    }

    /// `replay`: the MSKs a capture's time t needs (current and next for every key group), and
    /// nothing else. A capture's timestamp is not this host's clock: the high-water mark stays
    /// where the wall clock put it and no MSK is retired or purged because of t (issue 19). An
    /// MSK is never added behind a later one (`clockBehindStore`), so Key Numbers still rise
    /// with time.
    public func `extension`(snapshot: KeyStoreSnapshot, at t: Int64, random: any RandomSource) throws -> [KeyStoreChange] {
        try checkGrid(snapshot)
        var model = Model(snapshot)
        for g in model.groups.map(\.keyGroup) {
            let cur = try ensureCurrent(&model, g, at: t, random: random)
            try ensureNext(&model, g, after: cur, at: t, random: random)
        }
        return model.changes
    }

    /// `keys rotate`: the next MSK takes over at the first grid boundary ≥ t + announceLead
    /// (if that is earlier than the planned rollover), and a new next MSK is created.
    public func rotation(snapshot: KeyStoreSnapshot, keyGroup: KeyGroup, at t: Int64, invalidateCurrent: Bool,
                         random: any RandomSource) throws -> [KeyStoreChange] {
        try checkGrid(snapshot)
        guard snapshot.keyGroup(keyGroup) != nil else { throw LifecycleError.keyGroupNotConfigured(keyGroup) }
        var model = Model(snapshot)
        try maintain(&model, at: t, random: random)
        guard let ci = model.msks.firstIndex(where: { $0.mskID.keyGroup == keyGroup.rawValue && $0.covers(t) }) else {
            return model.changes
        }
        let cur = model.msks[ci]
        if invalidateCurrent {
            model.msks[ci].invalidatedAt = t
            model.changes.append(.invalidate(cur.mskID, at: t))
        }
        let switchAt = grid.ceil(t + configuration.announceLead)
        if switchAt < cur.validUntil, let ni = model.msks.firstIndex(where: { $0.mskID.keyGroup == keyGroup.rawValue && $0.validFrom == cur.validUntil }) {
            let next = model.msks[ni]
            let length = next.validUntil - next.validFrom
            // The current MSK ends early (its delivered SEQu simply stays unused above the last
            // MTK ID); the next keeps its number of MTK periods, so its SEQl/SEQu still fit.
            model.msks[ci].validUntil = switchAt
            model.changes.append(.setWindow(cur.mskID, validFrom: cur.validFrom, validUntil: switchAt))
            // A zero-length window can arise when the current MSK started at this very boundary.
            model.msks[ni].validFrom = switchAt
            model.msks[ni].validUntil = switchAt + length
            model.changes.append(.setWindow(next.mskID, validFrom: switchAt, validUntil: switchAt + length))
            try ensureNext(&model, keyGroup, after: model.msks[ni], at: t, random: random)
        }
        try purge(&model, at: t)
        return model.changes
    }

    // MARK: - internals

    func checkGrid(_ snapshot: KeyStoreSnapshot) throws {
        guard snapshot.keyDomainID != nil else { throw LifecycleError.notInitialized }
        if let grid = snapshot.grid, grid != GridParameters(configuration) {
            throw LifecycleError.gridMismatch(store: grid, configuration: GridParameters(configuration))
        }
    }

    struct Model {
        var keyDomainID: KeyDomainID?
        var highWater: Int64?
        var groups: [KeyGroupRecord]
        var msks: [MSKRecord]
        var changes: [KeyStoreChange] = []
        init(_ s: KeyStoreSnapshot) {
            keyDomainID = s.keyDomainID
            highWater = s.highWater
            groups = s.keyGroups
            msks = s.msks
        }
    }

    /// How far behind the high-water mark a clock may be (gateways sharing a store, NTP skew).
    public static let clockSkewTolerance: Int64 = 2

    func maintain(_ model: inout Model, at t: Int64, random: any RandomSource) throws {
        if let h = model.highWater {
            guard t >= h - MSKLifecycle.clockSkewTolerance else { throw LifecycleError.clockBehindHighWater(t: t, highWater: h) }
        }
        // Written before the slot's MTK is used: one small commit per MTK period.
        let slot = grid.floor(t)
        if slot > (model.highWater ?? Int64.min) {
            model.highWater = slot
            model.changes.append(.advanceHighWater(slot))
        }
        for g in model.groups.map(\.keyGroup) {
            let cur = try ensureCurrent(&model, g, at: t, random: random)
            try ensureNext(&model, g, after: cur, at: t, random: random)
        }
        try purge(&model, at: t)
    }

    func ensureCurrent(_ model: inout Model, _ g: KeyGroup, at t: Int64, random: any RandomSource) throws -> MSKRecord {
        let mine = model.msks.filter { $0.mskID.keyGroup == g.rawValue }
        if let c = mine.first(where: { $0.covers(t) }) { return c }
        // An MSK planned after t but none covering t: this clock is behind the one that wrote
        // the store. Creating an MSK now would put a higher Key Number before a lower one.
        if let later = mine.filter({ $0.validFrom > t && $0.validUntil > $0.validFrom }).map(\.validFrom).min() {
            throw LifecycleError.clockBehindStore(g, t: t, firstMSKAt: later)
        }
        // Nothing covers t (new group, or the gateway was down past every window): start a new
        // MSK on the boundary at or before t, ending before any MSK already planned after t.
        let start = max(grid.floor(t), mine.map(\.validUntil).filter { $0 <= t }.max() ?? Int64.min)
        let limit = mine.map(\.validFrom).filter { $0 > t }.min()
        return try addMSK(&model, g, from: start, limit: limit, at: t, random: random)
    }

    func ensureNext(_ model: inout Model, _ g: KeyGroup, after cur: MSKRecord, at t: Int64, random: any RandomSource) throws {
        if model.msks.contains(where: { $0.mskID.keyGroup == g.rawValue && $0.validFrom == cur.validUntil && $0.validUntil > $0.validFrom }) {
            return
        }
        _ = try addMSK(&model, g, from: cur.validUntil, limit: nil, at: t, random: random)
    }

    func addMSK(_ model: inout Model, _ g: KeyGroup, from start: Int64, limit: Int64?, at t: Int64,
                random: any RandomSource) throws -> MSKRecord {
        guard let group = model.groups.first(where: { $0.keyGroup == g }) else { throw LifecycleError.keyGroupNotConfigured(g) }
        let used = model.msks.filter { $0.mskID.keyGroup == g.rawValue }.map(\.mskID.keyNumber).max() ?? 0
        guard used < KeyNumber.max else { throw LifecycleError.keyNumbersExhausted(g) }
        let seqL = MSKLifecycle.firstMTKID - 1
        // SEQu exhaustion: never more MTK periods than MTK IDs left below 0xFFFF.
        var periods = min(configuration.mskPeriod / configuration.mtkPeriod, Int64(maximumMTKID) - Int64(seqL))
        if let limit { periods = min(periods, max(1, (limit - start) / configuration.mtkPeriod)) }
        var mskBytes = try random.bytes(count: group.mtkLength)
        var seedBytes = try random.bytes(count: MSKLifecycle.seedLength)
        defer {
            SecureZero.zero(&mskBytes)
            SecureZero.zero(&seedBytes)
        }
        let record = MSKRecord(
            mskID: MSKID(keyGroup: g, keyNumber: used + 1), validFrom: start,
            validUntil: start + periods * configuration.mtkPeriod,
            keyValidity: KeyValidity(seqL: seqL, seqU: seqL + UInt16(periods)), createdAt: t,
            msk: SecretBytes(mskBytes), rand: try random.bytes(count: MSKLifecycle.randLength), seed: SecretBytes(seedBytes))
        model.msks.append(record)
        model.changes.append(.addMSK(record))
        return record
    }

    func purge(_ model: inout Model, at t: Int64) throws {
        for i in model.msks.indices where !model.msks[i].isPurged {
            let m = model.msks[i]
            let retiredAt = m.invalidatedAt != nil ? m.validUntil : m.validUntil + configuration.mtkPeriod
            if retiredAt <= t {
                model.msks[i].msk = nil   // the SecretBytes are zeroed when released
                model.msks[i].seed = nil
                model.changes.append(.purgeSecrets(m.mskID))
            }
        }
    }
}
