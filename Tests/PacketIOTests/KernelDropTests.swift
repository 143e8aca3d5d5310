import Foundation
import XCTest
@testable import PacketIO

/// Issue 19 finding 14 (overload): what the kernel drops on a full receive buffer is counted
/// (`UDPBatchSocket.kernelDrops`, exported by `run` as mbms_drops_total{reason="socket_rcvbuf_full"}).
/// A socket with a small receive buffer that nobody reads gets more datagrams than it holds:
/// the drops it reports are exactly the ones that did not arrive.
final class KernelDropTests: XCTestCase {
    func testDatagramsDroppedOnAFullReceiveBufferAreCounted() throws {
        let receiver = try UDPBatchSocket(bind: TransportAddress(.v4(0x7F00_0001), 0))
        var small: Int32 = 4096   // the kernel doubles it; the minimum is 2304
        XCTAssertEqual(setsockopt(receiver.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size)), 0)
        XCTAssertEqual(receiver.kernelDrops(), 0)
        let sender = try UDPBatchSocket(bind: TransportAddress(.v4(0x7F00_0001), 0))
        let count = 200
        let storage = UnsafeMutableRawPointer.allocate(byteCount: 1000 * count, alignment: 64)
        defer { storage.deallocate() }
        var out = (0..<count).map { i -> DatagramSlot in
            var s = DatagramSlot(bytes: storage + i * 1000, capacity: 1000)
            s.length = 1000
            s.peer = TransportAddress(receiver.localAddress.address, receiver.boundPort)
            return s
        }
        XCTAssertEqual(try out.withUnsafeMutableBufferPointer { try sender.send($0) }, count)
        // Count what did arrive.
        let inStorage = UnsafeMutableRawPointer.allocate(byteCount: 2048 * 64, alignment: 64)
        defer { inStorage.deallocate() }
        var arrived = 0
        while true {
            var slots = (0..<64).map { DatagramSlot(bytes: inStorage + $0 * 2048, capacity: 2048) }
            let n = try slots.withUnsafeMutableBufferPointer { try receiver.receive(into: $0, timeoutMilliseconds: 200) }
            if n == 0 { break }
            arrived += n
        }
        let drops = try XCTUnwrap(receiver.kernelDrops())
        XCTAssertLessThan(arrived, count, "the small buffer held them all: no overload made")
        XCTAssertEqual(Int(drops), count - arrived, "\(arrived) arrived, \(drops) counted as dropped")
    }
}
