import MIKEY
import CryptoCore

/// A key group as stored: the MTK length follows the session's cipher.
public struct KeyGroupRecord: Sendable, Equatable {
    public let keyGroup: KeyGroup
    /// MTK (SRTP master key) length in octets; the MSK has the same length (TS 33.246 6.3.1:
    /// "at least as long as the MTK"), and at least 16.
    public let mtkLength: Int
    public let createdAt: Int64
    public init(keyGroup: KeyGroup, mtkLength: Int, createdAt: Int64) {
        self.keyGroup = keyGroup
        self.mtkLength = mtkLength
        self.createdAt = createdAt
    }
}

/// One MSK and everything a gateway derives its MTKs from (`DESIGN.md` §6).
///
/// The MSK is used for MTK IDs `keyValidity.seqL + 1 + k` during
/// `[validFrom + kP, validFrom + (k+1)P)`, for `validFrom ≤ t < validUntil` (P = MTK period).
public struct MSKRecord: Sendable {
    public let mskID: MSKID
    /// Unix seconds, on the time grid.
    public var validFrom: Int64
    /// Unix seconds, on the time grid; the window never holds more than `keyValidity.count` periods.
    public var validUntil: Int64
    /// SEQl/SEQu delivered with the MSK (TS 33.246 6.5.4); SEQu ≤ 0xFFFE.
    public let keyValidity: KeyValidity
    public let createdAt: Int64
    /// Set by `rotate --invalidate`; the MSK then ends at the next usable boundary and is purged.
    public var invalidatedAt: Int64?
    /// The MSK. nil once retired and purged (secrets are zeroed and deleted from the store).
    public var msk: SecretBytes?
    /// The RAND of every MSK message for this MSK ID (TS 33.246 6.4.5.1); not secret.
    public let rand: [UInt8]
    /// Per-MSK seed the MTKs, salts and CSB IDs derive from (`MTKDerivation`). nil once purged.
    public var seed: SecretBytes?

    public init(mskID: MSKID, validFrom: Int64, validUntil: Int64, keyValidity: KeyValidity, createdAt: Int64,
                invalidatedAt: Int64? = nil, msk: SecretBytes?, rand: [UInt8], seed: SecretBytes?) {
        self.mskID = mskID
        self.validFrom = validFrom
        self.validUntil = validUntil
        self.keyValidity = keyValidity
        self.createdAt = createdAt
        self.invalidatedAt = invalidatedAt
        self.msk = msk
        self.rand = rand
        self.seed = seed
    }

    public var isPurged: Bool { msk == nil }
    public func covers(_ t: Int64) -> Bool { validFrom <= t && t < validUntil }
}

/// The time-grid parameters every gateway sharing a store must agree on (`DESIGN.md` §6):
/// they fix the MTK IDs, switch instants and MIKEY TS values. Recorded by `keys init`; a
/// configuration that disagrees is refused.
public struct GridParameters: Equatable, Sendable, CustomStringConvertible {
    public let epoch: Int64
    public let mtkPeriod: Int64
    public let announceLead: Int64
    public init(epoch: Int64, mtkPeriod: Int64, announceLead: Int64) {
        self.epoch = epoch
        self.mtkPeriod = mtkPeriod
        self.announceLead = announceLead
    }
    public init(_ c: ScheduleConfiguration) { self.init(epoch: c.epoch, mtkPeriod: c.mtkPeriod, announceLead: c.announceLead) }
    public var description: String { "epoch \(epoch), MTK period \(mtkPeriod)s, announceLead \(announceLead)s" }
}

/// Everything in a store, read in one consistent transaction.
public struct KeyStoreSnapshot: Sendable {
    /// Incremented by every commit; never goes back.
    public let revision: Int64
    /// nil before `keys init`.
    public let keyDomainID: KeyDomainID?
    /// nil before `keys init`.
    public let grid: GridParameters?
    /// Start of the latest MTK period a maintenance run has seen (Unix seconds): MTKs up to
    /// this slot may have been used, so a clock behind it is refused (`DESIGN.md` §7: MTK IDs
    /// are written before they are used). Never goes back.
    public let highWater: Int64?
    public let keyGroups: [KeyGroupRecord]
    /// Sorted by key group, then key number.
    public let msks: [MSKRecord]

    public init(revision: Int64, keyDomainID: KeyDomainID?, grid: GridParameters? = nil, highWater: Int64? = nil,
                keyGroups: [KeyGroupRecord], msks: [MSKRecord]) {
        self.revision = revision
        self.keyDomainID = keyDomainID
        self.grid = grid
        self.highWater = highWater
        self.keyGroups = keyGroups.sorted { $0.keyGroup < $1.keyGroup }
        self.msks = msks.sorted { $0.mskID.rawValue < $1.mskID.rawValue }
    }

    public func msks(in group: KeyGroup) -> [MSKRecord] { msks.filter { $0.mskID.keyGroup == group.rawValue } }
    public func msk(_ id: MSKID) -> MSKRecord? { msks.first { $0.mskID == id } }
    public func keyGroup(_ g: KeyGroup) -> KeyGroupRecord? { keyGroups.first { $0.keyGroup == g } }
}

/// One change to the store. A commit applies a list of them atomically.
public enum KeyStoreChange: Sendable {
    /// First initialisation; the Key Domain ID of a store never changes.
    case setKeyDomain(KeyDomainID)
    /// First initialisation; the grid of a store never changes.
    case setGrid(GridParameters)
    /// Raises the high-water mark (`max(stored, t)`; it never goes back).
    case advanceHighWater(Int64)
    case addKeyGroup(KeyGroupRecord)
    case addMSK(MSKRecord)
    /// Moves an MSK's window (rotation). The key validity stays as delivered.
    case setWindow(MSKID, validFrom: Int64, validUntil: Int64)
    case invalidate(MSKID, at: Int64)
    /// Deletes the MSK and seed of a retired MSK (the row with its IDs and window stays).
    case purgeSecrets(MSKID)
}

public enum KeyStoreError: Error, Sendable, CustomStringConvertible {
    /// Another writer committed since the snapshot the changes were planned on; re-read and re-plan.
    case conflict(expected: Int64, found: Int64)
    case notInitialized(path: String)
    case wrongKeyEncryptionKey(path: String)
    case corrupt(String)
    case io(path: String, reason: String)
    case invalidChange(String)
    /// Every block of a per-MTK sender counter is reserved (`KeyStore.reserveSenderIndices`).
    case senderIndicesExhausted(String)

    public var description: String {
        switch self {
        case let .conflict(expected, found):
            return "the key store changed while planning (revision \(expected) → \(found)); retry"
        case let .notInitialized(path):
            return "\(path): no key store here; fix: run `mbms-gateway keys init --config FILE` first"
        case let .wrongKeyEncryptionKey(path):
            return "\(path): the key-encryption key does not open this store; fix: use the KEK the store was created with (MBMS_KEK, MBMS_KEK_FILE or keyStore.kekFile)"
        case let .corrupt(what):
            return "key store corrupt: \(what)"
        case let .io(path, reason):
            return "\(path): \(reason)"
        case let .invalidChange(what):
            return "rejected key store change: \(what)"
        case let .senderIndicesExhausted(what):
            return "every block of the \(what) is reserved (too many restarts within one MTK period); packets wait for the next MTK; fix: shorten the MTK period"
        }
    }
}

/// The key store. Narrow on purpose: a snapshot read, an atomic optimistic commit, and the
/// per-UE MSK-message counter. A PostgreSQL implementation (several gateways sharing one
/// store, `DESIGN.md` §7) implements the same three calls with `SELECT … FOR SHARE`,
/// `UPDATE meta SET revision = revision + 1 WHERE revision = $expected` and
/// `UPDATE … SET counter = counter + 1 RETURNING counter`.
public protocol KeyStore: AnyObject, Sendable {
    /// All key groups and MSKs (secrets decrypted) in one consistent read.
    func snapshot() throws -> KeyStoreSnapshot
    /// Applies `changes` atomically if the store is still at `expectedRevision`; returns the new
    /// revision. Throws `KeyStoreError.conflict` otherwise (nothing applied).
    @discardableResult
    func commit(_ changes: [KeyStoreChange], expectedRevision: Int64) throws -> Int64
    /// The MIKEY TS COUNTER for the next MSK message to this UE (TS 33.246 6.4.3: one counter
    /// per UE, +1 per message including retransmissions), durably incremented and committed
    /// **before** it is returned, so no value is ever used twice, even across a crash.
    func nextMSKMessageCounter(ueID: String) throws -> UInt32
    /// The last counter handed out for this UE (nil if none).
    func mskMessageCounter(ueID: String) throws -> UInt32?
    /// Reserves the block `[first, first + count)` of one sender counter of one MTK
    /// (`SenderIndexCounter`) and returns `first`: durably committed **before** it is returned,
    /// and never handed out again to any caller (this process after a restart, a replay, a
    /// second gateway on the same store), so an (MTK, SSRC, packet index) is used once, ever
    /// (`DESIGN.md` §7). Throws `KeyStoreError.senderIndicesExhausted` when `first + count`
    /// would pass `limit`. `first` is at least `atLeast` (values skipped below it are never
    /// handed out either): a process keeps each SSRC's packet index rising from one MTK to the
    /// next (RFC 3711 3.3.1: one ROC and replay list per SSRC, whatever the MKI), so a later
    /// MTK's block never starts below the blocks it holds already (`KeySource`).
    func reserveSenderIndices(_ counter: SenderIndexCounter, count: UInt64, limit: UInt64, atLeast: UInt64) throws -> UInt64
}

extension KeyStore {
    /// `reserveSenderIndices` from wherever the counter stands.
    public func reserveSenderIndices(_ counter: SenderIndexCounter, count: UInt64, limit: UInt64) throws -> UInt64 {
        try reserveSenderIndices(counter, count: count, limit: limit, atLeast: 0)
    }
}

/// One per-MTK sender counter that is reserved in blocks before use (`DESIGN.md` §7): the RTP
/// ROC (RFC 3711 3.3.1: each ROC value stands for 2^16 packet indices of every SSRC) or the
/// 31-bit SRTCP index (RFC 3711 3.4).
public struct SenderIndexCounter: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Int, Sendable { case rtpROC = 0, srtcpIndex = 1 }
    public let mskID: MSKID
    public let mtkID: MTKID
    public let kind: Kind
    public init(mskID: MSKID, mtkID: MTKID, kind: Kind) {
        self.mskID = mskID
        self.mtkID = mtkID
        self.kind = kind
    }
    public var description: String {
        "\(kind == .rtpROC ? "RTP ROC" : "SRTCP index") of MSK \(mskID.hex) MTK \(mtkID.rawValue)"
    }
}
