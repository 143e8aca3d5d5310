import Foundation
import PacketIO
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
