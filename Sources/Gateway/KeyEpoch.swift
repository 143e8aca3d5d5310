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

    init(_ m: ScheduledMTK, cipher: SRTP.SRTPCipher, senderIndices: SenderIndexBlock) throws(CryptoError) {
        mskID = m.mskID
        mtkID = m.mtkID
        validFrom = m.validFrom
        validUntil = m.validUntil
        var salt = m.salt.revealedBytes()
        defer { SecureZero.zero(&salt) }
        keys = try SRTPSessionKeys(masterKey: m.mtk, masterSalt: salt, mki: MasterKeyIdentifier(bytes: m.mki), cipher: cipher,
                                   senderIndices: senderIndices)
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

/// Where the packet indices of a key source's senders come from (`DESIGN.md` §7).
public enum SenderIndexMode: Sendable, Equatable {
    /// A block of RTP ROC values and one of SRTCP indices per MTK, reserved in the key store
    /// (committed) before the MTK's first packet: a restart, a replay or a second gateway on
    /// the same store never uses an index this process used, or the other way round. A fresh
    /// store's first blocks start at 0.
    case reserve
    /// Nothing written: every MTK's indices start at 0 (`replay --key-store-readonly`). The same
    /// input gives the same bytes on every run — and the same keystreams as anything else that
    /// protected other traffic under the same MTKs from this store.
    case unreserved
}

/// How a key source may change key state when the schedule has nothing for t (`DESIGN.md` §6).
/// Key state follows the host's wall clock, never a packet's time alone (issue 19: one bad
/// capture timestamp must not move the high-water mark, retire an MSK or delete its secrets).
public enum KeyStatePolicy: Sendable, Equatable {
    /// `run`: t is this host's clock. Maintenance as `keys` does it: current and next MSK,
    /// high-water mark, purge of retired MSKs.
    case wallClock
    /// `replay`: t is a capture's time. Only MSKs missing for t (and the next one) are added —
    /// to whatever store the source writes to (an in-memory overlay unless `--commit-keys`);
    /// the high-water mark is not moved and nothing is retired or purged.
    case extendOnly
}

/// Answers "which key epoch protects session S at t" and "which MIKEY messages are due",
/// from the key store's time-grid schedule (`KeySchedule`). Extends the store lazily
/// (`KeyManager.maintain`) when t reaches past the MSKs it holds, so replays of old or
/// long captures work; everything it derives is a pure function of the store and t.
public final class KeySource {
    public let manager: KeyManager
    public private(set) var schedule: KeySchedule
    public let senderIndexMode: SenderIndexMode
    public let keyStatePolicy: KeyStatePolicy
    private var messageCache: [String: [UInt8]] = [:]
    /// The blocks this process holds, per MTK (one reservation per MTK, however often its epoch is built).
    private var senderBlocks: [SenderIndexCounter: (block: SenderIndexBlock, validUntil: Int64)] = [:]
    /// The highest block floors this process has reserved (ROC, SRTCP index): later MTKs'
    /// blocks start at or above them (`senderIndexBlock`).
    private var highestFloors: (roc: UInt32, srtcp: UInt32) = (0, 0)
    /// Blocks reserved in the store so far (two per MTK used: ROC and SRTCP).
    public private(set) var senderIndexReservations = 0

    /// ROC values per block: 2^14 × 2^16 = 2^30 packet indices per SSRC, and 2^14 SEQ jumps,
    /// per process and MTK; 2^18 processes (restarts) per MTK before the ROC space is used up.
    public static let rocBlock: UInt64 = 1 << 14
    /// SRTCP indices per block: 2^18 SRTCP packets per SSRC per process and MTK (three days at
    /// one a second); 2^13 processes (restarts) per MTK before the 31-bit space is used up.
    public static let srtcpBlock: UInt64 = 1 << 18

    public init(manager: KeyManager, senderIndices: SenderIndexMode = .reserve, keyState: KeyStatePolicy = .wallClock) throws {
        self.manager = manager
        self.schedule = try manager.schedule()
        senderIndexMode = senderIndices
        keyStatePolicy = keyState
    }

    /// Re-reads the store's schedule (another process ran `keys rotate`, `keys init`, a second
    /// gateway extended it). Returns whether the store changed since this source last read it
    /// (its revision). Epochs already built stay valid objects; callers rebuild the ones whose
    /// window the new schedule changed. Cached MIKEY messages are dropped (a rotation changes
    /// MSK windows, and so the messages' key validity data).
    @discardableResult
    public func refreshSchedule() throws -> Bool {
        let fresh = try manager.schedule()
        let changed = fresh.snapshot.revision != schedule.snapshot.revision
        if changed {
            schedule = fresh
            messageCache.removeAll(keepingCapacity: true)
        }
        return changed
    }

    /// This process's packet indices under MTK `m`: reserved in the store the first time
    /// (`SenderIndexMode.reserve`), committed before the epoch, and so before any packet.
    func senderIndexBlock(for m: ScheduledMTK) throws -> SenderIndexBlock {
        guard senderIndexMode == .reserve else { return .unrestricted }
        let rocCounter = SenderIndexCounter(mskID: m.mskID, mtkID: m.mtkID, kind: .rtpROC)
        if let b = senderBlocks[rocCounter] { return b.block }
        let store = manager.store
        // Never below the blocks this process holds already: a sender stream keeps its ROC and
        // SRTCP index from one MTK to the next (one replay list per SSRC at the receiver, RFC
        // 3711 3.3.1), so after a restart — whose first block of the current MTK is above the
        // last process's — the next MTK's block must not start lower either, or the stream
        // would run past it (index_exhausted) or go back (receivers drop "too old").
        let roc = try store.reserveSenderIndices(rocCounter, count: Self.rocBlock, limit: 1 << 32, atLeast: UInt64(highestFloors.roc))
        let srtcp = try store.reserveSenderIndices(SenderIndexCounter(mskID: m.mskID, mtkID: m.mtkID, kind: .srtcpIndex),
                                                   count: Self.srtcpBlock, limit: 1 << 31, atLeast: UInt64(highestFloors.srtcp))
        highestFloors = (max(highestFloors.roc, UInt32(roc)), max(highestFloors.srtcp, UInt32(srtcp)))
        senderIndexReservations += 2
        let block = SenderIndexBlock(rocFloor: UInt32(roc), rocLimit: roc + Self.rocBlock,
                                     srtcpFloor: UInt32(srtcp), srtcpLimit: srtcp + Self.srtcpBlock)
        // Only the current and next MTK of each session are in use: on long runs, forget the
        // blocks of MTKs that ended before this one began (one that comes back, in a replay whose
        // clock goes back, gets a new block above the old one).
        if senderBlocks.count >= 1024 { senderBlocks = senderBlocks.filter { $0.value.validUntil > m.validFrom } }
        senderBlocks[rocCounter] = (block, m.validUntil)
        return block
    }

    private func withSchedule<T>(at t: Int64, _ body: (KeySchedule) throws -> T) throws -> T {
        do {
            return try body(schedule)
        } catch is ScheduleError {
            switch keyStatePolicy {
            case .wallClock: _ = try manager.maintain(at: Date(timeIntervalSince1970: TimeInterval(t)))
            case .extendOnly: _ = try manager.extend(at: Date(timeIntervalSince1970: TimeInterval(t)))
            }
            schedule = try manager.schedule()
            messageCache.removeAll(keepingCapacity: true)
            return try body(schedule)
        }
    }

    public func epoch(for session: StreamingSession, at t: Int64) throws -> KeyEpoch {
        do {
            let m = try withSchedule(at: t) { try $0.currentMTK(keyGroup: session.keyGroup, at: Date(timeIntervalSince1970: TimeInterval(t))) }
            return try KeyEpoch(m, cipher: session.policy.cipher, senderIndices: try senderIndexBlock(for: m))
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
