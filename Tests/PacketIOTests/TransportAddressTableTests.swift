import PacketIO
import XCTest

/// The session lookup table answers exactly as a Dictionary does, below and above the size
/// where it switches from comparing to hashing, for IPv4 and IPv6 keys, after updates and
/// removals.
final class TransportAddressTableTests: XCTestCase {
    func testAgreesWithDictionary() {
        var rng = SystemRandomNumberGenerator()
        func address() -> TransportAddress {
            let ip: IPAddress = Bool.random(using: &rng)
                ? .v4(UInt32.random(in: 0xE000_0000...0xE000_0010, using: &rng))
                : .v6(0xFF0E_0000_0000_0000, UInt64.random(in: 0...16, using: &rng))
            return TransportAddress(ip, UInt16.random(in: 5000...5008, using: &rng))
        }
        for size in [0, 1, 5, TransportAddressTable<Int>.linearLimit, TransportAddressTable<Int>.linearLimit + 1, 60] {
            var table = TransportAddressTable<Int>()
            var reference: [TransportAddress: Int] = [:]
            while reference.count < size {
                let a = address(), v = Int.random(in: 0...1000, using: &rng)
                table[a] = v
                reference[a] = v
            }
            for _ in 0..<2000 {
                let a = address()
                switch Int.random(in: 0..<10, using: &rng) {
                case 0 where size > 0:
                    table[a] = nil
                    reference[a] = nil
                case 1 where size > 0:
                    let v = Int.random(in: 0...1000, using: &rng)
                    if reference[a] != nil { table[a] = v; reference[a] = v }
                default:
                    XCTAssertEqual(table[a], reference[a], "size \(size), key \(a)")
                }
            }
            XCTAssertEqual(table.count, reference.count)
            for (a, v) in reference { XCTAssertEqual(table[a], v) }
        }
        // The IPv4 word must not confuse an address with a port: 1.2.3.4:5 vs 0.1.2.3:0x0405.
        var t = TransportAddressTable<Int>()
        t[TransportAddress(.v4(0x0102_0304), 5)] = 1
        XCTAssertNil(t[TransportAddress(.v4(0x0001_0203), 0x0405)])
        XCTAssertEqual(t[TransportAddress(.v4(0x0102_0304), 5)], 1)
    }
}
