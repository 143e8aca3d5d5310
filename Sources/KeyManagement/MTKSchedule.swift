import MIKEY
import CryptoCore
import Foundation

/// Seconds between the NTP era 0 origin (1900-01-01) and the Unix epoch.
public let ntpUnixOffset: Int64 = 2_208_988_800

/// The integer NTP seconds of `t`, as a 32-bit MIKEY TS COUNTER (TS 33.246 6.3.4.6; wraps in
/// 2036, which the UE's RFC 1982 comparison handles).
public func ntpSeconds(unixSeconds t: Int64) -> UInt32 { UInt32(truncatingIfNeeded: t + ntpUnixOffset) }

/// Whole Unix seconds of a `Date` (floor), the resolution of the time grid.
public func unixSeconds(_ date: Date) -> Int64 { Int64(floor(date.timeIntervalSince1970)) }

/// The time grid of `DESIGN.md` §6: boundaries at E + kP.
public struct TimeGrid: Sendable, Equatable {
    public let epoch: Int64
    public let period: Int64
    public init(epoch: Int64, period: Int64) {
        self.epoch = epoch
        self.period = period
    }
    /// ⌊(t − E)/P⌋ with floor semantics for t < E.
    public func index(_ t: Int64) -> Int64 {
        let d = t - epoch
        return d >= 0 ? d / period : -((-d + period - 1) / period)
    }
    /// The last boundary ≤ t.
    public func floor(_ t: Int64) -> Int64 { epoch + index(t) * period }
    /// The first boundary ≥ t.
    public func ceil(_ t: Int64) -> Int64 { let f = floor(t); return f == t ? t : f + period }
}

/// MTK, salt and CSB ID from the per-MSK seed (`DESIGN.md` §6): any gateway holding the same
/// store (the same seed) derives the same values for the same MTK ID, with no coordination.
///
/// `value = HMAC-SHA256(seed, label ‖ 0x00 ‖ Key Domain ID ‖ MSK ID ‖ MTK ID)`, truncated;
/// labels "MTK" (key length of the session's cipher), "SALT" (14 octets, the SRTP master salt,
/// TS 33.246 6.6.2) and "CSBID" (4 octets, the CSB ID of the MTK message, RFC 3830 6.1).
public enum MTKDerivation {
    public static let saltLength = 14

    static func derive(seed: SecretBytes, label: String, keyDomainID: KeyDomainID, mskID: MSKID, mtkID: MTKID,
                       length: Int) throws(CryptoError) -> [UInt8] {
        var key = seed.revealedBytes()
        defer { SecureZero.zero(&key) }
        let message = Array(label.utf8) + [0] + keyDomainID.bytes + mskID.bytes + bigEndianBytes(mtkID.rawValue)
        var out = try HMACSHA256.authenticate(key: key, message: message)
        defer { SecureZero.zero(&out) }
        return Array(out.prefix(length))
    }

    public static func mtk(seed: SecretBytes, keyDomainID: KeyDomainID, mskID: MSKID, mtkID: MTKID,
                           length: Int) throws(CryptoError) -> SecretBytes {
        var b = try derive(seed: seed, label: "MTK", keyDomainID: keyDomainID, mskID: mskID, mtkID: mtkID, length: length)
        defer { SecureZero.zero(&b) }
        return SecretBytes(b)
    }

    public static func salt(seed: SecretBytes, keyDomainID: KeyDomainID, mskID: MSKID, mtkID: MTKID) throws(CryptoError) -> SecretBytes {
        var b = try derive(seed: seed, label: "SALT", keyDomainID: keyDomainID, mskID: mskID, mtkID: mtkID, length: saltLength)
        defer { SecureZero.zero(&b) }
        return SecretBytes(b)
    }

    public static func csbID(seed: SecretBytes, keyDomainID: KeyDomainID, mskID: MSKID, mtkID: MTKID) throws(CryptoError) -> CSBID {
        let b = try derive(seed: seed, label: "CSBID", keyDomainID: keyDomainID, mskID: mskID, mtkID: mtkID, length: 4)
        return CSBID(b.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
    }
}

/// One MTK on the grid with everything needed to send it and to protect with it.
public struct ScheduledMTK: Sendable, CustomStringConvertible {
    public let keyDomainID: KeyDomainID
    public let mskID: MSKID
    public let mtkID: MTKID
    /// Switch instant: the MTK protects traffic during `[validFrom, validUntil)` (Unix seconds).
    public let validFrom: Int64
    public let validUntil: Int64
    /// First transmission of its MIKEY MTK message: `validFrom − announceLead`.
    public let announceAt: Int64
    /// MIKEY TS COUNTER of its MTK message: NTP seconds of `announceAt` (TS 33.246 6.3.4.6).
    /// Strictly increasing with the MTK ID under one MSK because P ≥ 1 s; identical on every
    /// gateway; needs no disk write. Repetitions keep it (TS 33.246 6.4.3 allows that).
    public let timestamp: UInt32
    public let csbID: CSBID
    public let mtk: SecretBytes
    /// 112-bit SRTP master salt.
    public let salt: SecretBytes

    /// MKI = MSK ID ‖ MTK ID (TS 33.246 6.6.2).
    public var mki: [UInt8] { KeyManagement.mki(mskID: mskID, mtkID: mtkID) }
    /// Redacted: IDs and times only.
    public var description: String {
        "MTK \(mskID.hex)/\(mtkID.rawValue) [\(validFrom), \(validUntil)) TS \(timestamp) CSB \(String(csbID.rawValue, radix: 16).leftPadded(8))"
    }
}

public enum ScheduleError: Error, Equatable, Sendable, CustomStringConvertible {
    case notInitialized
    case gridMismatch(store: GridParameters, configuration: GridParameters)
    case unknownKeyGroup(KeyGroup)
    /// No MSK of the group covers t: run maintenance (`keys init` / the gateway does it).
    case noMSK(KeyGroup, at: Int64)
    /// The MSK after the current one is not in the store yet.
    case nextMSKMissing(KeyGroup, after: MSKID)
    case secretsPurged(MSKID)
    case derivation(String)

    public var description: String {
        switch self {
        case .notInitialized: return "the key store is not initialised; run `mbms-gateway keys init --config FILE`"
        case let .gridMismatch(s, c): return LifecycleError.gridMismatch(store: s, configuration: c).description
        case let .unknownKeyGroup(g): return "key group \(g) is not in the key store; run `mbms-gateway keys init --config FILE`"
        case let .noMSK(g, t): return "no MSK of key group \(g) covers t = \(t); run `mbms-gateway keys init --config FILE` to create current and next MSKs"
        case let .nextMSKMissing(g, id): return "key group \(g): no MSK follows MSK \(id.hex) yet; run maintenance (`keys init`)"
        case let .secretsPurged(id): return "MSK \(id.hex) is retired and its secrets were deleted"
        case let .derivation(e): return "key derivation failed: \(e)"
        }
    }
}

/// "Which MTK is current at t", "which is next and when", "what to send at t": pure functions
/// of a store snapshot, the schedule configuration and t (`DESIGN.md` §6). No clock, no I/O.
public struct KeySchedule: Sendable {
    public let snapshot: KeyStoreSnapshot
    public let configuration: ScheduleConfiguration
    public let keyDomainID: KeyDomainID
    public var grid: TimeGrid { TimeGrid(epoch: configuration.epoch, period: configuration.mtkPeriod) }

    public init(snapshot: KeyStoreSnapshot, configuration: ScheduleConfiguration) throws(ScheduleError) {
        guard let kd = snapshot.keyDomainID else { throw .notInitialized }
        if let grid = snapshot.grid, grid != GridParameters(configuration) {
            throw .gridMismatch(store: grid, configuration: GridParameters(configuration))
        }
        self.snapshot = snapshot
        self.configuration = configuration
        self.keyDomainID = kd
    }

    /// The MSK in use at t.
    public func msk(keyGroup: KeyGroup, at date: Date) throws(ScheduleError) -> MSKRecord {
        try msk(keyGroup, unixSeconds(date))
    }

    /// The MSK that follows the one in use at t (the "next MSK", delivered ahead of use).
    public func nextMSK(keyGroup: KeyGroup, at date: Date) throws(ScheduleError) -> MSKRecord {
        let cur = try msk(keyGroup, unixSeconds(date))
        guard let n = snapshot.msks(in: keyGroup).first(where: { $0.validFrom == cur.validUntil && $0.validUntil > $0.validFrom })
        else { throw .nextMSKMissing(keyGroup, after: cur.mskID) }
        return n
    }

    /// The MTK protecting traffic at t.
    public func currentMTK(keyGroup: KeyGroup, at date: Date) throws(ScheduleError) -> ScheduledMTK {
        let t = unixSeconds(date)
        let m = try msk(keyGroup, t)
        return try mtk(in: m, slot: (t - m.validFrom) / configuration.mtkPeriod)
    }

    /// The MTK that follows the current one; its `validFrom` is when the switch happens.
    public func nextMTK(keyGroup: KeyGroup, at date: Date) throws(ScheduleError) -> ScheduledMTK {
        let t = unixSeconds(date)
        let m = try msk(keyGroup, t)
        let slot = (t - m.validFrom) / configuration.mtkPeriod
        if m.validFrom + (slot + 1) * configuration.mtkPeriod < m.validUntil {
            return try mtk(in: m, slot: slot + 1)
        }
        return try mtk(in: try nextMSK(keyGroup: keyGroup, at: date), slot: 0)
    }

    /// The MTK messages on the air at t: the current MTK's (repeated), and from
    /// `announceLead` before the switch also the next one's (TS 33.246 6.3.3.2.2; `DESIGN.md` §4).
    /// Ordered oldest first; the TS rises with the MTK ID, so a UE accepts them in any order.
    public func transmissions(keyGroup: KeyGroup, at date: Date) throws(ScheduleError) -> [ScheduledMTK] {
        let cur = try currentMTK(keyGroup: keyGroup, at: date)
        let t = unixSeconds(date)
        guard t >= cur.validUntil - configuration.announceLead else { return [cur] }
        return [cur, try nextMTK(keyGroup: keyGroup, at: date)]
    }

    /// When the MTK injector sends next after t (Unix seconds): the next repeat tick
    /// (E + k × repeat) or the next announcement instant, whichever comes first.
    public func nextTransmissionTime(keyGroup: KeyGroup, after date: Date) throws(ScheduleError) -> Int64 {
        let t = unixSeconds(date)
        let tick = TimeGrid(epoch: configuration.epoch, period: configuration.repeatInterval).floor(t) + configuration.repeatInterval
        let announce = try nextMTK(keyGroup: keyGroup, at: date).announceAt
        return announce > t ? min(tick, announce) : tick
    }

    /// The MIKEY MTK message of one scheduled MTK, built by the MIKEY module.
    public func mtkMessage(for scheduled: ScheduledMTK, download: Bool = false,
                           builder: any MTKMessageBuilding) throws -> [UInt8] {
        guard let m = snapshot.msk(scheduled.mskID), let key = m.msk else { throw ScheduleError.secretsPurged(scheduled.mskID) }
        return try builder.buildMTKMessage(MTKMessageInput(
            keyDomainID: keyDomainID, mskID: scheduled.mskID, mtkID: scheduled.mtkID, csbID: scheduled.csbID,
            timestamp: scheduled.timestamp, msk: key, rand: m.rand, mtk: scheduled.mtk,
            salt: download ? nil : scheduled.salt))
    }

    /// The MIKEY MTK messages to send at t (see `transmissions`).
    public func mtkMessages(keyGroup: KeyGroup, at date: Date, download: Bool = false,
                            builder: any MTKMessageBuilding) throws -> [[UInt8]] {
        try transmissions(keyGroup: keyGroup, at: date).map { try mtkMessage(for: $0, download: download, builder: builder) }
    }

    // MARK: internals

    func msk(_ g: KeyGroup, _ t: Int64) throws(ScheduleError) -> MSKRecord {
        guard snapshot.keyGroup(g) != nil else { throw .unknownKeyGroup(g) }
        guard let m = snapshot.msks(in: g).first(where: { $0.covers(t) }) else { throw .noMSK(g, at: t) }
        return m
    }

    /// MTK ID = SEQl + 1 + k for the k-th period of the MSK's window (first MTK ID > 0).
    func mtk(in m: MSKRecord, slot: Int64) throws(ScheduleError) -> ScheduledMTK {
        guard let seed = m.seed, let g = m.mskID.group, let group = snapshot.keyGroup(g) else { throw .secretsPurged(m.mskID) }
        let id64 = Int64(m.keyValidity.seqL) + 1 + slot
        guard slot >= 0, id64 <= Int64(m.keyValidity.seqU) else {
            // The windows are built so this cannot happen; a hand-edited store could.
            throw .derivation("MTK slot \(slot) outside SEQl/SEQu \(m.keyValidity) of MSK \(m.mskID.hex)")
        }
        let id = MTKID(UInt16(id64))
        let from = m.validFrom + slot * configuration.mtkPeriod
        do {
            return ScheduledMTK(
                keyDomainID: keyDomainID, mskID: m.mskID, mtkID: id, validFrom: from,
                validUntil: from + configuration.mtkPeriod, announceAt: from - configuration.announceLead,
                timestamp: ntpSeconds(unixSeconds: from - configuration.announceLead),
                csbID: try MTKDerivation.csbID(seed: seed, keyDomainID: keyDomainID, mskID: m.mskID, mtkID: id),
                mtk: try MTKDerivation.mtk(seed: seed, keyDomainID: keyDomainID, mskID: m.mskID, mtkID: id, length: group.mtkLength),
                salt: try MTKDerivation.salt(seed: seed, keyDomainID: keyDomainID, mskID: m.mskID, mtkID: id))
        } catch {
            throw .derivation("\(error)")
        }
    }
}
