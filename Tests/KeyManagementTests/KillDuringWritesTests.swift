import CryptoCore
import Foundation
import MIKEY
import XCTest
@testable import KeyManagement

/// DESIGN.md §7: a restart never reuses an MTK ID, a TS value or a keystream. A child process
/// (`keystore-torture`) writes to a store in a loop (maintenance, rotations with
/// invalidation, per-UE counters) and is SIGKILLed at random points; after every kill the
/// store must reopen consistent, and nothing the child reported as committed may be lost or
/// go back.
final class KillDuringWritesTests: XCTestCase {
    func testKillDuringWritesKeepsStoreConsistent() throws {
        let helper = try XCTUnwrap(Fixtures.product("keystore-torture"),
                                   "build the package first (swift build --build-tests): keystore-torture not found")
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let storePath = dir.appendingPathComponent("keys.sqlite").path
        var rng = SystemRandomNumberGenerator()
        var t = Fixtures.epoch
        var ackedRevision: Int64 = 0
        var lastHighWater: Int64 = .min
        var ackedCounters: [String: Int64] = [:]
        var seenCounters: [String: Set<Int64>] = [:]
        var previousMSKs: [MSKID: MSKRecord] = [:]
        var kills = 0, totalSteps = 0
        let rounds = 25

        for round in 0..<rounds {
            let p = Process()
            p.executableURL = helper
            p.arguments = [storePath, Fixtures.kekHex, String(t)]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            // Every third round: kill at a random instant from the start (possibly while the
            // store is being created or migrated). Otherwise wait until the child has committed
            // its first step (no timing assumption about a loaded machine), then a random delay.
            let early = round % 3 == 0
            var received = Data()
            if early {
                usleep(UInt32.random(in: 0...80_000, using: &rng))
            } else {
                while !received.contains(UInt8(ascii: "\n")) {
                    let chunk = out.fileHandleForReading.availableData
                    if chunk.isEmpty { break }   // EOF: the child died on its own (asserted below)
                    received += chunk
                }
                usleep(UInt32.random(in: 0...120_000, using: &rng))
            }
            let wasRunning = p.isRunning
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            if wasRunning { kills += 1 }
            XCTAssertEqual(p.terminationReason, .uncaughtSignal, "round \(round): the child stopped on its own (\(p.terminationStatus))")
            received += out.fileHandleForReading.readDataToEndOfFile()
            let text = String(decoding: received, as: UTF8.self)

            // Everything the child acknowledged (a complete line) was committed before it was printed.
            for line in text.split(separator: "\n") where line.hasPrefix("rev=") && line.contains(" t=") {
                var f: [String: String] = [:]
                for kv in line.split(separator: " ") {
                    let parts = kv.split(separator: "=", maxSplits: 1)
                    if parts.count == 2 { f[String(parts[0])] = String(parts[1]) }
                }
                guard let rev = f["rev"].flatMap(Int64.init), let ue = f["ue"], let c = f["counter"].flatMap(Int64.init),
                      let lt = f["t"].flatMap(Int64.init) else { continue }
                XCTAssertGreaterThanOrEqual(rev, ackedRevision, "revision went back")
                XCTAssertFalse(seenCounters[ue, default: []].contains(c), "counter \(c) of \(ue) handed out twice")
                XCTAssertGreaterThan(c, ackedCounters[ue, default: 0], "counter of \(ue) went back")
                seenCounters[ue, default: []].insert(c)
                ackedRevision = max(ackedRevision, rev)
                ackedCounters[ue] = max(ackedCounters[ue, default: 0], c)
                t = max(t, lt)
                totalSteps += 1
            }

            // Reopen (the parent is a different process, as after a crash) and check.
            guard FileManager.default.fileExists(atPath: storePath) else {
                XCTAssertTrue(early && ackedCounters.isEmpty, "round \(round): store vanished")
                continue
            }
            let store = try SQLiteKeyStore.open(path: storePath, kek: try Fixtures.kek())
            XCTAssertEqual(try store.integrityCheck(), "ok", "round \(round)")
            let snap = try store.snapshot()   // also authenticates every sealed secret
            XCTAssertGreaterThanOrEqual(snap.revision, ackedRevision, "round \(round): committed revision lost")
            let counters = try store.allMSKMessageCounters()
            for (ue, c) in ackedCounters {
                XCTAssertGreaterThanOrEqual(counters[ue] ?? 0, c, "round \(round): counter of \(ue) went back")
            }
            if snap.keyDomainID == nil {
                // Killed before `keys init` committed: nothing may have been acknowledged.
                XCTAssertTrue(ackedCounters.isEmpty && snap.msks.isEmpty, "round \(round): half-initialised store")
                continue
            }
            let h = try XCTUnwrap(snap.highWater, "round \(round): high-water mark missing")
            XCTAssertGreaterThanOrEqual(h, lastHighWater, "round \(round): high-water mark went back")
            lastHighWater = h
            try checkInvariants(snap, previous: previousMSKs, round: round)
            previousMSKs = Dictionary(uniqueKeysWithValues: snap.msks.map { ($0.mskID, $0) })
            t += 60
        }
        XCTAssertGreaterThanOrEqual(kills, rounds - 1, "the child should be killed while running")
        XCTAssertGreaterThan(totalSteps, rounds, "the child made too little progress to test anything")
    }

    /// Store-level invariants that make MTK ID / TS / keystream reuse impossible.
    func checkInvariants(_ s: KeyStoreSnapshot, previous: [MSKID: MSKRecord], round: Int) throws {
        let period: Int64 = 10   // keystore-torture's MTK period
        XCTAssertEqual(s.keyDomainID?.bytes, [0x00, 0xF1, 0x10])
        for g in s.keyGroups {
            let ms = s.msks(in: g.keyGroup)
            XCTAssertGreaterThanOrEqual(ms.count, 2, "round \(round): current and next MSK")
            let numbers = ms.map(\.mskID.keyNumber)
            XCTAssertEqual(numbers, Array(1...UInt16(ms.count)), "round \(round): Key Numbers 1, 2, … without gaps")
            for m in ms {
                XCTAssertLessThanOrEqual(m.keyValidity.seqU, 0xFFFE)
                XCTAssertLessThanOrEqual((m.validUntil - m.validFrom) / period, Int64(m.keyValidity.count),
                                         "round \(round): window longer than SEQl/SEQu allow")
                XCTAssertEqual((m.validFrom - Fixtures.epoch) % period, 0, "round \(round): off-grid start")
                if let old = previous[m.mskID] {
                    // Once created, an MSK's key, seed and key validity never change, and a purged
                    // MSK never comes back.
                    XCTAssertEqual(old.keyValidity, m.keyValidity)
                    XCTAssertEqual(old.rand, m.rand)
                    if let a = old.seed, let b = m.seed { XCTAssertTrue(a.isEqual(to: b)) }
                    if old.isPurged { XCTAssertTrue(m.isPurged) }
                    XCTAssertLessThanOrEqual(m.validUntil, max(old.validUntil, m.validFrom + (old.validUntil - old.validFrom)))
                }
            }
            let live = ms.filter { $0.validUntil > $0.validFrom }
            for (a, b) in zip(live, live.dropFirst()) {
                XCTAssertLessThanOrEqual(a.validUntil, b.validFrom, "round \(round): MSK windows overlap")
            }
        }
    }
}
