import MIKEY
import Foundation

extension KeyStoreSnapshot {
    /// The snapshot with `changes` applied as a commit would apply them (all or nothing), at
    /// `revision + 1`. For stores kept in memory (`KeyStoreOverlay`).
    public func applying(_ changes: [KeyStoreChange]) throws -> KeyStoreSnapshot {
        var keyDomainID = self.keyDomainID, grid = self.grid, highWater = self.highWater
        var groups = keyGroups, msks = self.msks
        for c in changes {
            switch c {
            case let .setKeyDomain(k):
                if let existing = keyDomainID, existing != k { throw KeyStoreError.invalidChange("the Key Domain ID of a store cannot change") }
                keyDomainID = k
            case let .setGrid(g):
                if let existing = grid, existing != g { throw KeyStoreError.invalidChange("the time grid of a store cannot change") }
                grid = g
            case let .advanceHighWater(t): highWater = Swift.max(highWater ?? t, t)
            case let .addKeyGroup(g):
                guard !groups.contains(where: { $0.keyGroup == g.keyGroup }) else { throw KeyStoreError.invalidChange("key group \(g.keyGroup) exists") }
                groups.append(g)
            case let .addMSK(m):
                guard !msks.contains(where: { $0.mskID == m.mskID }) else { throw KeyStoreError.invalidChange("MSK \(m.mskID.hex) exists") }
                msks.append(m)
            case let .setWindow(id, f, u):
                guard let i = msks.firstIndex(where: { $0.mskID == id }) else { throw KeyStoreError.invalidChange("no MSK \(id.hex)") }
                msks[i].validFrom = f
                msks[i].validUntil = u
            case let .invalidate(id, t):
                if let i = msks.firstIndex(where: { $0.mskID == id }) { msks[i].invalidatedAt = t }
            case let .purgeSecrets(id):
                if let i = msks.firstIndex(where: { $0.mskID == id }) { msks[i].msk = nil; msks[i].seed = nil }
            }
        }
        return KeyStoreSnapshot(revision: revision + 1, keyDomainID: keyDomainID, grid: grid, highWater: highWater,
                                keyGroups: groups, msks: msks)
    }
}

/// A key store that reads another once and never writes it: every change (MSKs added to
/// cover a capture's time, the high-water mark, MIKEY counters, index reservations) lives in
/// memory and is gone when the process ends. `replay --key-store-readonly` runs on it, so a
/// test replay cannot move the production store (`DESIGN.md` §8); its MTKs are still the
/// store's own where the store has them.
public final class KeyStoreOverlay: KeyStore, @unchecked Sendable {
    private let base: any KeyStore
    private let lock = NSLock()
    private var current: KeyStoreSnapshot
    private var counters: [String: UInt32] = [:]
    private var senderIndices: [SenderIndexCounter: UInt64] = [:]
    /// Whether packet-index reservations go to the base store (they are not key state: a test
    /// replay that reserves there never shares a keystream with live traffic) or stay in memory.
    public let reservesInBase: Bool

    /// `reservesInBase`: index reservations are written to `base` (plain `replay`); otherwise
    /// they are made in memory from 0 (`replay --key-store-readonly`: nothing written at all).
    public init(over base: any KeyStore, reservesInBase: Bool = false) throws {
        self.base = base
        self.reservesInBase = reservesInBase
        current = try base.snapshot()
    }

    /// The MSKs this overlay holds that the base store did not when it was read (made in
    /// memory for times the store does not cover).
    public func mskIDsMadeInMemory() throws -> [MSKID] {
        let baseIDs = Set(try base.snapshot().msks.map(\.mskID))
        lock.lock(); defer { lock.unlock() }
        return current.msks.map(\.mskID).filter { !baseIDs.contains($0) }
    }

    public func snapshot() throws -> KeyStoreSnapshot {
        lock.lock(); defer { lock.unlock() }
        return current
    }

    @discardableResult
    public func commit(_ changes: [KeyStoreChange], expectedRevision: Int64) throws -> Int64 {
        lock.lock(); defer { lock.unlock() }
        guard expectedRevision == current.revision else { throw KeyStoreError.conflict(expected: expectedRevision, found: current.revision) }
        current = try current.applying(changes)
        return current.revision
    }

    /// Continues the base store's counter in memory (values above it; nothing is written).
    public func nextMSKMessageCounter(ueID: String) throws -> UInt32 {
        lock.lock(); defer { lock.unlock() }
        let next = (try counters[ueID] ?? base.mskMessageCounter(ueID: ueID) ?? 0) &+ 1
        counters[ueID] = next
        return next
    }

    public func mskMessageCounter(ueID: String) throws -> UInt32? {
        lock.lock(); defer { lock.unlock() }
        return try counters[ueID] ?? base.mskMessageCounter(ueID: ueID)
    }

    /// In the base store (`reservesInBase`), or in memory from 0: blocks that other users of
    /// the base store may hold too.
    public func reserveSenderIndices(_ counter: SenderIndexCounter, count: UInt64, limit: UInt64, atLeast: UInt64) throws -> UInt64 {
        if reservesInBase { return try base.reserveSenderIndices(counter, count: count, limit: limit, atLeast: atLeast) }
        lock.lock(); defer { lock.unlock() }
        let first = max(senderIndices[counter, default: 0], atLeast)
        guard first <= limit, count <= limit - first else { throw KeyStoreError.senderIndicesExhausted("\(counter)") }
        senderIndices[counter] = first + count
        return first
    }
}
