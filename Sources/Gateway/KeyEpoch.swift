import CryptoCore
import Foundation
import KeyManagement
import MIKEY
import SRTP

/// The keys of one MTK as the packet path uses them (`DESIGN.md` §4): immutable, derived once,
/// valid for [validFrom, validUntil) in Unix seconds.
public final class KeyEpoch: @unchecked Sendable {
    public let mskID: MIKEY.MSKID
    public let mtkID: MIKEY.MTKID
    public let validFrom: Int64
    public let validUntil: Int64
    public let keys: SRTPSessionKeys

    init(_ m: ScheduledMTK, cipher: SRTP.SRTPCipher) throws(CryptoError) {
        mskID = m.mskID
        mtkID = m.mtkID
        validFrom = m.validFrom
        validUntil = m.validUntil
        var salt = m.salt.revealedBytes()
        defer { SecureZero.zero(&salt) }
        keys = try SRTPSessionKeys(masterKey: m.mtk, masterSalt: salt, mki: MasterKeyIdentifier(bytes: m.mki), cipher: cipher)
    }

    @inline(__always) func covers(_ t: Int64) -> Bool { t >= validFrom && t < validUntil }
}

public enum KeyScheduleError: Error, CustomStringConvertible {
    case schedule(session: String, at: Int64, underlying: String)
    public var description: String {
        switch self {
        case let .schedule(s, t, u): return "session \(s): no key material at \(Date(timeIntervalSince1970: TimeInterval(t))) (\(u)); run `mbms-gateway keys init --config …` or check the key store"
        }
    }
}

/// Answers "which key epoch protects session S at t" and "which MIKEY messages are due",
/// from the key store's time-grid schedule (`KeySchedule`). Extends the store lazily
/// (`KeyManager.maintain`) when t reaches past the MSKs it holds, so replays of old or
/// long captures work; everything it derives is a pure function of the store and t.
public final class KeySource {
    public let manager: KeyManager
    public private(set) var schedule: KeySchedule
    private var messageCache: [String: [UInt8]] = [:]

    public init(manager: KeyManager) throws {
        self.manager = manager
        self.schedule = try manager.schedule()
    }

    private func withSchedule<T>(at t: Int64, _ body: (KeySchedule) throws -> T) throws -> T {
        do {
            return try body(schedule)
        } catch is ScheduleError {
            _ = try manager.maintain(at: Date(timeIntervalSince1970: TimeInterval(t)))
            schedule = try manager.schedule()
            return try body(schedule)
        }
    }

    public func epoch(for session: StreamingSession, at t: Int64) throws -> KeyEpoch {
        do {
            let m = try withSchedule(at: t) { try $0.currentMTK(keyGroup: session.keyGroup, at: Date(timeIntervalSince1970: TimeInterval(t))) }
            return try KeyEpoch(m, cipher: session.policy.cipher)
        } catch {
            throw KeyScheduleError.schedule(session: session.name, at: t, underlying: "\(error)")
        }
    }

    /// The MTKs whose MIKEY messages are on the air at t (current, plus the next one within
    /// `announceLead` of the switch: TS 33.246 6.3.3.2.2).
    public func transmissions(for session: StreamingSession, at t: Int64) throws -> [ScheduledMTK] {
        do {
            return try withSchedule(at: t) { try $0.transmissions(keyGroup: session.keyGroup, at: Date(timeIntervalSince1970: TimeInterval(t))) }
        } catch {
            throw KeyScheduleError.schedule(session: session.name, at: t, underlying: "\(error)")
        }
    }

    /// The MIKEY MTK message of a scheduled MTK (built once, then reused: same bytes on every repeat).
    public func mtkMessage(_ m: ScheduledMTK, download: Bool = false) throws -> [UInt8] {
        let key = "\(m.mskID)/\(m.mtkID)/\(download)"
        if let cached = messageCache[key] { return cached }
        let bytes = try schedule.mtkMessage(for: m, download: download, builder: MIKEYMTKMessageBuilder())
        // Only the current and next MTK of each session are on the air: keep the cache small on
        // long runs (a miss just rebuilds the same bytes).
        if messageCache.count >= 64 { messageCache.removeAll(keepingCapacity: true) }
        messageCache[key] = bytes
        return bytes
    }

    public var configuration: ScheduleConfiguration { manager.configuration.schedule }
}
