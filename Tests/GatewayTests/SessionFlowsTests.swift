@testable import Gateway
import SRTP
import TestSupport
import XCTest

/// `SessionFlows.protectRTP(mixed:)` (the batch path of replay's work stage and `run`'s workers:
/// packets of several SSRCs grouped per SSRC through the batch protect) against the
/// single-packet protect (checked against RFC 3711 vectors and libsrtp2 in SRTPTests), packet by
/// packet: same bytes, same lengths, same failures, across more than one 64-slot chunk.
final class SessionFlowsTests: XCTestCase {
    func testMixedSSRCBatchEqualsOneByOne() throws {
        var rng = SplitMix64(seed: 11)
        let policy = SRTPPolicy.rfc3711Default(mkiLength: 6)
        let keys = try SRTPSessionKeys(masterKey: rng.bytes(16), masterSalt: rng.bytes(14),
                                       mki: MasterKeyIdentifier(bytes: [0, 0, 0, 1, 0, 2]), cipher: .aesCM128)
        let ssrcs: [UInt32] = [0x1111_1111, 0x2222_2222, 0x3333_3333]
        var packets: [[UInt8]] = []
        var seq: [UInt16] = [0xFFF0, 7, 300]   // the first SSRC wraps its SEQ inside the batch
        for n in 0..<150 {
            if n == 40 || n == 97 { packets.append([0x80, 96, 0, 1, 0]); continue }   // too short: fails alone
            let s = Int(rng.next() % 3)
            var p: [UInt8] = [0x80, 96, UInt8(seq[s] >> 8), UInt8(seq[s] & 0xFF), 0, 0, 1, 0]
            p += withUnsafeBytes(of: ssrcs[s].bigEndian) { Array($0) }
            p += rng.bytes(Int(rng.next() % 1300))
            seq[s] &+= 1
            packets.append(p)
        }
        let capacity = 1600
        let count = packets.count
        let a = UnsafeMutableRawPointer.allocate(byteCount: capacity * count, alignment: 64)
        let b = UnsafeMutableRawPointer.allocate(byteCount: capacity * count, alignment: 64)
        let slots = UnsafeMutableBufferPointer<SRTPPacketSlot>.allocate(capacity: count)
        let scratch = UnsafeMutableBufferPointer<SRTPPacketSlot>.allocate(capacity: 64)
        let owner = UnsafeMutableBufferPointer<Int>.allocate(capacity: 64)
        defer { a.deallocate(); b.deallocate(); slots.deallocate(); scratch.deallocate(); owner.deallocate() }
        for (i, p) in packets.enumerated() {
            p.withUnsafeBytes { (a + i * capacity).copyMemory(from: $0.baseAddress!, byteCount: p.count) }
            p.withUnsafeBytes { (b + i * capacity).copyMemory(from: $0.baseAddress!, byteCount: p.count) }
            slots.initializeElement(at: i, to: SRTPPacketSlot(bytes: a + i * capacity, length: p.count, capacity: capacity))
        }
        var batched = try SessionFlows(policy: policy)
        batched.protectRTP(mixed: slots, keys: keys, scratch: scratch, owner: owner)
        var single = try SessionFlows(policy: policy)
        for (i, p) in packets.enumerated() {
            do {
                let n = try single.protect(b + i * capacity, length: p.count, capacity: capacity, rtcp: false, keys: keys)
                XCTAssertNil(slots[i].error, "packet \(i)")
                XCTAssertEqual(slots[i].length, n, "packet \(i)")
                XCTAssertEqual(memcmp(a + i * capacity, b + i * capacity, n), 0, "packet \(i): bytes differ")
            } catch {
                XCTAssertEqual(slots[i].error, error, "packet \(i)")
            }
        }
        XCTAssertEqual(batched.rollover.map(\.roc), single.rollover.map(\.roc))
        XCTAssertEqual(batched.rollover.first { $0.ssrc == 0x1111_1111 }?.roc, 1, "SEQ wrap not seen")
    }
}
