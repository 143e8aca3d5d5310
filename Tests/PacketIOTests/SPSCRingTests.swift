import Foundation
@testable import PacketIO
import XCTest

/// The SPSC ring between pipeline stages: every element arrives once, in order, across two
/// threads, through many wrap-arounds of a small ring; close() ends the consumer after the
/// queued elements; a full ring refuses tryPush; queued objects are released with the ring.
final class SPSCRingTests: XCTestCase {
    func testTwoThreadsMoveAMillionElementsInOrder() {
        let ring = SPSCRing<Int>(capacity: 8)
        let n = 1_000_000
        let done = DispatchSemaphore(value: 0)
        let producer = Thread {
            for i in 0..<n { ring.push(i) }
            ring.close()
            done.signal()
        }
        producer.start()
        var expected = 0
        var outOfOrder = 0
        while let v = ring.pop() {
            if v != expected { outOfOrder += 1 }
            expected = v + 1
        }
        done.wait()
        XCTAssertEqual(outOfOrder, 0)
        XCTAssertEqual(expected, n)
    }

    /// Both sides park (futex) and are woken by the other: a consumer waiting on an empty ring
    /// gets what is pushed later, a producer waiting on a full ring goes on when the consumer
    /// pops, close() wakes a parked consumer. The parking safety timeout is raised to 30 s, so a
    /// lost wake would show as a hang (the expectations give up after 20 s), not as a pause.
    func testParkedSidesAreWoken() {
        let saved = Parking.timeoutNanoseconds
        Parking.timeoutNanoseconds = 30_000_000_000
        defer { Parking.timeoutNanoseconds = saved }
        for round in 0..<20 {
            let ring = SPSCRing<Int>(capacity: 2)
            let got = expectation(description: "consumer woke for the push (round \(round))")
            let ended = expectation(description: "consumer woke for close (round \(round))")
            let consumer = Thread {
                var seen: [Int] = []
                while let v = ring.pop() {
                    seen.append(v)
                    if seen.count == 1 { got.fulfill() }
                    if seen.count == 1 { usleep(20_000) }   // let the producer fill the ring and park
                }
                XCTAssertEqual(seen, Array(0..<6))
                ended.fulfill()
            }
            consumer.start()
            usleep(UInt32(2_000 + round * 500))   // the consumer spins out and parks
            ring.push(0)
            guard XCTWaiter.wait(for: [got], timeout: 20) == .completed else {
                XCTFail("a consumer parked on an empty ring was not woken by push (round \(round))")
                ring.close()
                return
            }
            for i in 1..<6 { XCTAssertTrue(ring.push(i)) }   // parks while the ring is full
            usleep(5_000)
            ring.close()
            guard XCTWaiter.wait(for: [ended], timeout: 20) == .completed else {
                XCTFail("a parked side was not woken by pop or close (round \(round))")
                return
            }
        }
    }

    func testFullRingRefusesAndCloseDrainsFirst() {
        let ring = SPSCRing<String>(capacity: 3)   // rounded up to 4
        XCTAssertEqual(ring.capacity, 4)
        for i in 0..<4 { XCTAssertTrue(ring.tryPush("e\(i)")) }
        XCTAssertFalse(ring.tryPush("e4"))
        XCTAssertEqual(ring.count, 4)
        ring.close()
        XCTAssertFalse(ring.push("late"))
        var got: [String] = []
        while let e = ring.pop() { got.append(e) }
        XCTAssertEqual(got, ["e0", "e1", "e2", "e3"])
        XCTAssertNil(ring.tryPop())
    }

    func testQueuedObjectsAreReleasedWithTheRing() {
        final class Token { let flag: UnsafeMutablePointer<Int>; init(_ f: UnsafeMutablePointer<Int>) { flag = f }; deinit { flag.pointee += 1 } }
        let released = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        released.initialize(to: 0)
        defer { released.deallocate() }
        do {
            let ring = SPSCRing<Token>(capacity: 4)
            for _ in 0..<3 { XCTAssertTrue(ring.tryPush(Token(released))) }
            _ = ring.tryPop()
            XCTAssertEqual(released.pointee, 1)
        }
        XCTAssertEqual(released.pointee, 3)
    }
}
