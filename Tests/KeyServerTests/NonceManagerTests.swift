import TestSupport
import XCTest
@testable import KeyServer

final class NonceManagerTests: XCTestCase {
    let t0 = Fixture.t0

    func testReplayHigherNCAndExpiry() {
        var rng = SplitMix64.seeded("testReplayHigherNCAndExpiry")
        var m = NonceManager(configuration: .init(lifetime: 60, staleMemory: 60))
        let n = m.issue(now: t0, using: &rng)
        XCTAssertEqual(n.utf8.count, 32)
        XCTAssertEqual(m.check(n, nc: 1, now: t0), .fresh)
        XCTAssertEqual(m.commit(n, nc: 1, now: t0), .fresh)
        // The same nonce/nc again: a replay.
        XCTAssertEqual(m.check(n, nc: 1, now: t0.addingTimeInterval(1)), .replayed(highestAccepted: 1))
        XCTAssertEqual(m.commit(n, nc: 1, now: t0.addingTimeInterval(1)), .replayed(highestAccepted: 1))
        // A higher nc is accepted; a lower one is then refused too.
        XCTAssertEqual(m.commit(n, nc: 3, now: t0.addingTimeInterval(2)), .fresh)
        XCTAssertEqual(m.check(n, nc: 2, now: t0.addingTimeInterval(2)), .replayed(highestAccepted: 3))
        // Past the lifetime: expired (stale), then forgotten after staleMemory.
        XCTAssertEqual(m.check(n, nc: 4, now: t0.addingTimeInterval(61)), .expired)
        XCTAssertEqual(m.commit(n, nc: 4, now: t0.addingTimeInterval(61)), .expired)
        m.purge(now: t0.addingTimeInterval(121))
        XCTAssertEqual(m.check(n, nc: 4, now: t0.addingTimeInterval(121)), .unknown)
        XCTAssertEqual(m.check("never-issued", nc: 1, now: t0), .unknown)
    }

    func testBoundedOldestEvicted() {
        var rng = SplitMix64.seeded("testBoundedOldestEvicted")
        var m = NonceManager(configuration: .init(lifetime: 3600, maximumOutstanding: 100))
        var issued: [String] = []
        for k in 0..<1_000 { issued.append(m.issue(now: t0.addingTimeInterval(Double(k) / 10), using: &rng)) }
        XCTAssertEqual(m.count, 100)
        XCTAssertEqual(Set(issued).count, 1_000)
        XCTAssertEqual(m.check(issued[0], nc: 1, now: t0.addingTimeInterval(100)), .unknown)
        XCTAssertEqual(m.check(issued[899], nc: 1, now: t0.addingTimeInterval(100)), .unknown)
        XCTAssertEqual(m.check(issued[900], nc: 1, now: t0.addingTimeInterval(100)), .fresh)
        XCTAssertEqual(m.check(issued[999], nc: 1, now: t0.addingTimeInterval(100)), .fresh)
    }

    func testPurgeKeepsMemoryBoundedOverTime() {
        var rng = SplitMix64.seeded("testPurgeKeepsMemoryBoundedOverTime")
        var m = NonceManager(configuration: .init(lifetime: 10, staleMemory: 10, maximumOutstanding: 10_000))
        for k in 0..<5_000 { _ = m.issue(now: t0.addingTimeInterval(Double(k)), using: &rng) }
        // Only the last ~20 s of nonces are remembered.
        XCTAssertLessThanOrEqual(m.count, 21)
    }
}
