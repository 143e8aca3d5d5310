import CryptoCore
import Foundation
import KeyManagement
import MIKEY
import PacketIO
import TestSupport
import XCTest
@testable import KeyServer

/// The Key Distribution function over real UDP on loopback: a UE socket on 127.0.0.77:2269 gets
/// its MSKs within a second, answers with the verification messages its MGV-F (the MIKEY
/// module's `UEKeyProcessor`) writes, and gets no retransmission afterwards.
final class MSKDistributionServiceTests: DistributionTestCase {
    func testUEOnItsOwnLoopbackAddressGetsItsMSKsAndVerifies() throws {
        let d = try open(policy: .init(verify: true, firstRetransmission: 2, maximumAttempts: 3))
        var ue = try addUE(d, btid: "udp@bsf", address: "127.0.0.77", services: ["urn:svc:tv"])
        let ueSocket = try UDPBatchSocket(bind: TransportAddress(.v4(0x7F00_004D), MSKDistributionService.ueMIKEYPort), maxBatch: 8)
        // The store's MSKs begin at t0: the service's clock runs from there.
        let now = t0, base = Date()
        let service = try MSKDistributionService(distributor: d.distributor, listen: TransportAddress(.v4(0x7F00_0001), 0), requests: nil,
                                                 clock: { now + Int64(Date().timeIntervalSince(base)) })
        service.start()
        defer { service.stop() }
        let started = Date()
        try d.distributor.enqueue(deliveries: [delivery("udp@bsf")], invalidations: [], at: now)

        let capacity = 4096
        let pool = UnsafeMutableRawPointer.allocate(byteCount: capacity * 8, alignment: 16)
        let slots = UnsafeMutableBufferPointer<DatagramSlot>.allocate(capacity: 8)
        defer { pool.deallocate(); slots.deallocate() }
        func receive(within seconds: Double) throws -> [([UInt8], TransportAddress?)] {
            var got: [([UInt8], TransportAddress?)] = []
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                for k in 0..<8 { slots[k] = DatagramSlot(bytes: pool + k * capacity, capacity: capacity) }
                let n = try ueSocket.receive(into: slots, timeoutMilliseconds: 50)
                for k in 0..<n { got.append((Array(UnsafeRawBufferPointer(start: slots[k].bytes, count: slots[k].length)), slots[k].peer)) }
                if got.count >= 2 { break }
            }
            return got
        }
        let messages = try receive(within: 1)
        XCTAssertEqual(messages.count, 2, "current and next MSK")
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.0, "within a second")
        for (bytes, peer) in messages {
            guard case .success(.msk(_, let verification?)) = ue.process(bytes), let peer else { return XCTFail("MSK message rejected by the UE") }
            XCTAssertEqual(peer.address, .v4(0x7F00_0001))
            var v = verification
            try v.withUnsafeMutableBytes { b in
                slots[0] = DatagramSlot(bytes: b.baseAddress!, capacity: b.count)
                slots[0].length = b.count
                slots[0].peer = peer
                _ = try ueSocket.send(UnsafeMutableBufferPointer(rebasing: slots[0..<1]))
            }
        }
        // The retransmission would be due 2 s after the first send: nothing comes.
        XCTAssertEqual(try receive(within: 3).count, 0, "no retransmission after the verification")
        XCTAssertEqual(try d.store.deliveryCounts(), [.done: 2])
    }
}
