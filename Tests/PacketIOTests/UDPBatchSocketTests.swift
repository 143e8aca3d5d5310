import XCTest
@testable import PacketIO

/// Loopback only (127.0.0.1 / ::1); bounded in count and time.
final class UDPBatchSocketTests: XCTestCase {
    func roundTrip(_ host: String) throws {
        let receiver = try UDPBatchSocket(bind: TransportAddress(try XCTUnwrap(IPAddress(host)), 0))
        let port = receiver.boundPort
        XCTAssertNotEqual(port, 0)
        let sender = try UDPBatchSocket(bind: TransportAddress(try XCTUnwrap(IPAddress(host)), 0))
        let count = 100
        let storage = UnsafeMutableRawPointer.allocate(byteCount: 2048 * count, alignment: 64)
        defer { storage.deallocate() }
        var out = (0..<count).map { i -> DatagramSlot in
            var s = DatagramSlot(bytes: storage + i * 2048, capacity: 2048)
            s.length = 10 + i
            for j in 0..<s.length { s.bytes.storeBytes(of: UInt8(truncatingIfNeeded: i &+ j), toByteOffset: j, as: UInt8.self) }
            s.peer = TransportAddress(receiver.localAddress.address, port)
            return s
        }
        XCTAssertEqual(try out.withUnsafeMutableBufferPointer { try sender.send($0) }, count)
        let inStorage = UnsafeMutableRawPointer.allocate(byteCount: 2048 * 64, alignment: 64)
        defer { inStorage.deallocate() }
        var received: [[UInt8]] = []
        let deadline = Date().addingTimeInterval(5)
        while received.count < count && Date() < deadline {
            var slots = (0..<64).map { DatagramSlot(bytes: inStorage + $0 * 2048, capacity: 2048) }
            let n = try slots.withUnsafeMutableBufferPointer { try receiver.receive(into: $0, timeoutMilliseconds: 200) }
            for i in 0..<n {
                received.append(Array(UnsafeRawBufferPointer(start: slots[i].bytes, count: slots[i].length)))
                XCTAssertEqual(slots[i].peer?.port, sender.boundPort)
            }
        }
        XCTAssertEqual(received.count, count)
        for (i, r) in received.enumerated() {
            XCTAssertEqual(r, (0..<(10 + i)).map { UInt8(truncatingIfNeeded: i &+ $0) })
        }
    }

    func testBatchRoundTripIPv4() throws { try roundTrip("127.0.0.1") }

    func testBatchRoundTripIPv6() throws {
        do { try roundTrip("::1") } catch let e as SocketError where e.operation == "socket" || e.operation == "bind" {
            throw XCTSkip("IPv6 loopback unavailable: \(e)")
        }
    }

    func testBindErrorsNameTheAddress() throws {
        let a = try UDPBatchSocket(bind: TransportAddress(.v4(0x7F00_0001), 0))
        XCTAssertThrowsError(try UDPBatchSocket(bind: TransportAddress(.v4(0x0102_0304), a.boundPort))) { e in
            XCTAssertTrue("\(e)".contains("bind 1.2.3.4"), "\(e)")
        }
        XCTAssertThrowsError(try UDPBatchSocket(bind: TransportAddress(.v4(0x7F00_0001), 0), options: UDPSocketOptions(interface: "no-such-if0"))) { e in
            XCTAssertTrue("\(e)".contains("no-such-if0"), "\(e)")
        }
    }
}
